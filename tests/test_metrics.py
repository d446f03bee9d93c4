"""DESIGN's metric table computed from one observation; missing inputs mean absent, not 0."""

from __future__ import annotations

import pytest

from celery_scaler.core.metrics import (
    Metric,
    busy_workers,
    compute_metrics,
    prefetch_hoarders,
    unique_workers,
)
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
    Metric.HOARDED_TASKS,
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
    unacked: int | None = None,
    latency: float | None = None,
    workers: tuple[WorkerSnapshot, ...] | None = (),
    desired: int | None = 5,
) -> Observation:
    broker = (
        None
        if depth is None
        else BrokerObservation(queue_depth=depth, unacked=unacked, latency_seconds=latency)
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


def test_scheduled_and_revoked_absent_when_the_workers_were_not_asked() -> None:
    # The inspect round asks them only when a pool scales on them: None, never 0.
    asked = worker("celery@a", scheduled=2, revoked=1)
    unasked = WorkerSnapshot(
        name="celery@b",
        queues=frozenset({"celery"}),
        active=1,
        reserved=0,
        scheduled=None,
        revoked=None,
        concurrency=4,
    )
    values = compute_metrics(observe(workers=(unasked,)))
    assert Metric.SCHEDULED_TASKS not in values
    assert Metric.REVOKED_TASKS not in values
    assert values[Metric.ACTIVE_TASKS] == 1
    assert Metric.SCHEDULED_TASKS not in compute_metrics(observe(workers=(asked, unasked)))
    assert compute_metrics(observe(workers=(asked,)))[Metric.SCHEDULED_TASKS] == 2


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
    values = compute_metrics(observe(depth=6, unacked=4, workers=None, desired=2))
    assert values[Metric.BACKLOG_PER_TASK] == 5.0
    assert values[Metric.QUEUE_DEPTH] == 6
    assert values[Metric.UNACKED_TASKS] == 4
    assert not INSPECT_METRICS & values.keys()


@pytest.mark.parametrize(
    ("unacked", "active", "reserved", "backlog"),
    [
        # A worker SIGKILLed with 4 prefetched messages: the broker still holds them
        # unacknowledged, inspect sees nobody. They are backlog, not an idle fleet.
        (4, 0, 0, 6.0),
        # Running tasks were acknowledged as they started (Celery's default): only
        # inspect sees them.
        (1, 3, 1, 6.0),
        # The same prefetched messages seen by both are counted once, not twice.
        (2, 0, 2, 4.0),
    ],
)
def test_backlog_counts_the_larger_of_unacked_and_what_inspect_sees(
    unacked: int, active: int, reserved: int, backlog: float
) -> None:
    replies = (worker("celery@a", active=active, reserved=reserved),)
    values = compute_metrics(observe(depth=2, unacked=unacked, workers=replies, desired=1))
    assert values[Metric.BACKLOG_PER_TASK] == backlog


def test_broker_metrics_absent_when_a_queue_could_not_be_read() -> None:
    # The other queue's depth alone would pass for the pool's.
    broker = BrokerObservation(
        queue_depth=3, per_queue={"a": 3}, unacked=0, errors={"b": "WRONGTYPE"}
    )
    obs = Observation(broker=broker, workers=(), service=service(1))
    values = compute_metrics(obs)
    assert not {Metric.QUEUE_DEPTH, Metric.UNACKED_TASKS, Metric.BACKLOG_PER_TASK} & values.keys()
    assert values[Metric.WORKER_STATUS] == 0


def test_no_worker_answered_is_zero_not_missing() -> None:
    # An empty reply is a reading (a pool scaled to zero), unlike a failed inspect.
    values = compute_metrics(observe(depth=3, workers=(), desired=0))
    assert values[Metric.WORKER_STATUS] == 0
    assert values[Metric.ACTIVE_TASKS] == 0
    assert values[Metric.BACKLOG_PER_TASK] == 3.0
    assert Metric.BUSY_RATIO not in values
    assert Metric.MEMORY_USAGE not in values


def test_delayed_and_unstamped_messages_are_reported_when_the_broker_tells() -> None:
    # SQS counts delayed messages apart; the Redis scan counts messages without a stamp.
    broker = BrokerObservation(queue_depth=4, delayed=2, unstamped=1)
    values = compute_metrics(Observation(broker=broker, workers=(), service=service(1)))
    assert values[Metric.DELAYED_TASKS] == 2
    assert values[Metric.UNSTAMPED_MESSAGES] == 1
    quiet = compute_metrics(observe())
    assert Metric.DELAYED_TASKS not in quiet
    assert Metric.UNSTAMPED_MESSAGES not in quiet


def test_queue_latency_only_when_the_broker_tells() -> None:
    assert compute_metrics(observe(latency=12.5))[Metric.QUEUE_LATENCY_SECONDS] == 12.5
    assert Metric.QUEUE_LATENCY_SECONDS not in compute_metrics(observe(latency=None))


@pytest.mark.parametrize(
    ("obs", "absent"),
    [
        # Broker not read: nothing that needs the queue.
        (
            observe(depth=None, workers=(worker("celery@a"),)),
            {
                Metric.QUEUE_DEPTH,
                Metric.BACKLOG_PER_TASK,
                Metric.QUEUE_LATENCY_SECONDS,
                Metric.HOARDED_TASKS,
            },
        ),
        # Inspect not read (and no unacked count): nothing that needs the workers.
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
        "unacked_tasks",
        "delayed_tasks",
        "unstamped_messages",
        "active_tasks",
        "reserved_tasks",
        "scheduled_tasks",
        "revoked_tasks",
        "worker_status",
        "busy_ratio",
        "memory_usage",
        "hoarded_tasks",
        "unanswered_workers",
    }


@pytest.mark.parametrize(
    ("depth", "replies", "hoarded"),
    [
        # Every slot busy, queue empty: all it reserved waits for its slot.
        (0, (worker("celery@a", active=1, reserved=4, concurrency=1),), 4),
        (0, (worker("celery@a", active=1, reserved=1, concurrency=1),), 1),
        # A free slot starts a reserved message at once.
        (0, (worker("celery@a", active=1, reserved=4, concurrency=2),), 0),
        # Messages still in the queue: new workers can take those.
        (3, (worker("celery@a", active=1, reserved=4, concurrency=1),), 0),
        # Only the saturated workers' messages; each worker once.
        (
            0,
            (
                worker("celery@a", active=2, reserved=5, concurrency=2),
                worker("celery@b", active=0, reserved=0, concurrency=2),
                worker("celery@a", active=2, reserved=5, concurrency=2),
            ),
            5,
        ),
        # A worker that did not report its concurrency is never saturated.
        (0, (worker("celery@a", active=1, reserved=4, concurrency=0),), 0),
        (0, (), 0),
    ],
)
def test_hoarded_tasks(depth: int, replies: tuple[WorkerSnapshot, ...], hoarded: int) -> None:
    assert compute_metrics(observe(depth=depth, workers=replies))[Metric.HOARDED_TASKS] == hoarded


@pytest.mark.parametrize(
    ("depth", "replies", "hoarders"),
    [
        # The default multiplier of 4 on one slot: 4 waiting behind the running task.
        (0, (worker("celery@a", active=1, reserved=4, concurrency=1),), ["celery@a"]),
        (0, (worker("celery@a", active=4, reserved=5, concurrency=4),), ["celery@a"]),
        # One per slot is what a multiplier of 1 holds with early acknowledgement: not hoarding.
        (0, (worker("celery@a", active=1, reserved=1, concurrency=1),), []),
        (0, (worker("celery@a", active=4, reserved=4, concurrency=4),), []),
        # A free slot, or messages still in the queue: not hoarding.
        (0, (worker("celery@a", active=1, reserved=8, concurrency=2),), []),
        (1, (worker("celery@a", active=1, reserved=4, concurrency=1),), []),
        # Only the hoarding worker, beside an idle one that cannot take its messages.
        (
            0,
            (
                worker("celery@a", active=1, reserved=3, concurrency=1),
                worker("celery@b", active=0, reserved=0, concurrency=1),
            ),
            ["celery@a"],
        ),
    ],
)
def test_prefetch_hoarders(
    depth: int, replies: tuple[WorkerSnapshot, ...], hoarders: list[str]
) -> None:
    assert [w.name for w in prefetch_hoarders(observe(depth=depth, workers=replies))] == hoarders


def test_no_hoarders_without_the_broker_or_the_workers() -> None:
    hoarder = (worker("celery@a", active=1, reserved=4, concurrency=1),)
    assert prefetch_hoarders(observe(depth=None, workers=hoarder)) == ()
    assert prefetch_hoarders(observe(depth=0, workers=None)) == ()


@pytest.mark.parametrize(
    ("running", "replies", "unanswered"),
    [
        (3, (worker("celery@a"), worker("celery@b")), 1),
        (2, (worker("celery@a"), worker("celery@a")), 1),  # one worker replying twice is one
        (0, (), 0),
        (1, (worker("celery@a"), worker("celery@b")), 0),  # never below 0 (a rollout's old task)
    ],
)
def test_unanswered_workers_is_running_tasks_less_the_workers_that_answered(
    running: int, replies: tuple[WorkerSnapshot, ...], unanswered: int
) -> None:
    obs = Observation(
        broker=None,
        workers=replies,
        service=ServiceObservation(desired=running, running=running, pending=0, deploying=False),
    )
    assert compute_metrics(obs)[Metric.UNANSWERED_WORKERS] == unanswered


def test_unanswered_workers_needs_both_the_service_and_inspect() -> None:
    assert Metric.UNANSWERED_WORKERS not in compute_metrics(observe(workers=None))
    assert Metric.UNANSWERED_WORKERS not in compute_metrics(observe(desired=None))
