"""The Celery app the test workers run (`celery -A tests.celery_app worker`).

The broker comes from `CELERY_BROKER_URL`, so one module serves Redis and RabbitMQ
tests, and the control exchange from `CELERY_CONTROL_EXCHANGE`, so a test's workers
answer only that test's broadcasts; nothing connects at import time.
"""

from __future__ import annotations

import json
import os
import time

from celery import Celery, Task

from celery_scaler import instrument

app = Celery("tests", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"))
app.conf.update(
    # One task at a time per worker process, so "busy" means exactly one active task
    # and nothing sits prefetched behind it; a test of prefetching sets Celery's default
    # (4) through the environment the workers inherit.
    worker_prefetch_multiplier=int(os.environ.get("CELERY_PREFETCH_MULTIPLIER", "1")),
    broker_connection_retry_on_startup=True,
    control_exchange=os.environ.get("CELERY_CONTROL_EXCHANGE", "celery"),
    # An application's broker_transport_options (JSON): key prefix, priority steps, ...
    broker_transport_options=json.loads(os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS", "{}")),
)
if os.environ.get("CELERY_SCALER_INSTRUMENT"):
    # As an application would: stamps its messages and sends task events.
    instrument(app)


@app.task(name="tests.sleep")  # type: ignore[untyped-decorator]  # celery is untyped
def sleep(seconds: float) -> None:
    """Keep the worker busy for `seconds`."""
    time.sleep(seconds)


@app.task(name="tests.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing; a task to count."""


@app.task(name="tests.fail")  # type: ignore[untyped-decorator]
def fail() -> None:
    """Fail: one `task-failed` event."""
    raise RuntimeError("tests.fail fails on purpose")


@app.task(name="tests.retry_once", bind=True, max_retries=1)  # type: ignore[untyped-decorator]
def retry_once(self: Task) -> None:
    """Retry once, then succeed: one `task-retried`, then one `task-succeeded`."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
