"""Drain-then-remove on the honest local ECS: real Celery workers, real Redis, the controller's
own adapters against the local AWS API (task protection included), ECS choosing which task
to stop without knowing Celery, and a stopTimeout short enough to kill any busy task."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import yaml

from celery_scaler.adapters.celery_inspect import inspector_for
from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.core.state import DRAIN
from celery_scaler.engine.reconcile import PoolResult, Reconciler
from celery_scaler.local.aws_api import LocalAws
from celery_scaler.local.demo import TaskSender, delete_keys
from celery_scaler.local.fleet import LocalFleet, local_fleet
from tests.helpers import pool_config
from tests.workers import wait_for

pytestmark = pytest.mark.integration

TASK = 3.0
"""Seconds each task runs: longer than the fleet's stopTimeout, so a stop kills it."""


@dataclass
class Setup:
    aws: LocalAws
    fleet: LocalFleet
    sender: TaskSender
    config_text: str
    results: list[PoolResult]

    def controller(self) -> Reconciler:
        """A new controller process, as far as its memory goes."""
        return build(parse_config(self.config_text, "drain.yaml"))

    def one_pass(self, reconciler: Reconciler) -> PoolResult:
        (result,) = reconciler.reconcile(time.time()).results
        self.results.append(result)
        return result

    def passes_until(
        self, reconciler: Reconciler, done: Callable[[PoolResult], bool], timeout: float
    ) -> PoolResult:
        found: list[PoolResult] = []

        def step() -> bool:
            found.append(self.one_pass(reconciler))
            return done(found[-1])

        wait_for(step, timeout, "the controller to get there", self.details)
        return found[-1]

    def desired(self) -> int:
        (service,) = self.aws.client("ecs").describe_services(
            cluster=self.fleet.cluster, services=["workers"], include=["TAGS"]
        )["services"]
        return int(service["desiredCount"])

    def tags(self) -> dict[str, str]:
        arn = f"arn:aws:ecs:us-east-1:123456789012:service/{self.fleet.cluster}/workers"
        tags = self.aws.client("ecs").list_tags_for_resource(resourceArn=arn)["tags"]
        return {tag["key"]: tag["value"] for tag in tags}

    def consuming(self, worker: str) -> bool:
        with inspector_for(
            self.fleet.broker_url, 1.0, control_exchange=self.fleet.control_exchange
        ) as inspector:
            found = {w.name: w for w in inspector.inspect({frozenset(self.fleet.queues): 1})}
        return worker in found and bool(found[worker].queues & set(self.fleet.queues))

    def details(self) -> str:
        passes = "\n".join(f"{r.action} {r.reason} {r.error or ''}" for r in self.results[-6:])
        events = "\n".join(e.describe() for e in self.fleet.events()[-8:])
        return f"passes:\n{passes}\nfleet:\n{events}"


def drain_config(redis_url: str, unique: str, **spec: object) -> str:
    """Scale in to 1 at once on an empty queue: every other worker is drained."""
    text = pool_config(
        redis_url,
        f"d-{unique}",
        f"d-{unique}.q",
        control_exchange=f"d-{unique}",
        minCapacity=1,
        safeScaleIn=False,
        scaleIn={
            "threshold": 0,
            "cooldown": "0s",
            "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -10}],
        },
        **spec,
    )
    docs = list(yaml.safe_load_all(text))
    docs[0]["spec"].update({"cloudwatch": {"enabled": False}, "prometheus": {"enabled": False}})
    return yaml.safe_dump_all(docs)


@pytest.fixture
def setup(aws: LocalAws, redis_url: str, unique: str) -> Iterator[Setup]:
    aws.create_service(f"d-{unique}", "workers", desired=3)
    fleet = local_fleet(
        aws,
        f"d-{unique}",
        "workers",
        redis_url,
        [f"d-{unique}.q"],
        control_exchange=f"d-{unique}",
        stop_timeout=1.0,
        poll_interval=0.2,
        name_prefix=f"d{unique}",
        # One task per worker, none prefetched behind it: each worker runs exactly one.
        env={"CELERY_SCALER_ACKS_LATE": "1"},
    )
    sender = TaskSender(redis_url, f"d-{unique}.q", f"d-{unique}.report")
    fleet.start()
    try:
        yield Setup(aws, fleet, sender, drain_config(redis_url, unique), [])
    finally:
        # Tasks still running are of no interest any more: no warm shutdown to wait for.
        fleet.close(timeout=0.5)
    sender.close()
    delete_keys(redis_url, f"d-{unique}")


def busy_everywhere(setup: Setup, seconds: float = TASK) -> None:
    setup.sender.send(seconds, len(setup.fleet.workers))
    wait_for(
        lambda: len({r.worker for r in setup.sender.records()}) == len(setup.fleet.workers),
        20,
        "a task on every worker",
    )


def test_drain_then_remove_lowers_the_count_without_interrupting_a_task(setup: Setup) -> None:
    busy_everywhere(setup)
    reconciler = setup.controller()
    first = setup.one_pass(reconciler)
    # Every worker is busy: two are drained, the count waits for them.
    assert first.action == "hold", setup.details()
    assert first.drain is not None
    assert first.drain["phase"] == "draining"
    assert (first.drain["from"], first.drain["to"]) == (3, 1)
    assert "Draining" in first.conditions
    drained = set(first.drain["workers"])
    (kept,) = {w.name for w in setup.fleet.workers} - drained
    assert setup.desired() == 3
    assert setup.tags()[DRAIN].startswith("3 to 1 ")

    lowered = setup.passes_until(reconciler, lambda r: r.applied, 20)
    assert (lowered.action, lowered.desired) == ("scale_in", 1)
    assert "drained" in lowered.reason
    # ECS could stop only the drained tasks; once it has, the drain is over.
    setup.passes_until(reconciler, lambda r: r.drain is None, 20)
    wait_for(lambda: setup.fleet.counts().stopping == 0, 10, "the drained tasks to stop")
    assert [w.name for w in setup.fleet.workers] == [kept]
    wait_for(lambda: setup.fleet.fates().completed == 3, 20, "every task to complete")
    fates = setup.fleet.fates()
    assert (fates.interrupted, fates.lost) == (0, 0)
    assert DRAIN not in setup.tags()
    assert any("drain done" in event for r in setup.results for event in r.events)


def test_a_drain_that_times_out_restores_the_consumers(setup: Setup, redis_url: str) -> None:
    setup.config_text = setup.config_text.replace(
        "safeScaleIn: false", "safeScaleIn: false\n  drainTimeout: 1s"
    )
    busy_everywhere(setup, 30.0)
    reconciler = setup.controller()
    first = setup.one_pass(reconciler)
    assert first.drain is not None
    drained = list(first.drain["workers"])
    wait_for(lambda: not any(setup.consuming(name) for name in drained), 5, "consumers gone")
    given_up = setup.passes_until(reconciler, lambda r: r.drain is None, 15)
    assert given_up.action == "hold"
    assert any("drainTimeout" in event for event in given_up.events)
    wait_for(lambda: all(setup.consuming(name) for name in drained), 5, "consumers back")
    assert setup.desired() == 3
    assert DRAIN not in setup.tags()
    assert setup.fleet.fates().interrupted == 0


def test_a_drain_interrupted_by_a_restart_restores_the_consumers(setup: Setup) -> None:
    busy_everywhere(setup, 30.0)
    first = setup.one_pass(setup.controller())
    assert first.drain is not None
    drained = list(first.drain["workers"])
    # A new controller process finds the drain on the service and gives it up.
    after = setup.one_pass(setup.controller())
    assert after.drain is None
    assert any("restarted" in event and "consumers restored" in event for event in after.events)
    wait_for(lambda: all(setup.consuming(name) for name in drained), 5, "consumers back")
    assert setup.desired() == 3
    assert DRAIN not in setup.tags()


def test_protection_never_blocks_a_deployment(setup: Setup, unique: str) -> None:
    # No scale-in wanted (minCapacity 3); busy tasks protected; a rollout may wait for a
    # busy task at most drainTimeout.
    setup.config_text = setup.config_text.replace("minCapacity: 1", "minCapacity: 3").replace(
        "safeScaleIn: false", "safeScaleIn: false\n  protectBusyTasks: true\n  drainTimeout: 4s"
    )
    short, long_, idle = setup.fleet.workers
    setup.sender.send(1.5)
    wait_for(lambda: len(setup.sender.records()) == 1, 10, "the short task to start")
    setup.sender.send(30.0)
    wait_for(lambda: len(setup.sender.records()) == 2, 10, "the long task to start")
    reconciler = setup.controller()
    assert setup.one_pass(reconciler).action == "hold"
    ecs = setup.aws.client("ecs")
    revision = ecs.register_task_definition(
        family="workers-task",
        containerDefinitions=[{"name": "worker", "image": "celery-worker:v2", "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=setup.fleet.cluster, service="workers", taskDefinition=revision)
    started = time.time()

    def deployed(result: PoolResult) -> bool:
        (service,) = ecs.describe_services(cluster=setup.fleet.cluster, services=["workers"])[
            "services"
        ]
        return len(service["deployments"]) == 1

    setup.passes_until(reconciler, deployed, 20)
    # The long task held its old task at most drainTimeout (and the passes around it).
    assert time.time() - started < 4 + 4
    old = {short.name, long_.name, idle.name}
    assert not {w.name for w in setup.fleet.workers} & old
    # Its old task stops like any other: the long task is cut short after stopTimeout.
    wait_for(lambda: setup.fleet.fates().interrupted == 1, 10, "the long task to be cut")
    assert setup.fleet.fates().completed == 1
