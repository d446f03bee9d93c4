"""The Celery app the test workers run (`celery -A tests.celery_app worker`).

The broker comes from `CELERY_BROKER_URL`, so one module serves Redis and RabbitMQ
tests, and the control exchange from `CELERY_CONTROL_EXCHANGE`, so a test's workers
answer only that test's broadcasts; nothing connects at import time.
"""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("tests", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"))
app.conf.update(
    # One task at a time per worker process, so "busy" means exactly one active task
    # and nothing sits prefetched behind it.
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    control_exchange=os.environ.get("CELERY_CONTROL_EXCHANGE", "celery"),
)


@app.task(name="tests.sleep")  # type: ignore[untyped-decorator]  # celery is untyped
def sleep(seconds: float) -> None:
    """Keep the worker busy for `seconds`."""
    time.sleep(seconds)


@app.task(name="tests.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing; a task to count."""
