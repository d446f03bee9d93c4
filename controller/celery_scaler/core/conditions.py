"""Conditions: what is wrong with a pool's numbers, held while it lasts (pure).

A condition is something a person must see because it bends a decision or hides work:
a queue the broker says does not exist, a publisher whose clock runs ahead, workers that
hoard prefetched messages, workers that do not answer inspect. Each pass computes the
conditions that hold (`observed_conditions` from the observation, plus those the policy
raised while deciding); `note_conditions` remembers since when each holds, so an event is
emitted when one appears or clears rather than every pass, and the controller keeps them
on the service as a tag (core/state.py) for `celery-scaler status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from celery_scaler.core.model import Observation, PoolMemory


class Condition(StrEnum):
    """Kubernetes-style condition names, as `status` and the JSON line show them."""

    QUEUE_MISSING = "QueueMissing"
    """The broker says a configured queue does not exist (RabbitMQ, SQS): never an empty one."""
    CLOCK_SKEW = "ClockSkew"
    """A waiting message is stamped in the future: the publisher's clock runs ahead."""
    PREFETCH_HOARDING = "PrefetchHoarding"
    """Workers hold far more prefetched messages than their slots, while the queue is empty."""
    WORKERS_UNREACHABLE = "WorkersUnreachable"
    """Fewer workers answered inspect than ECS runs, and that blocks scale-in."""


Conditions = Mapping[str, str]
"""The conditions that hold (a `Condition` each), with a sentence for a person."""


def observed_conditions(obs: Observation) -> dict[str, str]:
    """The conditions this observation shows by itself (the policy adds its own)."""
    found: dict[str, str] = {}
    return found


def note_conditions(
    memory: PoolMemory, holding: Conditions, now: float
) -> tuple[PoolMemory, tuple[str, ...]]:
    """Remember since when each condition holds; an event for each that appears or clears."""
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
