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

from celery import Celery
from celery.signals import worker_init

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
