"""What one reconcile pass sees and decides: frozen values passed between layers.

Nothing here does I/O. Adapters build the observations, the policy turns them into a
Decision, the reconcile pass acts on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TypeVar

from celery_scaler.core.schedules import Bounds

T = TypeVar("T")


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
    """The broker's view of one pool's queues (or of every pool's: see `subset`).

    Per-queue figures are kept so that one read serves every pool. A figure the broker
    cannot give is None (or absent from its per-queue mapping), never 0.
    """

    queue_depth: int
    """Messages waiting, summed over the queues that could be read."""
    per_queue: Mapping[str, int] = field(default_factory=dict)
    unacked: int | None = None
    """Messages delivered to a consumer and not yet acknowledged: prefetched or running on
    a worker, or left behind by one that died (Redis, until the visibility timeout); SQS:
    in flight. None when the broker was not asked or any queue's count is unknown."""
    latency_seconds: float | None = None
    """Age of the oldest waiting message, when the broker can tell."""
    per_queue_latency: Mapping[str, float | None] = field(default_factory=dict)
    per_queue_unacked: Mapping[str, int] = field(default_factory=dict)
    delayed: int | None = None
    """Messages not yet visible because of a delivery delay (SQS only)."""
    per_queue_delayed: Mapping[str, int] = field(default_factory=dict)
    unstamped: int | None = None
    """Of the waiting messages scanned for latency, those without a publish stamp (Redis)."""
    per_queue_unstamped: Mapping[str, int] = field(default_factory=dict)
    per_queue_skew: Mapping[str, float] = field(default_factory=dict)
    """Queue → seconds a waiting message's stamp lies in the future (publisher's clock
    ahead); only queues where one does. Their latency is unknown."""
    missing: frozenset[str] = frozenset()
    """Queues the broker says do not exist (RabbitMQ, SQS): not read as empty."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Queue → why it could not be read; the other queues were read."""

    def problems(self) -> tuple[str, ...]:
        """Why a pool of these queues cannot be decided on: a sentence each."""
        found = [f"queue {queue!r}: {error}" for queue, error in sorted(self.errors.items())]
        if self.missing:
            names = ", ".join(repr(queue) for queue in sorted(self.missing))
            found.append(f"the broker has no queue {names}: not read as an empty queue")
        return tuple(found)

    def subset(self, queues: Iterable[str]) -> BrokerObservation:
        """The observation of some of these queues (one read serves every pool)."""
        names = list(dict.fromkeys(queues))
        per_queue = {
            queue: self.per_queue.get(queue, 0) for queue in names if queue not in self.errors
        }
        latency = None
        if self.per_queue_latency:
            latency = oldest_of(self.per_queue_latency.get(queue) for queue in names)

        def some(mapping: Mapping[str, T]) -> dict[str, T]:
            return {queue: mapping[queue] for queue in names if queue in mapping}

        def total(figure: int | None, mapping: Mapping[str, int]) -> int | None:
            # Known for the subset only when known for each of its queues.
            if figure is None or any(queue not in mapping for queue in names):
                return None
            return sum(mapping[queue] for queue in names)

        return BrokerObservation(
            queue_depth=sum(per_queue.values()),
            per_queue=per_queue,
            unacked=total(self.unacked, self.per_queue_unacked),
            latency_seconds=latency,
            per_queue_latency=some(self.per_queue_latency),
            per_queue_unacked=some(self.per_queue_unacked),
            delayed=total(self.delayed, self.per_queue_delayed),
            per_queue_delayed=some(self.per_queue_delayed),
            unstamped=total(self.unstamped, self.per_queue_unstamped),
            per_queue_unstamped=some(self.per_queue_unstamped),
            per_queue_skew=some(self.per_queue_skew),
            missing=frozenset(names) & self.missing,
            errors=some(self.errors),
        )


@dataclass(frozen=True)
class WorkerSnapshot:
    """One Celery worker as its inspect replies describe it."""

    name: str
    queues: frozenset[str]
    active: int
    reserved: int
    scheduled: int | None
    """Tasks held for their ETA; None when the round did not ask (no pool scales on it)."""
    revoked: int | None
    """Revoked task ids the worker holds; None when the round did not ask."""
    concurrency: int
    """The pool's max-concurrency from `stats`; 0 when the worker did not say."""
    max_rss_kb: int | None = None
    processed_total: int = 0
    """Lifetime count of tasks the worker received (sum of `stats`' `total`)."""
    uptime_seconds: float | None = None
    """Seconds since the worker started (`stats`' `uptime`): tells a restart from a reset."""
    prefetch_count: int | None = None
    """How many unacknowledged messages the worker may hold (`stats`' `prefetch_count`):
    concurrency times worker_prefetch_multiplier, raised by one per ETA task it holds."""

    @property
    def busy(self) -> bool:
        return self.active > 0

    @property
    def saturated(self) -> bool:
        """Every slot runs a task: a message it reserved waits until one frees."""
        return 0 < self.concurrency <= self.active


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
    deployment_started: float | None = None
    """While a deployment rolls out: when its newest deployment was created (epoch seconds)."""


@dataclass(frozen=True)
class ScalingPolicy:
    """An Application Auto Scaling scaling policy, as far as the controller cares."""

    name: str
    policy_type: str
    """`StepScaling`, `TargetTrackingScaling` or `PredictiveScaling`."""
    alarms: tuple[str, ...] = ()
    """The CloudWatch alarms that trigger it, by name, where AWS lists them."""


@dataclass(frozen=True)
class ScalableTarget:
    """An ECS service's Application Auto Scaling scalable target and its scaling policies."""

    resource_id: str
    """`service/CLUSTER/SERVICE`."""
    min_capacity: int
    max_capacity: int
    scale_in_suspended: bool = False
    """SuspendedState.DynamicScalingInSuspended: no policy removes capacity."""
    scale_out_suspended: bool = False
    """SuspendedState.DynamicScalingOutSuspended: no policy adds capacity."""
    scheduled_suspended: bool = False
    policies: tuple[ScalingPolicy, ...] = ()


@dataclass(frozen=True)
class Observation:
    """Everything read for one pool in one pass; `errors` lists what could not be read."""

    broker: BrokerObservation | None
    workers: tuple[WorkerSnapshot, ...] | None
    service: ServiceObservation | None
    errors: tuple[str, ...] = ()
    foreign_scaling: ScalableTarget | None = None
    """The service's scalable target, with only the policies this controller did not create,
    when they can still change the count (core/autoscaling.py `foreign_scaling`): a conflict."""


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
class PendingWrite:
    """A desiredCount the controller is about to write, recorded on the service first.

    Written before UpdateService and cleared with the state written after it, so a
    controller that stops in between leaves it behind: the next one finds the count it
    names and knows the change was its own, not someone else's (policy.plan_pass).
    """

    action: Action
    current: int
    desired: int
    time: float


@dataclass(frozen=True)
class Drain:
    """A scale-in waiting for its workers to finish their tasks first (core/drain.py).

    Kept on the service as tags, like the cooldowns, so a controller that restarts finds
    it and restores the workers' consumers.
    """

    current: int
    """The desiredCount when the drain began."""
    desired: int
    """The count once the workers are drained."""
    started: float
    workers: tuple[str, ...]
    """The workers being drained (node names): told to stop consuming the pool's queues."""
    removing: float | None = None
    """When the count was lowered to `desired`: ECS may stop only these workers' tasks."""


@dataclass(frozen=True)
class PoolMemory:
    """What the controller remembers about a pool between passes."""

    samples: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Policy name → the (time, metric value) pairs still inside its window (not persisted)."""
    scale_out_cooldown: ScaleOutCooldown | None = None
    scale_in_cooldown_started: float | None = None
    last_desired: int | None = None
    """The desired count the controller last wrote or accepted; any other is external."""
    consecutive_failures: int = 0
    last_action: LastAction | None = None
    conditions: Mapping[str, float] = field(default_factory=dict)
    """Condition name (core/conditions.py) → when it began to hold; only those that hold."""
    pending: PendingWrite | None = None
    """A write this or an earlier controller began and did not record as done."""
    drain: Drain | None = None
    """A drain-then-remove scale-in in progress."""

    def evolve(self, **changes: object) -> PoolMemory:
        """A copy with `changes` (`_evolved`): a pass evolves the memory several times."""
        return _evolved(self, _POOL_MEMORY_FIELDS, changes)


_POOL_MEMORY_FIELDS = frozenset(f.name for f in fields(PoolMemory))


def _evolved(instance: T, known: frozenset[str], changes: Mapping[str, object]) -> T:
    """A copy of `instance` with `changes`, as `dataclasses.replace` makes it (unknown names
    refused; neither class has a __post_init__ to run) in a quarter of its time: the
    simulator runs a day's passes, each evolving the memory and its decision several times.
    """
    unknown = changes.keys() - known
    if unknown:
        raise TypeError(f"{type(instance).__name__} has no field {', '.join(sorted(unknown))}")
    evolved = object.__new__(type(instance))
    # Frozen: the fields are set in the instance's dict, as dataclasses' __init__ does.
    evolved.__dict__.update(instance.__dict__, **changes)
    return evolved


@dataclass(frozen=True)
class Proposal:
    """What one scaling policy asks of its pool in one pass, before the pool combines them."""

    policy: str
    metric: str
    value: float | None
    """The windowed value the policy read; None while its window fills."""
    premise: str
    """What it saw (`backlog_per_task 12 ≥ 10`), or why it does not act."""
    desired: int | None = None
    """The count it asks for, before [minCapacity, maxCapacity]; None when it does not act."""
    rule: str | None = None
    """The rule that gave `desired`: a step, or the target tracking formula."""
    notes: tuple[str, ...] = ()
    """What changed the rule's count on the way (a cooldown, the policy's direction)."""


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
    """The rule that gave the count, when one did: the matching step, as
    `step [lower, upper) → +n`, or the target tracking formula."""
    policy: str | None = None
    """The scaling policy whose proposal the count follows (or that held it); None when no
    policy was asked (paused, a failed pass, the fallback)."""
    conditions: Mapping[str, str] = field(default_factory=dict)
    """Conditions the policy raised while deciding (name → sentence), see core/conditions.py."""
    warnings: tuple[str, ...] = ()
    """Things a person must act on that change no count (a condition held too long)."""
    bounds: Bounds | None = None
    """minCapacity and maxCapacity in force at the pass, and the schedules that set them."""

    def evolve(self, **changes: object) -> Decision:
        """A copy with `changes` (`_evolved`): every pass gives its decision the bounds."""
        return _evolved(self, _DECISION_FIELDS, changes)


_DECISION_FIELDS = frozenset(f.name for f in fields(Decision))
