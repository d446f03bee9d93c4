"""`instrument(app)`: stamp published messages so the controller can read queue latency.

Call it once where the application publishes tasks (the web app, a beat process, the
workers for tasks that call other tasks)::

    app = Celery(...)
    celery_scaler.instrument(app)

Every task message then carries the header `celery_scaler_published_at` (epoch seconds
as a float). On Redis the controller reads the stamp of the oldest waiting message
without consuming it and reports its age as `queue_latency_seconds`.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

PUBLISHED_AT_HEADER = "celery_scaler_published_at"
"""Message header holding the publish time (float epoch seconds)."""

_DISPATCH_UID = "celery_scaler.instrument.stamp_published_at"


def instrument(app: Celery) -> None:
    """Stamp every task message published from now on with its publish time; idempotent.

    Celery's `before_task_publish` carries only the task name as sender, not the app,
    so the stamp cannot be limited to `app`: every Celery app publishing in this process
    is stamped. That is harmless (one float header, which workers ignore) and it is what
    a process with one app, the usual case, needs.
    """
    if not isinstance(app, Celery):
        raise TypeError(f"instrument() needs a Celery app, got {type(app).__name__}")
    # One receiver per process, however many times or for however many apps this runs:
    # the dispatch_uid makes a second connect a no-op. A strong reference, because the
    # receiver is a module function the caller never holds.
    before_task_publish.connect(_stamp_published_at, weak=False, dispatch_uid=_DISPATCH_UID)


def uninstrument() -> None:
    """Stop stamping published messages (the inverse of `instrument`; for tests)."""
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
