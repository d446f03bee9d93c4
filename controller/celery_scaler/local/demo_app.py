"""The Celery app the local fleet runs (`celery -A celery_scaler.local.demo_app worker`).

Shipped inside the package so `celery-scaler demo`, the end-to-end tests and the
closed-loop benchmark run from an installed package, without a repository checkout.
The broker comes from `CELERY_BROKER_URL` and the control exchange from
`CELERY_CONTROL_EXCHANGE`, so a fleet's workers answer only its own controller's
broadcasts; nothing connects at import time.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

from celery_scaler.local.ledger import LEDGER_KEY_ENV, LEDGER_URL_ENV, Entry, Event

SLEEP_TASK = "celery_scaler.demo.sleep"

app = Celery(
    "celery-scaler-demo", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    # One task at a time per worker, nothing prefetched behind it: a new worker takes
    # work off the queue instead of waiting while an old one sits on a reserved backlog.
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    control_exchange=os.environ.get("CELERY_CONTROL_EXCHANGE", "celery"),
    worker_hijack_root_logger=False,
    # CELERY_SCALER_ACKS_LATE=1: acknowledge after the task ran, so a task cut short by a
    # SIGKILL is delivered again (on Redis once the visibility timeout has passed).
    task_acks_late=os.environ.get("CELERY_SCALER_ACKS_LATE") == "1",
    broker_transport_options=json.loads(os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS") or "{}"),
)


@app.task(name=SLEEP_TASK, bind=True)  # type: ignore[untyped-decorator]  # celery is untyped
def sleep(
    self: object, seconds: float, enqueued_at: float | None = None, report_to: str | None = None
) -> None:
    """Work for `seconds`; with `report_to`, first push when it started to that Redis list.

    The pushed JSON holds `started` and `enqueued_at` (epoch seconds) and the worker's
    name, so a caller can measure each task's wait in the queue (enqueue → start).
    """
    if report_to:
        import redis

        started = time.time()
        record = {
            "started": started,
            "enqueued_at": enqueued_at,
            "worker": getattr(getattr(self, "request", None), "hostname", None),
        }
        with redis.Redis.from_url(app.conf.broker_url) as client:
            client.rpush(report_to, json.dumps(record))
    time.sleep(seconds)


@worker_init.connect  # type: ignore[untyped-decorator]
def wait_for_start(**_: object) -> None:
    """Take no task before `CELERY_SCALER_START_AT` (epoch seconds), as the local fleet asks.

    The fleet emulates an ECS task's start time this way: the process boots while the
    delay runs, so a task starts after max(delay, boot time), as on ECS, where the
    delay includes the container's boot.
    """
    start_at = os.environ.get("CELERY_SCALER_START_AT")
    if start_at:
        time.sleep(max(0.0, float(start_at) - time.time()))


if os.environ.get("CELERY_SCALER_PROTECT_BUSY_TASKS"):
    # What an application on SQS gets from instrument(app): each worker on ECS protects
    # its own task while it holds tasks (the local fleet serves the ECS agent's endpoint);
    # the variable's value is the seconds between its checks (15 in instrument).
    from celery_scaler_instrument.protection import protect_busy_tasks

    protect_busy_tasks(every=float(os.environ["CELERY_SCALER_PROTECT_BUSY_TASKS"]))

_ledger: Any = None


def _write_ledger(event: Event, task_id: str | None, task: Any) -> None:
    """One line in the fate ledger (local/ledger.py), when the fleet asked for one."""
    global _ledger
    url, key = os.environ.get(LEDGER_URL_ENV), os.environ.get(LEDGER_KEY_ENV)
    if not url or not key or task_id is None:
        return
    import redis

    if _ledger is None:
        _ledger = redis.Redis.from_url(url)
    worker = str(getattr(getattr(task, "request", None), "hostname", None) or "")
    _ledger.rpush(key, Entry(task_id, event, worker, time.time()).dumps())


@task_prerun.connect  # type: ignore[untyped-decorator]
def _started(task_id: str | None = None, task: Any = None, **_: object) -> None:
    _write_ledger("started", task_id, task)


@task_postrun.connect  # type: ignore[untyped-decorator]
def _finished(task_id: str | None = None, task: Any = None, **_: object) -> None:
    _write_ledger("finished", task_id, task)
