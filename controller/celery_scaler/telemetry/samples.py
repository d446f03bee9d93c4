"""What a pass publishes (pure): the metric table (docs/metrics.md) as samples for CloudWatch
and Prometheus.

`pass_samples` turns a PassReport into samples per pool (dimension `Pool`), for the
fleet (no dimensions, so alarms outlive worker churn) and, when asked, per worker
(dimension `WorkerName`). Gauges are the pass's own values (the `observed` of
`--output json`); the task counters are the increase since the previous pass, worked
out from the counter state the caller passes in and gets back.

Counters: `processed_tasks` comes from the lifetime count in each worker's inspect
`stats` (`total`); a worker that restarted (its `uptime` is shorter than the time since
it was last seen, or its count went down) counts its whole new count. The outcomes
(`succeeded_tasks`, `failed_tasks`, `retried_tasks`) are not in `stats` at all: they
are counted from Celery task events (see `task_events.py`) and passed in as `TaskEvents`.
A counter that cannot be known is absent, never zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from celery_scaler.core.metrics import compute_metrics, unique_workers
from celery_scaler.core.model import (
    BrokerObservation,
    Observation,
    ServiceObservation,
    WorkerSnapshot,
)

if TYPE_CHECKING:
    from celery_scaler.engine.reconcile import PassReport


@dataclass(frozen=True)
class MetricInfo:
    unit: str
    """CloudWatch's unit name."""
    help: str
    counter: bool = False
    """Published as the increase since the previous pass (a running total in Prometheus)."""
    per_pool: bool = True
    """Published per pool (dimension `Pool`, label `pool` in Prometheus); else only without
    dimensions, which Prometheus does not get."""


METRICS: Mapping[str, MetricInfo] = {
    "queue_depth": MetricInfo("Count", "Messages waiting in the broker for the pool's queues."),
    "active_tasks": MetricInfo("Count", "Tasks running on the pool's workers."),
    "reserved_tasks": MetricInfo("Count", "Tasks prefetched by the pool's workers, not started."),
    "scheduled_tasks": MetricInfo("Count", "Tasks with an ETA or countdown held by the workers."),
    "revoked_tasks": MetricInfo("Count", "Task ids the pool's workers hold as revoked."),
    "worker_status": MetricInfo("Count", "Workers that answered inspect, each counted once."),
    "busy_ratio": MetricInfo("None", "Active tasks over the workers' total concurrency."),
    "backlog_per_task": MetricInfo(
        "Count",
        "(queue depth + max(unacked, active + reserved tasks)) / the ECS desired count.",
    ),
    "queue_latency_seconds": MetricInfo("Seconds", "Age of the oldest waiting message."),
    "unacked_tasks": MetricInfo(
        "Count", "Messages delivered and not yet acknowledged, as the broker counts them."
    ),
    "delayed_tasks": MetricInfo(
        "Count",
        "SQS messages sent with a delay, not yet visible (ApproximateNumberOfMessagesDelayed).",
    ),
    "unstamped_messages": MetricInfo(
        "Count", "Redis: scanned oldest messages without instrument(app)'s publish stamp."
    ),
    "memory_usage": MetricInfo("Megabytes", "Largest max RSS among the workers, in megabytes."),
    "unanswered_workers": MetricInfo(
        "Count", "Running ECS tasks whose worker did not answer inspect (running - answered)."
    ),
    "hoarded_tasks": MetricInfo(
        "Count", "Tasks prefetched by workers busy in every slot while the queue is empty."
    ),
    "processed_tasks": MetricInfo("Count", "Tasks the workers received.", counter=True),
    "succeeded_tasks": MetricInfo("Count", "Tasks that succeeded.", counter=True),
    "failed_tasks": MetricInfo("Count", "Tasks that failed.", counter=True),
    "retried_tasks": MetricInfo("Count", "Tasks that were retried.", counter=True),
    "desired_capacity": MetricInfo("Count", "The desired count the controller decided."),
    "current_capacity": MetricInfo("Count", "The ECS desired count the pass began with."),
    "controller_heartbeat": MetricInfo(
        "Count", "1 for every pass the controller completed.", per_pool=False
    ),
}

OUTCOMES = ("succeeded_tasks", "failed_tasks", "retried_tasks")
"""The counters that come from task events."""

FORGET_AFTER_SECONDS = 900.0
"""A worker unseen for this long leaves the counter state (ECS task names never return)."""

Dimensions = tuple[tuple[str, str], ...]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    dimensions: Dimensions = ()

    @property
    def unit(self) -> str:
        return METRICS[self.name].unit


@dataclass(frozen=True)
class TaskEvents:
    """Task outcomes counted from Celery task events since the previous pass."""

    complete: bool
    """The receiver listened the whole time since the previous pass (no gap to undercount)."""
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Worker name → outcome counter name (`failed_tasks`, ...) → events received."""
    senders: frozenset[str] = frozenset()
    """Every worker seen sending a task event since the receiver started."""


@dataclass(frozen=True)
class SeenWorker:
    processed_total: int
    seen: float
    """When its total was read."""
    pools: frozenset[str]


@dataclass(frozen=True)
class CounterState:
    """What the previous pass leaves for the next one to compute increases from."""

    time: float | None = None
    workers: Mapping[str, SeenWorker] = field(default_factory=dict)
    pools: frozenset[str] = frozenset()
    """The pools that pass observed (with leader election, the ones this replica held)."""


def pass_samples(
    report: PassReport,
    state: CounterState,
    events: TaskEvents | None = None,
    *,
    per_worker: bool = False,
    fleet: bool = True,
) -> tuple[tuple[Sample, ...], CounterState]:
    """Every sample this pass publishes, and the counter state for the next pass.

    `fleet` adds the totals without dimensions; leave it off when the pass covered
    only some pools, so a partial sum never poses as the fleet's. With no previous
    pass (`state.time` None: the first pass, or `--once`) there are no counters, as
    an increase needs two readings.
    """
    now = report.time
    workers: dict[str, WorkerSnapshot] = {}
    pools_of: dict[str, set[str]] = {}
    for pool, obs in report.observations.items():
        for worker in obs.workers or ():
            workers[worker.name] = worker
            pools_of.setdefault(worker.name, set()).add(pool)
    first = state.time is None
    counters = {} if first else _worker_counters(workers, pools_of, state, events, now)
    # Without a complete count of events, no outcome is known, even for an empty pool.
    names = ("processed_tasks", *OUTCOMES) if events and events.complete else ("processed_tasks",)

    samples: list[Sample] = []
    for result in report.results:
        dims = (("Pool", result.pool),)
        pool_obs = report.observations.get(result.pool)
        samples += _gauges(result.observed, dims)
        samples += _capacity([result.current], [result.desired], dims)
        if not first and pool_obs is not None and pool_obs.workers is not None:
            # Workers gone since the last pass still count the events they sent.
            members = {w.name for w in pool_obs.workers} | {
                name for name, seen in state.workers.items() if result.pool in seen.pools
            }
            samples += _summed_counters(counters, members, names, dims)

    if fleet:
        samples += _gauges(compute_metrics(merge_observations(report.observations.values())), ())
        samples += _capacity(
            [r.current for r in report.results], [r.desired for r in report.results], ()
        )
        if not first and all(obs.workers is not None for obs in report.observations.values()):
            samples += _summed_counters(counters, counters.keys(), names, ())
    samples.append(Sample("controller_heartbeat", 1.0))

    if per_worker:
        for name, worker in sorted(workers.items()):
            dims = (("WorkerName", name),)
            alone = compute_metrics(Observation(broker=None, workers=(worker,), service=None))
            alone.pop("worker_status", None)  # always 1 for one worker: billed, says nothing
            samples += _gauges({**alone, **counters.get(name, {})}, dims)

    # Unseen workers are kept a while (they may only have missed a round), unless their
    # pools are no longer observed here: another replica counts them now, and counting
    # from a stale reading after the pool came back would count its work twice.
    observed = frozenset(report.observations)
    kept = {
        name: seen
        for name, seen in state.workers.items()
        if name not in workers and seen.pools & observed and now - seen.seen <= FORGET_AFTER_SECONDS
    }
    for name, worker in workers.items():
        kept[name] = SeenWorker(worker.processed_total, now, frozenset(pools_of[name]))
    samples = [s for s in samples if math.isfinite(s.value)]
    return tuple(samples), CounterState(now, kept, observed)


def increase(previous: SeenWorker | None, worker: WorkerSnapshot, elapsed: float) -> int | None:
    """Tasks the worker received in the last `elapsed` seconds; None when it cannot be known.

    `elapsed` is the time since the worker was last read or, for a worker never read,
    since the previous pass. A worker whose uptime is shorter started (or restarted)
    within it, so all its work is new; so is all of a count that went down.
    """
    started_since = worker.uptime_seconds is not None and worker.uptime_seconds <= elapsed
    if previous is None:
        # Not a new worker, only one that missed earlier rounds: this reading is its baseline.
        return worker.processed_total if started_since else None
    if started_since or worker.processed_total < previous.processed_total:
        return worker.processed_total
    return worker.processed_total - previous.processed_total


def merge_observations(observations: Iterable[Observation]) -> Observation:
    """The fleet as one observation: each queue and each worker once, ECS counts summed.

    A part that any pool could not read is missing for the fleet too: a partial total
    would pass for a small one.
    """
    observations = list(observations)
    return Observation(
        broker=_merge_brokers([obs.broker for obs in observations]),
        workers=_all_or_none(
            [obs.workers for obs in observations],
            lambda parts: unique_workers(w for part in parts for w in part),
        ),
        service=_all_or_none(
            [obs.service for obs in observations],
            lambda parts: ServiceObservation(
                desired=sum(s.desired for s in parts),
                running=sum(s.running for s in parts),
                pending=sum(s.pending for s in parts),
                deploying=any(s.deploying for s in parts),
            ),
        ),
    )


# --- helpers ----------------------------------------------------------------------------


def _all_or_none(parts: Sequence[T | None], merge: Callable[[list[T]], R]) -> R | None:
    known = [part for part in parts if part is not None]
    return merge(known) if len(known) == len(parts) else None


def _merge_brokers(brokers: Sequence[BrokerObservation | None]) -> BrokerObservation | None:
    def merge(known: list[BrokerObservation]) -> BrokerObservation:
        # Pools may share a queue: count each queue once.
        per_queue = {q: n for b in known for q, n in b.per_queue.items()}
        shared = all(b.per_queue for b in known)
        per_queue_unacked = {q: n for b in known for q, n in b.per_queue_unacked.items()}
        unacked = _all_or_none([b.unacked for b in known], sum)
        if unacked is not None and all(b.per_queue_unacked for b in known):
            unacked = sum(per_queue_unacked.values())
        return BrokerObservation(
            queue_depth=sum(per_queue.values()) if shared else sum(b.queue_depth for b in known),
            per_queue=per_queue,
            unacked=unacked,
            per_queue_unacked=per_queue_unacked,
            latency_seconds=_all_or_none([b.latency_seconds for b in known], _max),
            missing=frozenset().union(*(b.missing for b in known)),
            errors={q: error for b in known for q, error in b.errors.items()},
        )

    return _all_or_none(brokers, merge)


def _max(values: list[float]) -> float:
    return max(values, default=0.0)


def _worker_counters(
    workers: Mapping[str, WorkerSnapshot],
    pools_of: Mapping[str, Iterable[str]],
    state: CounterState,
    events: TaskEvents | None,
    now: float,
) -> dict[str, dict[str, float]]:
    """Each worker's counters this pass; an outcome that cannot be known is left out.

    A worker that missed earlier rounds counts no processed tasks this once (its
    baseline), and so does a new worker of a pool the previous pass did not observe
    (a lease just taken over: its work so far was the other replica's to count). A
    worker gone since the last pass counts only the events it sent.
    """
    since = now - state.time if state.time is not None else 0.0
    counters: dict[str, dict[str, float]] = {}
    for name in {*workers, *state.workers}:
        worker, previous = workers.get(name), state.workers.get(name)
        processed = 0
        if worker is not None and previous is not None:
            processed = increase(previous, worker, now - previous.seen) or 0
        elif worker is not None and state.pools.issuperset(pools_of[name]):
            processed = increase(None, worker, since) or 0
        values: dict[str, float] = {"processed_tasks": processed}
        # Outcomes are known when the receiver had no gap and the worker sends task
        # events: one that received tasks but never sent an event runs without -E.
        silent = processed > 0 and events is not None and name not in events.senders
        if events is not None and events.complete and not silent:
            counts = events.counts.get(name, {})
            values.update({outcome: counts.get(outcome, 0) for outcome in OUTCOMES})
        counters[name] = values
    return counters


def _summed_counters(
    counters: Mapping[str, Mapping[str, float]],
    members: Iterable[str],
    names: Sequence[str],
    dims: Dimensions,
) -> list[Sample]:
    """Each counter in `names` summed over `members`; absent when a member cannot know it."""
    known = [counters[name] for name in members if name in counters]
    return [
        Sample(metric, sum(values[metric] for values in known), dims)
        for metric in names
        if all(metric in values for values in known)
    ]


def _gauges(values: Mapping[str, float], dims: Dimensions) -> list[Sample]:
    return [Sample(name, float(value), dims) for name, value in sorted(values.items())]


def _capacity(
    current: Sequence[int | None], desired: Sequence[int | None], dims: Dimensions
) -> list[Sample]:
    samples = []
    for name, counts in (("current_capacity", current), ("desired_capacity", desired)):
        total = _all_or_none(counts, sum)
        if counts and total is not None:
            samples.append(Sample(name, float(total), dims))
    return samples
