"""Conditions: what is wrong with a pool's numbers, held while it lasts (pure).

A condition is something a person must see because it bends a decision or hides work:
a queue the broker says does not exist, a publisher whose clock runs ahead, workers that
hoard prefetched messages, workers that do not answer inspect, another autoscaler on the
same service. Each pass computes the conditions that hold (`observed_conditions` from the
observation, plus those the policy raised while deciding); `note_conditions` remembers
since when each holds, so an event is emitted when one appears or clears rather than
every pass, and the controller keeps them on the service as a tag (core/state.py) for
`celery-scaler status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from celery_scaler.core.autoscaling import conflict_sentence
from celery_scaler.core.metrics import hoarded_tasks, prefetch_hoarders
from celery_scaler.core.model import Observation, PoolMemory, WorkerSnapshot


class Condition(StrEnum):
    """Kubernetes-style condition names, as `status` and the JSON line show them."""

    QUEUE_MISSING = "QueueMissing"
    """The broker says a configured queue does not exist (RabbitMQ, SQS): never an empty one."""
    CLOCK_SKEW = "ClockSkew"
    """A waiting message is stamped in the future: the publisher's clock runs ahead."""
    PREFETCH_HOARDING = "PrefetchHoarding"
    """Workers busy in every slot hold more than one prefetched message per slot, while the
    pool's queues are empty (core/metrics.py `prefetch_hoarders`)."""
    WORKERS_UNREACHABLE = "WorkersUnreachable"
    """Fewer workers answered inspect than ECS runs, and that blocks scale-in."""
    DRAINING = "Draining"
    """A scale-in waits for the workers it removes to finish their tasks (core/drain.py)."""
    CONFLICT = "Conflict"
    """Application Auto Scaling policies this controller did not create can change the
    service's count too (core/autoscaling.py): the pool holds and the pass fails."""


Conditions = Mapping[str, str]
"""The conditions that hold (a `Condition` each), with a sentence for a person."""

OVERDUE_AFTER: Mapping[str, float] = {Condition.WORKERS_UNREACHABLE: 300.0}
"""Seconds a condition may hold before every pass warns about it (`overdue_conditions`).
WorkersUnreachable: a worker still starting answers within a few passes; one silent for
5 minutes will most likely never answer, and scale-in stays blocked until a person acts."""


PREFETCH_ADVICE = (
    "set worker_prefetch_multiplier = 1 and task_acks_late = True on these workers "
    "(a busy worker then holds no message beyond its running tasks), or, on Redis with "
    "Celery 5.6 or later, worker_disable_prefetch = True (celery worker --disable-prefetch)"
)
"""What stops a worker from hoarding; the PrefetchHoarding sentence ends with it."""

NAMED_HOARDERS = 3
"""Workers a PrefetchHoarding sentence names; the others are counted."""


def observed_conditions(obs: Observation) -> dict[str, str]:
    """The conditions this observation shows by itself (the policy adds its own)."""
    found: dict[str, str] = {}
    broker = obs.broker
    if broker is not None and broker.missing:
        names = ", ".join(repr(queue) for queue in sorted(broker.missing))
        found[Condition.QUEUE_MISSING] = (
            f"the broker has no queue {names}: the pool holds rather than read it as empty; "
            "check spec.queues against the queues the workers consume"
        )
    if broker is not None and broker.per_queue_skew:
        ahead = ", ".join(
            f"{queue!r} {seconds:.0f}s" for queue, seconds in sorted(broker.per_queue_skew.items())
        )
        found[Condition.CLOCK_SKEW] = (
            f"waiting messages are stamped in the future ({ahead} ahead of this controller's "
            "clock): the publisher's clock runs ahead, so their age and queue_latency_seconds "
            "are unknown; synchronise the publishers' clocks (NTP)"
        )
    hoarders = prefetch_hoarders(obs)
    if hoarders:
        found[Condition.PREFETCH_HOARDING] = _hoarding(hoarders, hoarded_tasks(obs) or 0)
    if obs.foreign_scaling is not None:
        found[Condition.CONFLICT] = conflict_sentence(obs.foreign_scaling)
    return found


def _hoarding(hoarders: tuple[WorkerSnapshot, ...], hoarded: int) -> str:
    named = ", ".join(_holds(worker) for worker in hoarders[:NAMED_HOARDERS])
    more = len(hoarders) - NAMED_HOARDERS
    others = f" and {more} more" if more > 0 else ""
    return (
        f"{hoarded} prefetched tasks wait on workers busy in every slot while the queue is "
        f"empty ({named}{others}): queue_depth does not count them and no other worker "
        f"can take them; {PREFETCH_ADVICE}"
    )


def _holds(worker: WorkerSnapshot) -> str:
    prefetch = f", prefetch_count {worker.prefetch_count}" if worker.prefetch_count else ""
    slots = "slot" if worker.concurrency == 1 else "slots"
    return f"{worker.name} holds {worker.reserved} for {worker.concurrency} {slots}{prefetch}"


def note_conditions(
    memory: PoolMemory, holding: Conditions, now: float
) -> tuple[PoolMemory, tuple[str, ...]]:
    """Remember since when each condition holds; an event for each that appears or clears.

    `Draining` holds exactly while the memory holds a drain, whatever `holding` says.
    """
    holding = {key: value for key, value in holding.items() if key != Condition.DRAINING}
    if memory.drain is not None:
        drain = memory.drain
        holding[Condition.DRAINING] = (
            f"{drain.current} → {drain.desired} waits for {', '.join(drain.workers)} to finish "
            "their tasks"
        )
    if holding.keys() == memory.conditions.keys():
        # Nothing appeared or cleared (most passes): the memory already says since when.
        return memory, ()
    since = dict(memory.conditions)
    events: list[str] = []
    for condition, message in holding.items():
        if condition not in since:
            since[condition] = now
            events.append(f"{condition}: {message}")
    for condition in list(since):
        if condition not in holding:
            del since[condition]
            events.append(f"{condition} cleared")
    return memory.evolve(conditions=since), tuple(events)


def overdue_conditions(memory: PoolMemory, holding: Conditions, now: float) -> tuple[str, ...]:
    """A warning for each condition that has held longer than its bound (`OVERDUE_AFTER`).

    Repeated every pass while it lasts, unlike the event when it appeared; it changes no
    count, only what a person is shown (the JSON line's `warnings`, a WARNING log line).
    `memory` must already have noted `holding` (`note_conditions`).
    """
    warnings = []
    for condition, message in holding.items():
        bound, since = OVERDUE_AFTER.get(condition), memory.conditions.get(condition)
        if bound is not None and since is not None and now - since > bound:
            warnings.append(
                f"{condition} has held for {now - since:.0f}s, longer than {bound:g}s: {message}"
            )
    return tuple(warnings)
