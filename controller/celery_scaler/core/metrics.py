"""The metric table of docs/metrics.md, computed from one pass's observation (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import StrEnum

from celery_scaler.core.model import (
    BrokerObservation,
    Observation,
    ServiceObservation,
    WorkerSnapshot,
)

KILOBYTES_PER_MEGABYTE = 1024


class Metric(StrEnum):
    """Metric names: stable, shared by the policy, CloudWatch and Prometheus."""

    QUEUE_DEPTH = "queue_depth"
    BACKLOG_PER_TASK = "backlog_per_task"
    QUEUE_LATENCY_SECONDS = "queue_latency_seconds"
    UNACKED_TASKS = "unacked_tasks"
    DELAYED_TASKS = "delayed_tasks"
    UNSTAMPED_MESSAGES = "unstamped_messages"
    ACTIVE_TASKS = "active_tasks"
    RESERVED_TASKS = "reserved_tasks"
    SCHEDULED_TASKS = "scheduled_tasks"
    REVOKED_TASKS = "revoked_tasks"
    WORKER_STATUS = "worker_status"
    BUSY_RATIO = "busy_ratio"
    MEMORY_USAGE = "memory_usage"
    HOARDED_TASKS = "hoarded_tasks"
    UNANSWERED_WORKERS = "unanswered_workers"


# What each metric needs read: the broker's queues, or the workers' inspect replies.
# SQS has no remote control, so a pool on SQS can only scale on broker-only metrics.
BROKER_ONLY_METRICS = frozenset(
    {
        Metric.QUEUE_DEPTH,
        Metric.BACKLOG_PER_TASK,
        Metric.UNACKED_TASKS,
        Metric.DELAYED_TASKS,
        Metric.UNSTAMPED_MESSAGES,
    }
)
LATENCY_METRICS = frozenset({Metric.QUEUE_LATENCY_SECONDS})


def unique_workers(workers: Iterable[WorkerSnapshot]) -> tuple[WorkerSnapshot, ...]:
    """Each worker once, by name (the last reply wins), so no reply is counted twice."""
    return tuple({worker.name: worker for worker in workers}.values())


def workers_in_pool(
    workers: Iterable[WorkerSnapshot], queues: Iterable[str], draining: Collection[str] = ()
) -> tuple[WorkerSnapshot, ...]:
    """The workers that consume at least one of the pool's queues, and those of `draining`
    (node names): a drained worker consumes none, yet is the pool's until ECS stops it."""
    wanted = frozenset(queues)
    return tuple(worker for worker in workers if worker.queues & wanted or worker.name in draining)


def busy_workers(workers: Iterable[WorkerSnapshot]) -> int:
    """How many distinct workers are running at least one task."""
    return sum(1 for worker in unique_workers(workers) if worker.busy)


def _saturated_while_queues_empty(
    broker: BrokerObservation | None, workers: Iterable[WorkerSnapshot] | None
) -> tuple[WorkerSnapshot, ...] | None:
    """The workers busy in every slot when the pool's queues are empty (none otherwise),
    each once; None when the broker or the workers were not read."""
    if broker is None or workers is None:
        return None
    if broker.queue_depth > 0:
        return ()  # before making the workers unique: a queue with messages needs none
    return tuple(worker for worker in unique_workers(workers) if worker.saturated)


def _unique_or_none(
    workers: Iterable[WorkerSnapshot] | None,
) -> tuple[WorkerSnapshot, ...] | None:
    return unique_workers(workers) if workers is not None else None


def hoarded_tasks(obs: Observation) -> int | None:
    """Messages reserved by workers whose every slot is busy, while the queues are empty.

    They are the pool's backlog, yet the queue no longer shows them and neither an idle
    worker nor a new one can take them: each waits for a slot of the worker holding it.
    None when the broker or the workers were not read.
    """
    return _hoarded(_saturated_while_queues_empty(obs.broker, obs.workers))


def _hoarded(saturated: tuple[WorkerSnapshot, ...] | None) -> int | None:
    return None if saturated is None else sum(worker.reserved for worker in saturated)


def prefetch_hoarders(obs: Observation) -> tuple[WorkerSnapshot, ...]:
    """The workers that hoard: busy in every slot, holding more than one reserved message
    per slot, while the pool's queues are empty.

    A worker prefetches up to concurrency times worker_prefetch_multiplier unacknowledged
    messages; with early acknowledgement (Celery's default) a running task is acknowledged
    as it starts and no longer counts. So a busy worker holds at most one message per
    slot with a multiplier of 1, none with `task_acks_late` as well, and up to 4 per slot
    with the default multiplier of 4: more than one per slot takes a multiplier above 1,
    which is the setting to change.
    """
    return tuple(
        worker
        for worker in _saturated_while_queues_empty(obs.broker, obs.workers) or ()
        if worker.reserved > worker.concurrency
    )


def unanswered_workers(obs: Observation) -> int | None:
    """Running ECS tasks whose worker did not answer inspect: running - workers that answered.

    Never below 0 (workers of a rollout's old tasks may answer too). None unless both the
    service and the workers were read.
    """
    # Each worker once, by name, as `unique_workers` counts them.
    answered = None if obs.workers is None else len({worker.name for worker in obs.workers})
    return _unanswered(obs.service, answered)


def _unanswered(service: ServiceObservation | None, answered: int | None) -> int | None:
    """`unanswered_workers` from how many unique workers answered."""
    if service is None or answered is None:
        return None
    return max(0, service.running - answered)


def compute_metrics(obs: Observation) -> dict[str, float]:
    """Every metric of the table in docs/metrics.md that this observation allows, by name.

    A metric whose inputs were not read is absent, never zero: the policy must not
    mistake missing data for an idle fleet.
    """
    values: dict[str, float] = {}
    broker, service = obs.broker, obs.service
    # Made unique once for every figure below (the simulator asks for them every pass).
    workers = _unique_or_none(obs.workers)
    if broker is not None and broker.errors:
        # Some of the pool's queues could not be read: a partial sum would pass for a small one.
        broker = None
    if broker is not None:
        values[Metric.QUEUE_DEPTH] = broker.queue_depth
        if broker.latency_seconds is not None:
            values[Metric.QUEUE_LATENCY_SECONDS] = broker.latency_seconds
        if broker.unacked is not None:
            values[Metric.UNACKED_TASKS] = broker.unacked
        if broker.delayed is not None:
            values[Metric.DELAYED_TASKS] = broker.delayed
        if broker.unstamped is not None:
            values[Metric.UNSTAMPED_MESSAGES] = broker.unstamped
    in_hand: int | None = None  # the workers' active + reserved tasks, for BACKLOG_PER_TASK
    if workers is not None:
        # Every figure of the workers from one loop over them (the simulator asks for them
        # every pass), then set in the order they always were.
        active = reserved = 0
        scheduled: int | None = 0
        revoked: int | None = 0
        sized_active = sized_slots = 0
        max_rss_kb: int | None = None
        for worker in workers:
            active += worker.active
            reserved += worker.reserved
            # Asked of the workers only when a pool scales on them: unknown unless each said.
            if scheduled is not None:
                scheduled = None if worker.scheduled is None else scheduled + worker.scheduled
            if revoked is not None:
                revoked = None if worker.revoked is None else revoked + worker.revoked
            # Only workers that reported their concurrency count toward busy_ratio: another's
            # active tasks over nobody's slots would push the ratio past 1.
            if worker.concurrency > 0:
                sized_active += worker.active
                sized_slots += worker.concurrency
            if worker.max_rss_kb is not None and (
                max_rss_kb is None or worker.max_rss_kb > max_rss_kb
            ):
                max_rss_kb = worker.max_rss_kb
        in_hand = active + reserved
        values[Metric.ACTIVE_TASKS] = active
        values[Metric.RESERVED_TASKS] = reserved
        if scheduled is not None:
            values[Metric.SCHEDULED_TASKS] = scheduled
        if revoked is not None:
            values[Metric.REVOKED_TASKS] = revoked
        values[Metric.WORKER_STATUS] = len(workers)
        if sized_slots:
            values[Metric.BUSY_RATIO] = sized_active / sized_slots
        if max_rss_kb is not None:
            values[Metric.MEMORY_USAGE] = max_rss_kb / KILOBYTES_PER_MEGABYTE
    # The broker as read, errors or not, as hoarded_tasks has it.
    hoarded = _hoarded(_saturated_while_queues_empty(obs.broker, workers))
    if hoarded is not None:
        values[Metric.HOARDED_TASKS] = hoarded
    unanswered = _unanswered(service, None if workers is None else len(workers))
    if unanswered is not None:
        values[Metric.UNANSWERED_WORKERS] = unanswered
    if broker is not None and service is not None:
        held = _held(broker.unacked, in_hand)
        if held is not None:
            values[Metric.BACKLOG_PER_TASK] = (broker.queue_depth + held) / max(service.desired, 1)
    return values


def held_tasks(unacked: int | None, workers: Iterable[WorkerSnapshot] | None) -> int | None:
    """Work taken off the queue and not finished: the larger of two views of it.

    The broker's unacknowledged messages and the workers' active + reserved tasks count
    the same messages twice over (a prefetched task is both), so the larger is taken:
    the broker also sees what dead or unanswering workers left behind, inspect also sees
    tasks acknowledged as they started (Celery's default). None when neither is known.
    """
    unique = _unique_or_none(workers)
    in_hand = None if unique is None else sum(w.active + w.reserved for w in unique)
    return _held(unacked, in_hand)


def _held(unacked: int | None, seen: int | None) -> int | None:
    """`held_tasks` from the unique workers' active + reserved tasks, summed already."""
    if unacked is None or seen is None:
        return seen if unacked is None else unacked
    return max(unacked, seen)
