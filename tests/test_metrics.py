"""DESIGN's metric table computed from one observation; missing inputs mean absent, not 0."""

from __future__ import annotations

import pytest

from celery_scaler.core.metrics import Metric, busy_workers, compute_metrics, unique_workers
from celery_scaler.core.model import (
    BrokerObservation,
    Observation,
    ServiceObservation,
    WorkerSnapshot,
)

INSPECT_METRICS = {
    Metric.ACTIVE_TASKS,
    Metric.RESERVED_TASKS,
    Metric.SCHEDULED_TASKS,
    Metric.REVOKED_TASKS,
    Metric.WORKER_STATUS,
    Metric.BUSY_RATIO,
    Metric.MEMORY_USAGE,
}


def worker(
    name: str,
    *,
    active: int = 0,
    reserved: int = 0,
    scheduled: int = 0,
    revoked: int = 0,
    concurrency: int = 4,
    rss_kb: int | None = None,
) -> WorkerSnapshot:
    return WorkerSnapshot(
        name=name,
        queues=frozenset({"celery"}),
        active=active,
        reserved=reserved,
        scheduled=scheduled,
        revoked=revoked,
        concurrency=concurrency,
        max_rss_kb=rss_kb,
    )


def service(desired: int) -> ServiceObservation:
    return ServiceObservation(desired=desired, running=desired, pending=0, deploying=False)


def observe(
    *,
    depth: int | None = 10,
    in_flight: int | None = None,
    latency: float | None = None,
    workers: tuple[WorkerSnapshot, ...] | None = (),
    desired: int | None = 5,
) -> Observation:
    broker = (
        None
        if depth is None
        else BrokerObservation(queue_depth=depth, in_flight=in_flight, latency_seconds=latency)
    )
    return Observation(
        broker=broker,
        workers=workers,
        service=None if desired is None else service(desired),
    )


def test_sums_over_workers() -> None:
    values = compute_metrics(
        observe(
            workers=(
                worker("celery@a", active=2, reserved=1, scheduled=3, revoked=1),
                worker("celery@b", active=1, reserved=4, scheduled=0, revoked=2),
            )
        )
    )
    assert values[Metric.ACTIVE_TASKS] == 3
    assert values[Metric.RESERVED_TASKS] == 5
    assert values[Metric.SCHEDULED_TASKS] == 3
    assert values[Metric.REVOKED_TASKS] == 3
    assert values[Metric.QUEUE_DEPTH] == 10


def test_worker_status_counts_each_worker_once() -> None:
    replies = (
        worker("celery@a", active=1),
        worker("celery@b"),
        worker("celery@a", active=1),  # the same worker again
    )
    values = compute_metrics(observe(workers=replies))
    assert values[Metric.WORKER_STATUS] == 2
    assert values[Metric.ACTIVE_TASKS] == 1  # and its tasks once
    assert busy_workers(replies) == 1
    assert [w.name for w in unique_workers(replies)] == ["celery@a", "celery@b"]


def test_memory_usage_is_the_largest_worker_in_megabytes() -> None:
    replies = (
        worker("celery@a", rss_kb=102_400),  # 100 MB
        worker("celery@b", rss_kb=204_800),  # 200 MB
        worker("celery@c"),  # did not say
    )
    assert compute_metrics(observe(workers=replies))[Metric.MEMORY_USAGE] == 200.0


def test_memory_usage_absent_when_no_worker_reports_it() -> None:
    assert Metric.MEMORY_USAGE not in compute_metrics(observe(workers=(worker("celery@a"),)))


@pytest.mark.parametrize(
    ("replies", "ratio"),
    [
        ((worker("celery@a", active=3, concurrency=8),), 0.375),
        ((worker("celery@a", active=4), worker("celery@b", active=4)), 1.0),
        ((worker("celery@a", active=0), worker("celery@b", active=0)), 0.0),
        # A worker that did not report its concurrency counts on neither side.
        ((worker("celery@a", active=2), worker("celery@b", active=3, concurrency=0)), 0.5),
    ],
)
def test_busy_ratio(replies: tuple[WorkerSnapshot, ...], ratio: float) -> None:
    assert compute_metrics(observe(workers=replies))[Metric.BUSY_RATIO] == ratio


def test_busy_ratio_absent_without_concurrency() -> None:
    replies = (worker("celery@a", active=2, concurrency=0),)
    assert Metric.BUSY_RATIO not in compute_metrics(observe(workers=replies))


@pytest.mark.parametrize(
    ("depth", "active", "reserved", "desired", "backlog"),
    [
        (10, 3, 2, 5, 3.0),  # (10 + 3 + 2) / 5
        (0, 0, 0, 5, 0.0),
        (7, 0, 0, 0, 7.0),  # scaled to zero: divided by max(desired, 1)
        (9, 1, 0, 2, 5.0),
    ],
)
def test_backlog_per_task(
    depth: int, active: int, reserved: int, desired: int, backlog: float
) -> None:
    replies = (worker("celery@a", active=active, reserved=reserved),)
    values = compute_metrics(observe(depth=depth, workers=replies, desired=desired))
    assert values[Metric.BACKLOG_PER_TASK] == backlog


def test_backlog_per_task_on_sqs_counts_messages_in_flight() -> None:
    # No remote control on SQS: the work held by the fleet is what is in flight.
    values = compute_metrics(observe(depth=6, in_flight=4, workers=None, desired=2))
    assert values[Metric.BACKLOG_PER_TASK] == 5.0
    assert values[Metric.QUEUE_DEPTH] == 6
    assert not INSPECT_METRICS & values.keys()


def test_backlog_prefers_inspect_over_in_flight() -> None:
    replies = (worker("celery@a", active=1, reserved=1),)
    values = compute_metrics(observe(depth=2, in_flight=50, workers=replies, desired=1))
    assert values[Metric.BACKLOG_PER_TASK] == 4.0


def test_no_worker_answered_is_zero_not_missing() -> None:
    # An empty reply is a reading (a pool scaled to zero), unlike a failed inspect.
    values = compute_metrics(observe(depth=3, workers=(), desired=0))
    assert values[Metric.WORKER_STATUS] == 0
    assert values[Metric.ACTIVE_TASKS] == 0
    assert values[Metric.BACKLOG_PER_TASK] == 3.0
    assert Metric.BUSY_RATIO not in values
    assert Metric.MEMORY_USAGE not in values


def test_queue_latency_only_when_the_broker_tells() -> None:
    assert compute_metrics(observe(latency=12.5))[Metric.QUEUE_LATENCY_SECONDS] == 12.5
    assert Metric.QUEUE_LATENCY_SECONDS not in compute_metrics(observe(latency=None))


@pytest.mark.parametrize(
    ("obs", "absent"),
    [
        # Broker not read: nothing that needs the queue.
        (
            observe(depth=None, workers=(worker("celery@a"),)),
            {Metric.QUEUE_DEPTH, Metric.BACKLOG_PER_TASK, Metric.QUEUE_LATENCY_SECONDS},
        ),
        # Inspect not read (and no in-flight count): nothing that needs the workers.
        (observe(workers=None), INSPECT_METRICS | {Metric.BACKLOG_PER_TASK}),
        # Service not read: no desired count to divide by.
        (observe(workers=(worker("celery@a"),), desired=None), {Metric.BACKLOG_PER_TASK}),
        (
            Observation(broker=None, workers=None, service=None, errors=("all down",)),
            set(Metric),
        ),
    ],
)
def test_metrics_absent_when_inputs_missing(obs: Observation, absent: set[Metric]) -> None:
    values = compute_metrics(obs)
    assert not absent & values.keys()
    assert all(name in set(Metric) for name in values)


def test_metric_names_are_designs() -> None:
    assert {metric.value for metric in Metric} == {
        "queue_depth",
        "backlog_per_task",
        "queue_latency_seconds",
        "active_tasks",
        "reserved_tasks",
        "scheduled_tasks",
        "revoked_tasks",
        "worker_status",
        "busy_ratio",
        "memory_usage",
    }
