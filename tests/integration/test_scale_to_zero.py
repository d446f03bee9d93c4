"""Scale to zero with real parts: the controller, the local fleet's real Celery workers, Redis
and the local AWS API. Measures the time from the first message to the first worker taking
it when the pool sits at 0 tasks (README, "Scale to zero")."""

from __future__ import annotations

import threading

import pytest

from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.engine.reconcile import PassReport
from celery_scaler.engine.runner import run_forever
from celery_scaler.local.aws_api import LocalAws
from celery_scaler.local.demo import SERVICE, TaskSender, delete_keys
from celery_scaler.local.fleet import local_fleet
from tests.workers import wait_for

pytestmark = pytest.mark.integration

INTERVAL = 1.0
"""The controller's interval here: on average the message waits half of it to be seen."""


def config_text(broker: str, cluster: str, queue: str, exchange: str) -> str:
    return f"""\
apiVersion: celery-scaler/v1
kind: Controller
spec:
  broker: {broker}
  interval: {INTERVAL:g}s
  inspectTimeout: 0.5s
  controlExchange: {exchange}
  cloudwatch: {{enabled: false}}
  prometheus: {{enabled: false}}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: zero}}
spec:
  ecs: {{cluster: {cluster}, service: {SERVICE}}}
  queues: [{queue}]
  minCapacity: 0
  maxCapacity: 3
  metric: queue_depth
  activation: 0
  scaleOut:
    threshold: 5
    cooldown: 2s
    steps: [{{metricIntervalLowerBound: 0, scalingAdjustment: 1}}]
  scaleIn:
    threshold: 0
    cooldown: 2s
    steps: [{{metricIntervalUpperBound: 0, scalingAdjustment: -1}}]
"""


def test_a_message_wakes_a_pool_at_zero_and_the_pool_returns_to_zero_when_drained(
    aws: LocalAws, redis_url: str, unique: str
) -> None:
    cluster, queue, exchange = f"z-{unique}", f"z-{unique}.tasks", f"z-{unique}"
    aws.create_service(cluster, SERVICE, 0)
    config = parse_config(config_text(redis_url, cluster, queue, exchange), "zero")
    fleet = local_fleet(
        aws,
        cluster,
        SERVICE,
        redis_url,
        [queue],
        control_exchange=exchange,
        stop_timeout=10,
        poll_interval=0.25,
        name_prefix=f"z{unique}",
    )
    sender = TaskSender(redis_url, queue, f"z-{unique}.report")
    passes: list[PassReport] = []
    stop = threading.Event()
    try:
        with fleet:
            controller = threading.Thread(
                target=run_forever, args=(build(config), stop, [passes.append])
            )
            controller.start()
            try:
                wait_for(lambda: len(passes) >= 2, 30, "two passes at 0 tasks")
                assert fleet.counts().running == 0
                assert all(p.results[0].desired == 0 for p in passes)

                sender.send(0.2)  # the first message: its enqueued_at is when it was sent
                wait_for(lambda: sender.records(), 60, "the first message to start on a worker")
                (record,) = sender.records()
                first_worker = record.started - record.enqueued_at
                woke = next(p.results[0] for p in passes if p.results[0].action == "scale_out")
                assert woke.reason == "queue_depth 1 > activation 0: 0 → 1"
                # The figure the README gives: a pass to see the message (interval), the
                # local fleet starting a task (its poll), the worker booting.
                print(f"\nfirst message to first worker from 0 tasks: {first_worker:.1f}s")
                assert first_worker < 30

                # Drained: the count goes back to 0 and the fleet stops the worker.
                wait_for(
                    lambda: passes[-1].results[0].desired == 0 and fleet.counts().running == 0,
                    60,
                    "the pool back at 0 tasks",
                )
                back = [p.results[0] for p in passes if p.results[0].action == "scale_in"]
                assert back
                assert back[-1].applied
                assert back[-1].current == 1
            finally:
                stop.set()
                controller.join(15)
            assert not controller.is_alive(), "the controller did not stop"
        assert fleet.fates().completed >= 1
    finally:
        sender.close()
        delete_keys(redis_url, f"z-{unique}")
