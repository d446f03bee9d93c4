"""The reconcile pass composing observation, policy and action (fake adapters, pure)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from celery_scaler.core.autoscaling import SCALABLE_TARGET
from celery_scaler.core.config import Config, parse_config
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import (
    ScalableTarget,
    ScalingPolicy,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.engine.reconcile import SCALING_REFRESH, Reconciler
from tests.fakes import (
    FakeBroker,
    FakeEcs,
    FakeElection,
    FakeInspector,
    FakeProtector,
    FakeScaling,
)

CONFIG = """
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {name: images}
spec:
  ecs: {cluster: prod, service: images}
  queues: [images]
  minCapacity: 1
  maxCapacity: 10
  metric: queue_depth
  scaleOut:
    threshold: 50
    cooldown: 60s
    steps:
      - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}
      - {metricIntervalLowerBound: 10, metricIntervalUpperBound: 20, scalingAdjustment: 2}
      - {metricIntervalLowerBound: 20, scalingAdjustment: 3}
  scaleIn:
    threshold: 0
    cooldown: 300s
    steps:
      - {metricIntervalUpperBound: 0, scalingAdjustment: -1}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {name: emails}
spec:
  ecs: {cluster: prod, service: emails}
  queues: [emails]
  minCapacity: 1
  maxCapacity: 4
  metric: queue_depth
  scaleOut:
    threshold: 10
    steps:
      - {metricIntervalLowerBound: 0, scalingAdjustment: 1}
"""


def worker(name: str, queue: str, active: int = 0) -> WorkerSnapshot:
    return WorkerSnapshot(
        name=name,
        queues=frozenset({queue}),
        active=active,
        reserved=0,
        scheduled=0,
        revoked=0,
        concurrency=1,
    )


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG, "test.yaml")


def make(
    config: Config, depths: dict[str, int], desired: dict[str, int], **kwargs: object
) -> tuple[Reconciler, FakeEcs, FakeInspector]:
    ecs = FakeEcs(desired=desired)
    inspector = FakeInspector(**kwargs)  # type: ignore[arg-type]
    reconciler = Reconciler(config=config, broker=FakeBroker(depths), ecs=ecs, inspector=inspector)
    return reconciler, ecs, inspector


def test_scales_each_pool_by_its_own_table_and_writes_only_changes(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 63, "emails": 3}, {"images": 4, "emails": 2})
    images, emails = reconciler.reconcile(1000.0).results
    assert (images.action, images.current, images.desired, images.applied) == (
        "scale_out",
        4,
        6,
        True,
    )
    assert "queue_depth 63 ≥ 50" in images.reason
    assert "4 → 6" in images.reason
    assert (emails.action, emails.desired, emails.applied) == ("hold", 2, False)
    assert ecs.writes == [("images", 6)]


def test_inspects_once_per_pass_expecting_each_pools_running_workers(config: Config) -> None:
    reconciler, _, inspector = make(config, {}, {"images": 3, "emails": 2})
    reconciler.reconcile(0.0)
    assert inspector.rounds == [{frozenset({"images"}): 3, frozenset({"emails"}): 2}]


def test_pools_on_the_same_queues_wait_for_all_their_workers() -> None:
    # Both pools count every worker on `images` (workers_in_pool), so both services' tasks.
    twins = parse_config(CONFIG.replace("queues: [emails]", "queues: [images]"), "test.yaml")
    reconciler, _, inspector = make(twins, {}, {"images": 3, "emails": 2})
    reconciler.reconcile(0.0)
    assert inspector.rounds == [{frozenset({"images"}): 5}]


def test_a_pool_whose_service_was_not_read_expects_nothing(config: Config) -> None:
    reconciler, _, inspector = make(config, {}, {"images": 3})  # emails: no such service
    reconciler.reconcile(0.0)
    assert inspector.rounds == [{frozenset({"images"}): 3}]


def test_dry_run_decides_but_writes_nothing_and_starts_no_cooldown(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 80}, {"images": 4, "emails": 1})
    first = reconciler.reconcile(0.0, dry_run=True, only=[config.pool("images")]).results
    assert (first[0].action, first[0].desired, first[0].applied, first[0].dry_run) == (
        "scale_out",
        7,
        False,
        True,
    )
    assert ecs.writes == []
    assert reconciler.memory["images"].scale_out_cooldown is None


def test_cooldown_remembered_between_passes(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 55}, {"images": 4, "emails": 1})
    reconciler.reconcile(0.0, only=[config.pool("images")])  # +1 → 5, cooldown starts
    reconciler.broker = FakeBroker({"images": 75})  # now the +3 step, inside the cooldown
    (result,) = reconciler.reconcile(30.0, only=[config.pool("images")]).results
    assert (result.current, result.desired) == (5, 7)  # 1 already added: 4 + 3 = 7
    assert ecs.writes == [("images", 5), ("images", 7)]


@pytest.mark.parametrize(
    ("broker_failing", "inspect_failing", "message"),
    [
        (True, False, "cannot reach redis://:***@broker"),
        (False, True, "inspect failed"),
    ],
)
def test_observation_failure_holds_and_reports(
    config: Config, broker_failing: bool, inspect_failing: bool, message: str
) -> None:
    reconciler, ecs, _ = make(config, {"images": 0}, {"images": 5, "emails": 1})
    reconciler.broker = FakeBroker({}, failing=broker_failing)
    reconciler.inspector = FakeInspector(failing=inspect_failing)
    results = reconciler.reconcile(0.0).results
    assert all(r.action == "hold" and r.error and message in r.error for r in results)
    assert ecs.writes == []


def test_missing_service_is_that_pool_error_only(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 70, "emails": 30}, {"emails": 1})
    images, emails = reconciler.reconcile(0.0).results
    assert images.error is not None
    assert "MISSING" in images.error
    assert (images.current, images.desired, images.action) == (None, None, "hold")
    assert emails.applied
    assert ecs.writes == [("emails", 2)]


def test_failed_write_is_an_error_never_assumed_done(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 70}, {"images": 4, "emails": 1})
    ecs.failing_writes = True
    (result,) = reconciler.reconcile(0.0, only=[config.pool("images")]).results
    assert result.applied is False
    assert result.error is not None
    assert "ThrottlingException" in result.error
    # No cooldown recorded for a change that did not happen.
    assert reconciler.memory["images"].scale_out_cooldown is None


def test_safe_scale_in_counts_only_the_pool_workers(config: Config) -> None:
    busy = (
        worker("a@h", "images", active=1),
        worker("b@h", "images", active=1),
        worker("c@h", "emails", active=1),
    )
    reconciler, _, _ = make(config, {"images": 0}, {"images": 2, "emails": 1}, workers=busy)
    (result,) = reconciler.reconcile(0.0, only=[config.pool("images")]).results
    assert (result.action, result.desired) == ("hold", 2)
    assert "2 workers are busy" in result.reason
    assert result.observed["active_tasks"] == 2
    assert result.observed["worker_status"] == 2


def test_json_line_has_the_fields_design_promises(config: Config) -> None:
    reconciler, _, _ = make(config, {"images": 0}, {"images": 1, "emails": 1})
    line = reconciler.reconcile(0.0).results[0].to_json()
    for key in (
        "pool",
        "cluster",
        "service",
        "metric",
        "value",
        "current",
        "desired",
        "action",
        "applied",
        "dry_run",
        "reason",
        "observed",
        "error",
        "failures",
    ):
        assert key in line


def test_report_carries_each_pool_observation(config: Config) -> None:
    reconciler, _, _ = make(config, {"images": 7}, {"images": 2, "emails": 1})
    report = reconciler.reconcile(42.0)
    assert report.time == 42.0
    assert report.duration_seconds >= 0
    assert set(report.observations) == {"images", "emails"}
    broker = report.observations["images"].broker
    assert broker is not None
    assert broker.queue_depth == 7


def test_state_survives_a_restart_through_the_service_tags(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 55}, {"images": 4, "emails": 1})
    reconciler.reconcile(1000.0, only=[config.pool("images")])  # +1 → 5, cooldown starts
    assert ecs.tags["images"]["celery-scaler.io/last-desired"] == "5"
    # A new process (SIGKILL and restart) with nothing in memory, inside the cooldown:
    # the +3 step adds only what the cooldown has not added yet.
    restarted = Reconciler(
        config=config, broker=FakeBroker({"images": 75}), ecs=ecs, inspector=FakeInspector()
    )
    (result,) = restarted.reconcile(1030.0, only=[config.pool("images")]).results
    assert (result.current, result.desired) == (5, 7)
    assert "1 already added in cooldown" in result.reason


def test_paused_tag_holds_and_removing_it_resumes(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 80}, {"images": 2, "emails": 1})
    ecs.tags["images"] = {"celery-scaler.io/paused": "true"}
    (result,) = reconciler.reconcile(0.0, only=[config.pool("images")]).results
    assert (result.action, result.applied) == ("hold", False)
    assert "paused" in result.reason
    del ecs.tags["images"]["celery-scaler.io/paused"]
    (result,) = reconciler.reconcile(15.0, only=[config.pool("images")]).results
    assert (result.action, result.applied) == ("scale_out", True)


def test_external_change_is_reported_taken_as_current_and_not_undone(config: Config) -> None:
    idle = tuple(worker(f"w{i}@h", "images") for i in range(8))
    reconciler, ecs, _ = make(config, {"images": 55}, {"images": 3, "emails": 1}, workers=idle)
    only = [config.pool("images")]
    reconciler.reconcile(0.0, only=only)  # 3 → 4
    ecs.desired["images"] = 8  # the CloudWatch fallback scaled out
    reconciler.broker = FakeBroker({"images": 0})
    (result,) = reconciler.reconcile(400.0, only=only).results
    assert result.events == (
        "desiredCount changed outside the controller: 4 → 8; "
        "taken as current, scale-in cooldown started",
    )
    assert (result.current, result.action) == (8, "hold")
    assert "scale-in cooldown has 300s left" in result.reason
    (result,) = reconciler.reconcile(500.0, only=only).results
    assert (result.events, result.action) == ((), "hold")
    (result,) = reconciler.reconcile(701.0, only=only).results
    assert (result.action, result.desired) == ("scale_in", 7)


FALLBACK = CONFIG.replace(
    "  metric: queue_depth\n  scaleOut:\n    threshold: 50",
    "  metric: queue_depth\n  fallback: {failureThreshold: 2, capacity: 6}\n"
    "  scaleOut:\n    threshold: 50",
    1,
)


def test_fallback_after_consecutive_failures_until_a_pass_succeeds() -> None:
    config = parse_config(FALLBACK, "test.yaml")
    reconciler, ecs, _ = make(config, {}, {"images": 3, "emails": 1})
    reconciler.broker = FakeBroker({}, failing=True)
    only = [config.pool("images")]
    (first,) = reconciler.reconcile(0.0, only=only).results
    assert (first.action, first.desired, first.failures) == ("hold", 3, 1)
    (second,) = reconciler.reconcile(15.0, only=only).results
    assert (second.action, second.desired, second.applied) == ("scale_out", 6, True)
    assert "fallback after 2 failed passes" in second.reason
    assert second.failures == 2  # what Prometheus' celery_scaler_fallback_active reads
    assert ecs.tags["images"]["celery-scaler.io/failures"] == "2"
    reconciler.broker = FakeBroker({"images": 20})
    (recovered,) = reconciler.reconcile(30.0, only=only).results
    assert (recovered.error, recovered.failures) == (None, 0)
    assert "celery-scaler.io/failures" not in ecs.tags["images"]


def test_failed_tag_write_is_reported(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 70}, {"images": 4, "emails": 1})
    ecs.failing_tags = True
    (result,) = reconciler.reconcile(0.0, only=[config.pool("images")]).results
    assert result.applied is True
    assert result.error is not None
    assert "TagResource failed" in result.error


def test_dry_run_writes_no_tags(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 70}, {"images": 4, "emails": 1})
    reconciler.reconcile(0.0, dry_run=True)
    assert ecs.tags == {}


def test_missing_metric_is_a_failed_pass(config: Config) -> None:
    latency = CONFIG.replace("metric: queue_depth", "metric: queue_latency_seconds", 1)
    config = parse_config(latency, "test.yaml")
    reconciler, _, _ = make(config, {"images": 5}, {"images": 4, "emails": 1})
    (result,) = reconciler.reconcile(0.0, only=[config.pool("images")]).results
    assert result.action == "hold"
    assert result.error == "queue_latency_seconds could not be read this pass"
    assert reconciler.memory["images"].consecutive_failures == 1


@dataclass
class SlowClusterEcs(FakeEcs):
    """Cluster `slow` answers DescribeServices only once another pool has been scaled."""

    scaled_elsewhere: threading.Event = field(default_factory=threading.Event)
    waited_for_other_pool: bool = False

    def describe_many(
        self, cluster: str, services: Sequence[str]
    ) -> dict[str, ServiceObservation | AdapterError]:
        if cluster == "slow":
            self.waited_for_other_pool = self.scaled_elsewhere.wait(timeout=10)
        return super().describe_many(cluster, services)

    def set_desired_count(self, cluster: str, service: str, count: int) -> None:
        super().set_desired_count(cluster, service, count)
        self.scaled_elsewhere.set()


def test_a_slow_cluster_does_not_delay_other_pools() -> None:
    two_clusters = CONFIG.replace(
        "ecs: {cluster: prod, service: emails}", "ecs: {cluster: slow, service: emails}"
    )
    config = parse_config(two_clusters, "test.yaml")
    ecs = SlowClusterEcs(desired={"images": 2, "emails": 1})
    reconciler = Reconciler(
        config=config, broker=FakeBroker({"images": 70}), ecs=ecs, inspector=None
    )
    images, emails = reconciler.reconcile(0.0).results
    assert images.applied
    assert ecs.waited_for_other_pool  # images was scaled while `slow` was still answering
    assert emails.error is None


def test_services_of_one_cluster_are_described_in_one_call(config: Config) -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []

    class CountingEcs(FakeEcs):
        def describe_many(
            self, cluster: str, services: Sequence[str]
        ) -> dict[str, ServiceObservation | AdapterError]:
            calls.append((cluster, tuple(services)))
            return super().describe_many(cluster, services)

    ecs = CountingEcs(desired={"images": 1, "emails": 1})
    Reconciler(config=config, broker=FakeBroker({}), ecs=ecs, inspector=None).reconcile(0.0)
    assert calls == [("prod", ("images", "emails"))]


POOL = """
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {name: {name}}
spec:
  ecs: {cluster: prod, service: {name}}
  queues: [{queue}]
  minCapacity: 1
  maxCapacity: 4
  metric: queue_depth
  scaleOut:
    threshold: 10
    steps:
      - {metricIntervalLowerBound: 0, scalingAdjustment: 1}
"""


def test_a_clusters_describe_calls_go_out_together_ten_services_each() -> None:
    """25 services of one cluster: three DescribeServices calls, all in flight at once
    (each waits for the other two), not one after another."""
    pools = [
        POOL.replace("{name}", f"p{index}").replace("{queue}", f"q{index}") for index in range(25)
    ]
    config = parse_config("---\n".join(pools), "test.yaml")
    together = threading.Barrier(3)
    calls: list[tuple[str, ...]] = []

    class TogetherEcs(FakeEcs):
        def describe_many(
            self, cluster: str, services: Sequence[str]
        ) -> dict[str, ServiceObservation | AdapterError]:
            calls.append(tuple(services))
            together.wait(timeout=10)
            return super().describe_many(cluster, services)

    ecs = TogetherEcs(desired={f"p{index}": 1 for index in range(25)})
    report = Reconciler(config=config, broker=FakeBroker({}), ecs=ecs, inspector=None).reconcile(
        0.0
    )
    assert sorted(len(call) for call in calls) == [5, 10, 10]
    assert sorted(service for call in calls for service in call) == sorted(ecs.desired)
    assert all(result.error is None for result in report.results)


def test_pools_write_their_tags_at_the_same_time() -> None:
    """A first pass writes every scaling pool's tags: four pools' writes are in flight
    together (each waits for the other three), not one pool after another."""
    pools = [
        POOL.replace("{name}", f"p{index}").replace("{queue}", f"q{index}") for index in range(4)
    ]
    config = parse_config("---\n".join(pools), "test.yaml")
    together = threading.Barrier(4)

    first: set[str] = set()

    class TogetherEcs(FakeEcs):
        def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None:
            if arn not in first:  # each pool's first write (its intent) waits for the others
                first.add(arn)
                together.wait(timeout=10)
            super().write_tags(arn, tags, remove)

    ecs = TogetherEcs(desired={f"p{index}": 1 for index in range(4)})
    depths = {f"q{index}": 50 for index in range(4)}
    report = Reconciler(
        config=config, broker=FakeBroker(depths), ecs=ecs, inspector=None
    ).reconcile(0.0)
    assert [(result.action, result.applied, result.error) for result in report.results] == [
        ("scale_out", True, None)
    ] * 4
    assert sorted(ecs.writes) == [(f"p{index}", 2) for index in range(4)]


def test_a_pool_pass_starts_once_what_it_reads_is_in(config: Config) -> None:
    """No pool pass holds a thread waiting on the inspect round: each starts after it."""
    ended: list[float] = []
    started: list[float] = []

    class SlowInspector(FakeInspector):
        def inspect(self, expected: Mapping[frozenset[str], int]) -> tuple[WorkerSnapshot, ...]:
            time.sleep(0.2)
            ended.append(time.monotonic())
            return super().inspect(expected)

    class Recording(Reconciler):
        def _pool_pass(self, *args: Any, **kwargs: Any) -> Any:
            started.append(time.monotonic())
            return super()._pool_pass(*args, **kwargs)

    reconciler = Recording(
        config=config,
        broker=FakeBroker({"images": 0}),
        ecs=FakeEcs(desired={"images": 1, "emails": 1}),
        inspector=SlowInspector(workers=()),
    )
    results = reconciler.reconcile(0.0).results
    assert [result.error for result in results] == [None, None]
    assert len(started) == 2
    assert min(started) >= ended[0]


def test_busy_tasks_are_protected_before_a_scale_in() -> None:
    protecting = CONFIG.replace(
        "  metric: queue_depth", "  metric: queue_depth\n  protectBusyTasks: true", 1
    )
    config = parse_config(protecting, "test.yaml")
    fleet = (worker("celery@10.0.0.1", "images", active=1), worker("celery@10.0.0.2", "images"))
    reconciler, ecs, _ = make(config, {"images": 0}, {"images": 2, "emails": 1}, workers=fleet)
    calls: list[str] = []
    reconciler.protector = FakeProtector(calls, {"10.0.0.1": "task/a", "10.0.0.2": "task/b"})
    original = ecs.set_desired_count

    def recorded(cluster: str, service: str, count: int) -> None:
        calls.append(f"desired {count}")
        original(cluster, service, count)

    ecs.set_desired_count = recorded  # type: ignore[method-assign]
    (result,) = reconciler.reconcile(0.0, only=[config.pool("images")]).results
    assert result.action == "scale_in"
    assert calls == ["protect task/a True 60m", "desired 1"]


def test_the_lease_is_checked_only_before_a_write_and_a_lost_one_writes_nothing(
    config: Config,
) -> None:
    reconciler, ecs, _ = make(config, {"images": 20}, {"images": 2, "emails": 1})
    election = FakeElection()
    reconciler.election = election
    only = [config.pool("images")]
    reconciler.reconcile(0.0, only=only)  # adopts the count: tags to write, so fenced
    assert election.checks == ["images"]
    reconciler.reconcile(15.0, only=only)  # nothing to write: no DynamoDB round trip
    assert election.checks == ["images"]
    reconciler.broker = FakeBroker({"images": 70})
    election.held = False
    (result,) = reconciler.reconcile(30.0, only=only).results
    assert (result.action, result.applied) == ("scale_out", False)
    assert "lease on pool 'images' was lost" in str(result.error)
    assert ecs.writes == []


# --- another autoscaler on a pool's service: a conflict, not a co-driver -----------------

FOREIGN = ScalableTarget(
    "service/prod/images", 1, 10, policies=(ScalingPolicy("images-out", "StepScaling"),)
)


def test_a_foreign_autoscaler_holds_the_pool_even_past_the_fallback() -> None:
    config = parse_config(FALLBACK, "test.yaml")
    reconciler, ecs, _ = make(config, {"images": 80}, {"images": 3, "emails": 1})
    reconciler.scaling = FakeScaling({FOREIGN.resource_id: FOREIGN})
    images, emails = reconciler.reconcile(0.0).results
    assert (images.action, images.desired, images.applied) == ("hold", 3, False)
    assert "Conflict" in images.conditions
    assert "'images-out' (StepScaling)" in str(images.error)
    assert images.failures == 0  # a conflict is no failed read
    assert (emails.action, emails.error) == ("hold", None)
    # Failed reads count as usual, yet the fallback capacity is not applied either: two
    # drivers of one count would undo each other's changes.
    reconciler.broker = FakeBroker({}, failing=True)
    for now in (15.0, 30.0):
        (images,) = reconciler.reconcile(now, only=[config.pool("images")]).results
    assert (images.action, images.desired, images.failures) == ("hold", 3, 2)
    assert ecs.writes == []
    assert "Conflict=" in ecs.tags["images"]["celery-scaler.io/conditions"]


def test_the_controllers_own_fallback_target_is_no_conflict(config: Config) -> None:
    reconciler, ecs, _ = make(config, {"images": 80}, {"images": 4, "emails": 1})
    own = ScalableTarget(
        "service/prod/images",
        1,
        10,
        scale_in_suspended=True,
        policies=(ScalingPolicy("celery-scaler/images/fallback-cpu", "StepScaling"),),
    )
    ecs.tags["images"] = {SCALABLE_TARGET: "celery-scaler/images"}
    reconciler.scaling = FakeScaling({own.resource_id: own})
    images, _ = reconciler.reconcile(0.0).results
    assert (images.action, images.applied, images.error) == ("scale_out", True, None)
    assert "Conflict" not in images.conditions


def test_application_auto_scaling_is_read_once_a_refresh_for_every_pool(config: Config) -> None:
    reconciler, _, _ = make(config, {"images": 80}, {"images": 4, "emails": 1})
    scaling = FakeScaling({FOREIGN.resource_id: FOREIGN})
    reconciler.scaling = scaling
    for now in (0.0, 15.0, SCALING_REFRESH - 1):
        images, _ = reconciler.reconcile(now).results
        assert "Conflict" in images.conditions
    assert scaling.reads == 1  # one read serves both pools and every pass until the refresh
    scaling.targets = {FOREIGN.resource_id: replace(FOREIGN, scale_out_suspended=True)}
    images, _ = reconciler.reconcile(SCALING_REFRESH - 1).results
    assert "Conflict" in images.conditions  # the change is not seen before the refresh
    scaling.targets = {
        FOREIGN.resource_id: replace(FOREIGN, scale_in_suspended=True, scale_out_suspended=True)
    }
    images, _ = reconciler.reconcile(SCALING_REFRESH).results
    assert scaling.reads == 2
    assert (images.action, images.error) == ("scale_out", None)
    assert "Conflict" not in images.conditions
    assert any(event == "Conflict cleared" for event in images.events)


def test_unreadable_application_auto_scaling_is_reported_and_scaling_goes_on(
    config: Config,
) -> None:
    reconciler, _, _ = make(config, {"images": 80}, {"images": 4, "emails": 1})
    scaling = FakeScaling(failing=True)
    reconciler.scaling = scaling
    images, _ = reconciler.reconcile(0.0).results
    assert (images.action, images.applied, images.failures) == ("scale_out", True, 0)
    assert "AccessDeniedException" in str(images.error)
    assert "none is known, so none is assumed" in str(images.error)
    # Once read, a later failure keeps the last answer, and says how old it is.
    scaling.failing, scaling.targets = False, {FOREIGN.resource_id: FOREIGN}
    reconciler.reconcile(SCALING_REFRESH)
    scaling.failing = True
    images, _ = reconciler.reconcile(2 * SCALING_REFRESH).results
    assert "Conflict" in images.conditions
    assert "the answer of 60s ago is used" in str(images.error)
    assert scaling.reads == 3
