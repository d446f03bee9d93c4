"""`instrument(app)`: make an application's tasks observable by the celery-scaler controller.

Call it once in the module that defines the Celery app, so it runs where tasks are
published (the web app, a beat process) and in the workers::

    app = Celery(...)
    celery_scaler_instrument.instrument(app)

It does two things:

- Every task message carries the header `celery_scaler_published_at` (epoch seconds
  as a float). On Redis the controller reads the stamp of the oldest waiting message
  without consuming it and reports its age as `queue_latency_seconds`.
- Workers of this app send task events (`worker_send_task_events`, what `-E` does),
  from which the controller counts `succeeded_tasks`, `failed_tasks` and
  `retried_tasks`: Celery's inspect `stats` has no such counts.
- On the SQS transport (or with `protect_busy_tasks=True`), a worker running on ECS keeps
  its own task protected from scale-in while it holds tasks (`protection.py`): there the
  controller cannot drain a worker before removing it, having no remote control.

This is a distribution of its own, `celery-scaler-instrument`, whose only requirement is
Celery: an application installs it without the controller's dependencies. The
controller depends on it, re-exports it as `celery_scaler.instrument` and takes the
header's name from here, so the writer and the reader of the stamp cannot disagree.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["PUBLISHED_AT_HEADER", "instrument", "uninstrument"]

PUBLISHED_AT_HEADER = "celery_scaler_published_at"
"""Message header holding the publish time (float epoch seconds)."""

_DISPATCH_UID = "celery_scaler.instrument.stamp_published_at"


def instrument(app: Celery, *, protect_busy_tasks: bool | None = None) -> None:
    """Stamp published task messages with their publish time and turn task events on.

    `protect_busy_tasks`: a worker on ECS protects its own task from scale-in while it
    holds tasks (`protection.py`). None (the default) does so on the SQS transport only,
    where the controller cannot drain workers; False never, True on any broker.

    Idempotent. Task events take effect in workers started after the call (the worker
    reads the setting when it starts), which is why the call belongs in the app's module.

    Celery's `before_task_publish` carries only the task name as sender, not the app,
    so the stamp cannot be limited to `app`: every Celery app publishing in this process
    is stamped. That is harmless (one float header, which workers ignore) and it is what
    a process with one app, the usual case, needs.
    """
    # Celery is imported here, not at the top: the controller imports this package for the
    # header's name (its pure core included), and its commands that never touch Celery
    # must not pay for loading it.
    from celery import Celery
    from celery.signals import before_task_publish

    if not isinstance(app, Celery):
        raise TypeError(f"instrument() needs a Celery app, got {type(app).__name__}")
    # One receiver per process, however many times or for however many apps this runs:
    # the dispatch_uid makes a second connect a no-op. A strong reference, because the
    # receiver is a module function the caller never holds.
    before_task_publish.connect(_stamp_published_at, weak=False, dispatch_uid=_DISPATCH_UID)
    app.conf.worker_send_task_events = True
    if protect_busy_tasks is None:
        broker = str(app.conf.broker_url or "")
        protect_busy_tasks = broker.split("://", 1)[0] == "sqs"
    if protect_busy_tasks:
        from celery_scaler_instrument.protection import protect_busy_tasks as protect

        protect()


def uninstrument() -> None:
    """Stop stamping published messages (the inverse of `instrument`; for tests)."""
    from celery.signals import before_task_publish

    before_task_publish.disconnect(dispatch_uid=_DISPATCH_UID)


def _stamp_published_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # With task protocol 2 (the default) `headers` is the message's own header dict, which
    # Celery publishes after this signal returns, so setting a key here lands in the
    # message (protocol 1 passes an empty dict that becomes the message headers too).
    #
    # Always overwrite: a retry (Task.retry copies the request's custom headers) or a
    # republish is a new message that starts waiting now. Keeping the first stamp would
    # count the earlier runs and countdowns as queue wait and report a latency no queue
    # ever had.
    if headers is not None:
        headers[PUBLISHED_AT_HEADER] = time.time()
