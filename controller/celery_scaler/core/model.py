"""What one reconcile pass sees and decides: frozen values passed between layers.

Nothing here does I/O. Adapters build the observations, the policy turns them into a
Decision, the reconcile pass acts on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Action(StrEnum):
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    HOLD = "hold"


def oldest_of(ages: Iterable[float | None]) -> float | None:
    """The largest of several queues' message ages; unknown when any is unknown."""
    known = list(ages)
    if any(age is None for age in known):
        return None
    return max((age for age in known if age is not None), default=0.0)


@dataclass(frozen=True)
class BrokerObservation:
    """The broker's view of one pool's queues."""

    queue_depth: int
    """Messages waiting, summed over the pool's queues."""
    per_queue: Mapping[str, int] = field(default_factory=dict)
    in_flight: int | None = None
    """Messages received but not yet deleted (SQS only)."""
    latency_seconds: float | None = None
    """Age of the oldest waiting message, when the broker can tell."""
    per_queue_latency: Mapping[str, float | None] = field(default_factory=dict)
    per_queue_in_flight: Mapping[str, int] = field(default_factory=dict)

    def subset(self, queues: Iterable[str]) -> BrokerObservation:
        """The observation of some of these queues (one read serves every pool)."""
        names = list(dict.fromkeys(queues))
        per_queue = {queue: self.per_queue.get(queue, 0) for queue in names}
        latency = None
        if self.per_queue_latency:
            latency = oldest_of(self.per_queue_latency.get(queue) for queue in names)
        in_flight = None
        if self.in_flight is not None:
            in_flight = sum(self.per_queue_in_flight.get(queue, 0) for queue in names)
        return BrokerObservation(
            queue_depth=sum(per_queue.values()),
            per_queue=per_queue,
            in_flight=in_flight,
            latency_seconds=latency,
            per_queue_latency={
                q: self.per_queue_latency[q] for q in names if q in self.per_queue_latency
            },
            per_queue_in_flight={
                q: self.per_queue_in_flight[q] for q in names if q in self.per_queue_in_flight
            },
        )


@dataclass(frozen=True)
class WorkerSnapshot:
    """One Celery worker as its inspect replies describe it."""

    name: str
    queues: frozenset[str]
    active: int
    reserved: int
    scheduled: int
    revoked: int
    concurrency: int
    """The pool's max-concurrency from `stats`; 0 when the worker did not say."""
    max_rss_kb: int | None = None
    processed_total: int = 0
    """Lifetime count of tasks the worker received (sum of `stats`' `total`)."""
    uptime_seconds: float | None = None
    """Seconds since the worker started (`stats`' `uptime`): tells a restart from a reset."""

    @property
    def busy(self) -> bool:
        return self.active > 0


@dataclass(frozen=True)
class ServiceObservation:
    """The ECS service behind a pool."""

    desired: int
    running: int
    pending: int
    deploying: bool
    """A deployment is rolling out (more than one deployment, or one IN_PROGRESS)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    arn: str = ""


@dataclass(frozen=True)
class Observation:
    """Everything read for one pool in one pass; `errors` lists what could not be read."""

    broker: BrokerObservation | None
    workers: tuple[WorkerSnapshot, ...] | None
    service: ServiceObservation | None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScaleOutCooldown:
    """A running scale-out cooldown: AWS counts what it already added against new steps."""

    started: float
    added: int


@dataclass(frozen=True)
class LastAction:
    """The controller's last change to a pool, as `status` shows it."""

    action: Action
    time: float
    reason: str


@dataclass(frozen=True)
class PoolMemory:
    """What the controller remembers about a pool between passes."""

    samples: tuple[tuple[float, float], ...] = ()
    """(time, metric value) pairs still inside the pool's window (not persisted)."""
    scale_out_cooldown: ScaleOutCooldown | None = None
    scale_in_cooldown_started: float | None = None
    last_desired: int | None = None
    """The desired count the controller last wrote or accepted; any other is external."""
    consecutive_failures: int = 0
    last_action: LastAction | None = None
    conditions: Mapping[str, float] = field(default_factory=dict)
    """Condition name (core/conditions.py) → when it began to hold; only those that hold."""

    def evolve(self, **changes: object) -> PoolMemory:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    """The outcome of the pure policy for one pool and one pass."""

    action: Action
    current: int
    desired: int
    metric: str
    value: float | None
    reason: str
    """A sentence for a person: what was seen, which rule matched, what follows."""
    step: str | None = None
    """The matching step, as `[lower, upper) → +n`, when one matched."""
    conditions: Mapping[str, str] = field(default_factory=dict)
    """Conditions the policy raised while deciding (name → sentence), see core/conditions.py."""
