"""The demo Celery app with `ecs-celery-autoscaler` installed, for the closed-loop benchmark.

That autoscaler lives inside the application: every process that publishes or runs
tasks calls `EcsCeleryAutoscaler(...).install()`. The benchmark's workers run
`celery -A benchmarks.peer_app worker`; the settings come from the environment the
benchmark gives them (`PEER_*`), and its module-level intervals are compressed by
`PEER_TIME_FACTOR` like every other duration in the benchmark.
"""

from __future__ import annotations

import os
from typing import Any

from celery_scaler.local.demo_app import app, sleep

__all__ = ["app", "install_ecs_celery_autoscaler", "sleep"]

INTERVALS = ("RECONCILE_POLL_INTERVAL", "PROTECTION_POLL_INTERVAL", "RESUME_CHECK_INTERVAL")


def install_ecs_celery_autoscaler(celery_app: Any, environ: dict[str, str]) -> Any:
    """Install ecs-celery-autoscaler on `celery_app` as its README says, time-compressed."""
    import ecs_celery_autoscaler.autoscaler as peer
    from ecs_celery_autoscaler import EcsCeleryAutoscaler, QueueDepthMetric

    factor = float(environ["PEER_TIME_FACTOR"])
    for name in INTERVALS:
        setattr(peer, name, getattr(peer, name) / factor)
    scaler = EcsCeleryAutoscaler(
        celery_app=celery_app,
        ecs_cluster=environ["PEER_CLUSTER"],
        ecs_service=environ["PEER_SERVICE"],
        aws_region=environ["AWS_DEFAULT_REGION"],
        queue_name=environ["PEER_QUEUE"],
        min_workers=int(environ["PEER_MIN"]),
        max_workers=int(environ["PEER_MAX"]),
        # Its README: "Set tasks_per_worker to the number of worker processes each ECS task runs".
        metric=QueueDepthMetric(tasks_per_worker=int(environ["PEER_CONCURRENCY"])),
    )
    if environ.get("PEER_DEBUG"):
        import logging

        logging.getLogger("ecs_celery_autoscaler").setLevel(logging.INFO)
        logging.getLogger("ecs_celery_autoscaler").addHandler(logging.StreamHandler())
    scaler.install()
    return scaler


# Only in the workers: the benchmark's publisher installs it on its own app.
if os.environ.get("PEER_WORKER"):
    install_ecs_celery_autoscaler(app, dict(os.environ))
