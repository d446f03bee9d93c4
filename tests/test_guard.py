"""Drain-then-remove through the reconcile pass, with fakes of every port: the order of
the writes is what makes a scale-in safe, so the order is what these check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from celery_scaler.core.config import Config, parse_config
from celery_scaler.core.model import WorkerSnapshot
from celery_scaler.core.state import DRAIN
from celery_scaler.engine.reconcile import Reconciler
from tests.fakes import FakeBroker, FakeConsumers, FakeEcs, FakeInspector, FakeProtector

CONFIG = """
apiVersion: celery-scaler/v1
kind: Controller
spec: {broker: 'redis://localhost:6379/0', interval: 15s}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {name: images}
spec:
  ecs: {cluster: prod, service: images}
  queues: [images]
  minCapacity: 2
  maxCapacity: 10
  metric: queue_depth
  safeScaleIn: false
  scaleOut: {threshold: 50, steps: [{metricIntervalLowerBound: 0, scalingAdjustment: 2}]}
  scaleIn:
    threshold: 0
    cooldown: 0s
    steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1}]
"""
TASKS = {"10.0.0.1": "task/ta", "10.0.0.2": "task/tb", "10.0.0.3": "task/tc"}
"""Worker address → its task (matched by private IP: the ids appear in no worker name)."""


def worker(address: str, active: int = 0, consuming: bool = True) -> WorkerSnapshot:
    queues = frozenset({"images"} if consuming else ())
    return WorkerSnapshot(f"celery@{address}", queues, active, 0, 0, 0, 1)


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG, "test.yaml")


def make(
    config: Config, workers: tuple[WorkerSnapshot, ...], depth: int = 0
) -> tuple[Reconciler, FakeEcs, list[str]]:
    calls: list[str] = []
    ecs = FakeEcs(desired={"images": 3})
    original = ecs.set_desired_count

    def recorded(cluster: str, service: str, count: int) -> None:
        calls.append(f"desired {count}")
        original(cluster, service, count)

    ecs.set_desired_count = recorded  # type: ignore[method-assign]
    reconciler = Reconciler(
        config=config,
        broker=FakeBroker({"images": depth}),
        ecs=ecs,
        inspector=FakeInspector(workers),
        protector=FakeProtector(calls, dict(TASKS)),
        consumers=FakeConsumers(calls),
    )
    return reconciler, ecs, calls


def test_a_scale_in_drains_first_and_lowers_the_count_only_once_the_worker_is_idle(
    config: Config,
) -> None:
    busy = (worker("10.0.0.1", 1), worker("10.0.0.2", 1), worker("10.0.0.3", 2))
    reconciler, ecs, calls = make(config, busy)
    (first,) = reconciler.reconcile(0.0).results
    # The least busy worker is drained; the others are protected; the count holds.
    assert (first.action, first.desired) == ("hold", 3)
    assert first.drain is not None
    assert first.drain["workers"] == ["celery@10.0.0.1"]
    assert "Draining" in first.conditions
    assert ecs.tags["images"][DRAIN].startswith("3 to 2 ")
    assert calls == [
        "cancel_consumer celery@10.0.0.1 images",
        "protect task/tb,task/tc True 10m",
    ]
    calls.clear()
    # Still busy: nothing changes.
    reconciler.inspector = FakeInspector((replace(busy[0], queues=frozenset()), *busy[1:]))
    (waiting,) = reconciler.reconcile(15.0).results
    assert waiting.action == "hold"
    assert "celery@10.0.0.1 1 task left" in waiting.reason
    assert calls == []
    # Idle: the count drops, the others protected all along.
    reconciler.inspector = FakeInspector((worker("10.0.0.1", consuming=False), *busy[1:]))
    (removed,) = reconciler.reconcile(30.0).results
    assert (removed.action, removed.desired, removed.applied) == ("scale_in", 2, True)
    assert calls == ["desired 2"]
    assert removed.drain is not None
    assert removed.drain["phase"] == "removing"
    calls.clear()
    # ECS stopped the drained task: the others' protection goes, the drain is over.
    assert isinstance(reconciler.protector, FakeProtector)
    del reconciler.protector.tasks_by_worker["10.0.0.1"]
    reconciler.inspector = FakeInspector(busy[1:])
    (done,) = reconciler.reconcile(45.0).results
    assert done.drain is None
    assert "Draining" not in done.conditions
    assert any("drain done" in event for event in done.events)
    assert calls == ["protect task/tb,task/tc False 60m"]
    assert DRAIN not in ecs.tags["images"]


def test_a_scale_out_gives_a_drain_up_and_goes_ahead(config: Config) -> None:
    idle = (worker("10.0.0.1"), worker("10.0.0.2"), worker("10.0.0.3", 1))
    reconciler, ecs, calls = make(config, idle)
    (first,) = reconciler.reconcile(0.0).results
    assert first.drain is not None
    assert first.drain["workers"] == ["celery@10.0.0.1"]
    calls.clear()
    reconciler.broker = FakeBroker({"images": 80})
    (out,) = reconciler.reconcile(15.0).results
    assert (out.action, out.desired, out.applied) == ("scale_out", 5, True)
    assert out.drain is None
    assert calls[0] == "add_consumer celery@10.0.0.1 images"
    assert any("needs more workers again; consumers restored" in e for e in out.events)
    assert DRAIN not in ecs.tags["images"]


def test_a_worker_that_did_not_confirm_is_told_again_and_never_counts_as_drained(
    config: Config,
) -> None:
    reconciler, ecs, calls = make(config, (worker("10.0.0.1"), worker("10.0.0.2")))
    assert isinstance(reconciler.consumers, FakeConsumers)
    reconciler.consumers.failing = True
    (result,) = reconciler.reconcile(0.0).results
    # Its queues could not be given back either: the drain is kept, to be tried again.
    assert (result.action, result.applied) == ("hold", False)
    assert result.drain is not None
    assert "did not answer" in str(result.error)
    assert calls[:2] == [
        "cancel_consumer celery@10.0.0.1 images",
        "add_consumer celery@10.0.0.1 images",
    ]
    reconciler.consumers.failing = False
    calls.clear()
    # Idle, yet still consuming the pool's queue: not drained; told again.
    (again,) = reconciler.reconcile(15.0).results
    assert (again.action, again.applied) == ("hold", False)
    assert "celery@10.0.0.1 still consumes" in again.reason
    assert calls == ["cancel_consumer celery@10.0.0.1 images"]
    assert ecs.writes == []


def test_a_task_someone_else_protects_is_not_drained(config: Config) -> None:
    reconciler, _, _ = make(config, (worker("10.0.0.1"), worker("10.0.0.2", 1)))
    assert isinstance(reconciler.protector, FakeProtector)
    reconciler.protector.protected.add("task/ta")
    (result,) = reconciler.reconcile(0.0).results
    assert result.drain is not None
    assert result.drain["workers"] == ["celery@10.0.0.2"]


def test_the_inspector_itself_drains_so_its_next_round_asks_the_drained_queues_again(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It keeps each worker's queues for a minute otherwise (adapters/celery_inspect.py).
    from celery_scaler.compose import build

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # clients are built, never called
    reconciler = build(config)
    assert reconciler.consumers is reconciler.inspector
    off = parse_config(CONFIG.replace("safeScaleIn: false", "drainScaleIn: false"), "x")
    assert build(off).consumers is None


def test_a_service_that_runs_no_task_scales_in_without_a_drain(config: Config) -> None:
    reconciler, _, calls = make(config, ())
    assert isinstance(reconciler.protector, FakeProtector)
    reconciler.protector.tasks_by_worker.clear()
    (result,) = reconciler.reconcile(0.0).results
    assert (result.action, result.desired, result.applied, result.drain) == (
        "scale_in",
        2,
        True,
        None,
    )
    assert calls == ["desired 2"]


def test_a_steady_pass_reads_no_task_and_a_scale_in_does(config: Config) -> None:
    idle = (worker("10.0.0.1"), worker("10.0.0.2"))
    reconciler, ecs, calls = make(config, idle)
    assert isinstance(reconciler.protector, FakeProtector)
    ecs.desired["images"] = 2  # at minCapacity: nothing to drain, nothing to protect
    (steady,) = reconciler.reconcile(0.0).results
    assert (steady.action, reconciler.protector.reads, calls) == ("hold", 0, [])
    ecs.desired["images"] = 3
    (scale_in,) = reconciler.reconcile(15.0).results
    assert scale_in.drain is not None
    assert reconciler.protector.reads == 1
