"""The metric table of docs/metrics.md, computed from one pass's observation (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from celery_scaler.core.model import Observation, WorkerSnapshot

KILOBYTES_PER_MEGABYTE = 1024


class Metric(StrEnum):
    """Metric names: stable, shared by the policy, CloudWatch and Prometheus."""

    QUEUE_DEPTH = "queue_depth"
    BACKLOG_PER_TASK = "backlog_per_task"
    QUEUE_LATENCY_SECONDS = "queue_latency_seconds"
    ACTIVE_TASKS = "active_tasks"
    RESERVED_TASKS = "reserved_tasks"
    SCHEDULED_TASKS = "scheduled_tasks"
    REVOKED_TASKS = "revoked_tasks"
    WORKER_STATUS = "worker_status"
    BUSY_RATIO = "busy_ratio"
    MEMORY_USAGE = "memory_usage"


# What each metric needs read: the broker's queues, or the workers' inspect replies.
# SQS has no remote control, so a pool on SQS can only scale on broker-only metrics.
BROKER_ONLY_METRICS = frozenset({Metric.QUEUE_DEPTH, Metric.BACKLOG_PER_TASK})
LATENCY_METRICS = frozenset({Metric.QUEUE_LATENCY_SECONDS})


def unique_workers(workers: Iterable[WorkerSnapshot]) -> tuple[WorkerSnapshot, ...]:
    """Each worker once, by name (the last reply wins), so no reply is counted twice."""
    return tuple({worker.name: worker for worker in workers}.values())


def workers_in_pool(
    workers: Iterable[WorkerSnapshot], queues: Iterable[str]
) -> tuple[WorkerSnapshot, ...]:
    """The workers that consume at least one of the pool's queues."""
    wanted = frozenset(queues)
    return tuple(worker for worker in workers if worker.queues & wanted)


def busy_workers(workers: Iterable[WorkerSnapshot]) -> int:
    """How many distinct workers are running at least one task."""
    return sum(1 for worker in unique_workers(workers) if worker.busy)


def compute_metrics(obs: Observation) -> dict[str, float]:
    """Every metric of the table in docs/metrics.md that this observation allows, by name.

    A metric whose inputs were not read is absent, never zero: the policy must not
    mistake missing data for an idle fleet.
    """
    values: dict[str, float] = {}
    broker, workers, service = obs.broker, obs.workers, obs.service
    if broker is not None:
        values[Metric.QUEUE_DEPTH] = broker.queue_depth
        if broker.latency_seconds is not None:
            values[Metric.QUEUE_LATENCY_SECONDS] = broker.latency_seconds
    if workers is not None:
        workers = unique_workers(workers)
        values[Metric.ACTIVE_TASKS] = sum(w.active for w in workers)
        values[Metric.RESERVED_TASKS] = sum(w.reserved for w in workers)
        values[Metric.SCHEDULED_TASKS] = sum(w.scheduled for w in workers)
        values[Metric.REVOKED_TASKS] = sum(w.revoked for w in workers)
        values[Metric.WORKER_STATUS] = len(workers)
        # Only workers that reported their concurrency: another's active tasks over
        # nobody's slots would push the ratio past 1.
        sized = [w for w in workers if w.concurrency > 0]
        if sized:
            values[Metric.BUSY_RATIO] = sum(w.active for w in sized) / sum(
                w.concurrency for w in sized
            )
        rss = [w.max_rss_kb for w in workers if w.max_rss_kb is not None]
        if rss:
            values[Metric.MEMORY_USAGE] = max(rss) / KILOBYTES_PER_MEGABYTE
    if broker is not None and service is not None:
        # Work the fleet holds beyond the queue: tasks running or prefetched on workers,
        # or (SQS, no remote control) the messages in flight.
        if workers is not None:
            held: float | None = values[Metric.ACTIVE_TASKS] + values[Metric.RESERVED_TASKS]
        else:
            held = broker.in_flight
        if held is not None:
            values[Metric.BACKLOG_PER_TASK] = (broker.queue_depth + held) / max(service.desired, 1)
    return values
