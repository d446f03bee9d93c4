"""The samples a pass publishes: each defect of the original Beat task has a test here."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from celery_scaler.core.model import (
    WorkerSnapshot,
)
from celery_scaler.telemetry.samples import (
    METRICS,
    CounterState,
    Sample,
    SeenWorker,
    TaskEvents,
    increase,
    merge_observations,
    pass_samples,
)
from tests.helpers import observation, report, worker


def values(samples: Sequence[Sample], dims: tuple[tuple[str, str], ...] = ()) -> dict[str, float]:
    return {s.name: s.value for s in samples if s.dimensions == dims}


POOL = (("Pool", "p"),)


def two_passes(
    before: Sequence[WorkerSnapshot],
    after: Sequence[WorkerSnapshot],
    events: TaskEvents | None = None,
    elapsed: float = 15.0,
) -> dict[str, float]:
    """The pool's samples of the second of two passes `elapsed` apart."""
    _, state = pass_samples(report(100.0, {"p": observation(before)}), CounterState())
    samples, _ = pass_samples(report(100.0 + elapsed, {"p": observation(after)}), state, events)
    return values(samples, POOL)


# --- gauges: the original's unit and double-count defects --------------------------------


def test_worker_status_counts_each_worker_once_per_pool_and_for_the_fleet() -> None:
    # The original added the worker count twice: 4 workers published 8. Here a worker
    # that consumes the queues of two pools is in both pools but once in the fleet.
    fleet = [worker(f"w{i}", queues=("a", "b")) for i in range(4)]
    samples, _ = pass_samples(
        report(0.0, {"a": observation(fleet, {"a": 1}), "b": observation(fleet, {"b": 2})}),
        CounterState(),
    )
    assert values(samples, (("Pool", "a"),))["worker_status"] == 4
    assert values(samples, (("Pool", "b"),))["worker_status"] == 4
    assert values(samples)["worker_status"] == 4
    assert values(samples)["queue_depth"] == 3


def test_memory_usage_is_the_largest_max_rss_in_megabytes() -> None:
    # Celery reports maxrss in kilobytes; the original labelled that number Megabytes.
    fleet = [worker("w0", rss_kb=102_400), worker("w1", rss_kb=204_800)]
    samples, _ = pass_samples(report(0.0, {"p": observation(fleet)}), CounterState())
    memory = [s for s in samples if s.name == "memory_usage"]
    assert {(s.dimensions, s.value, s.unit) for s in memory} == {
        (POOL, 200.0, "Megabytes"),
        ((), 200.0, "Megabytes"),
    }


def test_units_follow_the_design_table() -> None:
    fleet = [worker("w0", rss_kb=1024, active=1)]
    samples, _ = pass_samples(report(0.0, {"p": observation(fleet)}), CounterState())
    units = {s.name: s.unit for s in samples}
    assert units["busy_ratio"] == "None"
    assert units["memory_usage"] == "Megabytes"
    assert units["queue_depth"] == units["desired_capacity"] == "Count"
    assert {s.name for s in samples} <= set(METRICS)


def test_capacity_and_heartbeat_every_pass() -> None:
    samples, _ = pass_samples(report(0.0, {"p": observation([], desired=3)}, 5), CounterState())
    assert values(samples, POOL)["current_capacity"] == 3
    assert values(samples, POOL)["desired_capacity"] == 5
    assert values(samples)["controller_heartbeat"] == 1


def test_missing_data_is_absent_never_zero() -> None:
    samples, _ = pass_samples(report(0.0, {"p": observation(None)}), CounterState())
    pool = values(samples, POOL)
    assert "worker_status" not in pool
    assert "active_tasks" not in pool
    assert "worker_status" not in values(samples)  # nor is a partial fleet total


def test_fleet_totals_only_when_the_pass_covered_every_pool() -> None:
    samples, _ = pass_samples(report(0.0, {"p": observation([])}), CounterState(), fleet=False)
    assert values(samples) == {"controller_heartbeat": 1.0}


# --- counters: increases, never lifetime totals -----------------------------------------


def test_no_counters_without_a_previous_pass() -> None:
    samples, state = pass_samples(
        report(0.0, {"p": observation([worker("w0", processed=50)])}), CounterState()
    )
    assert not {s.name for s in samples} & {"processed_tasks", "failed_tasks"}
    assert state.workers["w0"].processed_total == 50


def test_processed_tasks_is_the_increase_since_the_previous_pass() -> None:
    # The original published the lifetime total: an alarm on its Sum fires forever.
    pool = two_passes([worker("w0", processed=50)], [worker("w0", processed=57)])
    assert pool["processed_tasks"] == 7


def test_a_quiet_pass_after_busy_ones_publishes_zero() -> None:
    assert (
        two_passes([worker("w0", processed=50)], [worker("w0", processed=50)])["processed_tasks"]
        == 0
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # Restarted with the same name; its uptime is shorter than the pass interval.
        (worker("w0", processed=50), worker("w0", processed=60, uptime=5.0), 60),
        # A lifetime count that went down is a restart, whatever the uptime says.
        (worker("w0", processed=50), worker("w0", processed=3, uptime=None), 3),
        # Uptime longer than the interval: the same process, a plain increase.
        (worker("w0", processed=50), worker("w0", processed=60, uptime=20.0), 10),
    ],
    ids=["restart-by-uptime", "counter-reset", "no-restart"],
)
def test_worker_restarts(before: WorkerSnapshot, after: WorkerSnapshot, expected: int) -> None:
    assert two_passes([before], [after])["processed_tasks"] == expected


def test_workers_that_come_and_go() -> None:
    # w1 started after the previous pass (uptime < interval): all its work is new.
    # w2 is older but missed the previous round: its count is a baseline, not new work.
    # w0 is gone: it takes nothing away from the sum.
    pool = two_passes(
        [worker("w0", processed=50)],
        [worker("w1", processed=4, uptime=10.0), worker("w2", processed=900, uptime=7200.0)],
    )
    assert pool["processed_tasks"] == 4


def test_a_worker_missing_a_round_counts_its_work_when_back() -> None:
    _, state = pass_samples(
        report(0.0, {"p": observation([worker("w0", processed=10), worker("w1", processed=5)])}),
        CounterState(),
    )
    _, state = pass_samples(report(15.0, {"p": observation([worker("w0", processed=12)])}), state)
    samples, _ = pass_samples(
        report(30.0, {"p": observation([worker("w0", processed=12), worker("w1", processed=9)])}),
        state,
    )
    assert values(samples, POOL)["processed_tasks"] == 4


def test_increase_of_a_new_worker_needs_its_uptime() -> None:
    assert increase(None, worker("w", processed=3, uptime=None), 15.0) is None
    assert increase(None, worker("w", processed=3, uptime=10.0), 15.0) == 3
    seen = SeenWorker(processed_total=10, seen=0.0, pools=frozenset({"p"}))
    assert increase(seen, worker("w", processed=12), 15.0) == 2


def test_outcomes_from_task_events() -> None:
    events = TaskEvents(
        complete=True,
        counts={"w0": {"failed_tasks": 2, "succeeded_tasks": 5}, "w1": {"retried_tasks": 1}},
        senders=frozenset({"w0", "w1"}),
    )
    pool = two_passes(
        [worker("w0", processed=0), worker("w1", processed=0)],
        [worker("w0", processed=7), worker("w1", processed=1)],
        events,
    )
    assert {k: pool[k] for k in ("processed_tasks", "succeeded_tasks", "failed_tasks")} == {
        "processed_tasks": 8,
        "succeeded_tasks": 5,
        "failed_tasks": 2,
    }
    assert pool["retried_tasks"] == 1


def test_outcomes_absent_when_the_receiver_had_a_gap() -> None:
    events = TaskEvents(complete=False, counts={"w0": {"failed_tasks": 1}}, senders=frozenset())
    pool = two_passes([worker("w0", processed=0)], [worker("w0", processed=1)], events)
    assert "failed_tasks" not in pool
    assert pool["processed_tasks"] == 1


def test_outcomes_absent_when_a_busy_worker_sends_no_task_events() -> None:
    # w1 received tasks but never sent an event: it runs without -E, so a 0 would lie.
    events = TaskEvents(complete=True, counts={}, senders=frozenset({"w0"}))
    pool = two_passes(
        [worker("w0", processed=0), worker("w1", processed=0)],
        [worker("w0", processed=0), worker("w1", processed=3)],
        events,
    )
    assert "failed_tasks" not in pool
    idle = two_passes([worker("w1", processed=3)], [worker("w1", processed=3)], events)
    assert idle["failed_tasks"] == 0  # nothing received, nothing failed: a true zero


def test_a_worker_gone_since_the_last_pass_still_counts_its_events() -> None:
    events = TaskEvents(
        complete=True, counts={"w0": {"failed_tasks": 1}}, senders=frozenset({"w0"})
    )
    pool = two_passes([worker("w0"), worker("w1")], [worker("w1")], events)
    assert pool["failed_tasks"] == 1


# --- per-worker metrics ------------------------------------------------------------------


def test_per_worker_metrics_only_when_enabled() -> None:
    fleet = [worker("w0", active=1, rss_kb=2048), worker("w1")]
    obs = {"p": observation(fleet)}
    off, state = pass_samples(report(0.0, obs), CounterState())
    assert not any(dim == "WorkerName" for s in off for dim, _ in s.dimensions)

    on, _ = pass_samples(report(15.0, obs), state, per_worker=True)
    w0 = values(on, (("WorkerName", "w0"),))
    assert (w0["active_tasks"], w0["memory_usage"], w0["processed_tasks"]) == (1, 2.0, 0)
    assert "worker_status" not in w0  # always 1 for one worker: a billed metric saying nothing
    assert {dict(s.dimensions).get("WorkerName") for s in on} == {None, "w0", "w1"}


def test_forgotten_workers_leave_the_state() -> None:
    _, state = pass_samples(report(0.0, {"p": observation([worker("w0")])}), CounterState())
    _, state = pass_samples(report(10_000.0, {"p": observation([])}), state)
    assert state.workers == {}


def test_merge_counts_a_shared_queue_once() -> None:
    merged = merge_observations(
        [observation([], {"shared": 5, "a": 1}), observation([], {"shared": 5, "b": 2})]
    )
    assert merged.broker is not None
    assert merged.broker.queue_depth == 8
    assert merged.service is not None
    assert merged.service.desired == 4


# --- leader election: a replica reconciles only the pools it holds -----------------------


def test_a_pool_taken_over_from_another_replica_starts_from_a_baseline() -> None:
    # w1 started 10 s ago in pool b, which the other replica held and counted until now.
    _, state = pass_samples(report(0.0, {"a": observation([worker("w0")])}), CounterState())
    taken = {
        "a": observation([worker("w0")]),
        "b": observation([worker("w1", queues=("b",), processed=6, uptime=10.0)]),
    }
    samples, _ = pass_samples(report(15.0, taken), state)
    assert values(samples, (("Pool", "b"),))["processed_tasks"] == 0


def test_a_pool_lost_and_regained_does_not_count_the_other_replicas_work() -> None:
    both = {"a": observation([worker("w0")]), "b": observation([worker("w1", queues=("b",))])}
    _, state = pass_samples(report(0.0, both), CounterState())
    _, state = pass_samples(report(15.0, {"a": observation([worker("w0")])}), state)  # b lost
    assert "w1" not in state.workers
    regained = {
        "a": observation([worker("w0")]),
        "b": observation([worker("w1", queues=("b",), processed=40)]),
    }
    samples, _ = pass_samples(report(30.0, regained), state)
    assert values(samples, (("Pool", "b"),))["processed_tasks"] == 0
