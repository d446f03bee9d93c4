"""`celery-scaler status`: each pool's conditions, read from its ECS service (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from celery_scaler.core.conditions import Condition
from celery_scaler.core.config import WorkerPool, WorkerPoolSpec
from celery_scaler.core.cooldowns import scale_in_cooldown_left, scale_out_cooldown_left
from celery_scaler.core.drain import drain_summary
from celery_scaler.core.model import PoolMemory, ServiceObservation
from celery_scaler.core.policy import fallback_active
from celery_scaler.core.schedules import next_action
from celery_scaler.core.state import memory_from_tags, pause_from_tags

CONDITIONS = (
    "Ready",
    "Scaling",
    "Paused",
    "Degraded",
    "FallbackActive",
    "Leader",
    *(condition.value for condition in Condition),
)


@dataclass(frozen=True)
class PoolStatus:
    pool: str
    cluster: str
    service: str
    conditions: dict[str, bool]
    current: int | None = None
    running: int | None = None
    pending: int | None = None
    last_desired: int | None = None
    last_action: str | None = None
    last_action_time: float | None = None
    last_reason: str | None = None
    failures: int = 0
    cooldowns_left: dict[str, float] = field(default_factory=dict)
    leader: str | None = None
    error: str | None = None
    min_capacity: int | None = None
    """The bounds in force now: the pool's own, or a schedule's (`bounds_from`)."""
    max_capacity: int | None = None
    bounds_from: dict[str, str] = field(default_factory=dict)
    """`minCapacity`/`maxCapacity` → the schedule that set it, where one did."""
    next_schedule: dict[str, Any] | None = None
    """The scheduled action that fires next: its name, time and the bounds it sets."""
    paused: tuple[str, ...] = ()
    """The pause tags in force on the service (`celery-scaler.io/paused-scale-in=true`, …)."""
    drain: dict[str, Any] | None = None
    """A drain-then-remove scale-in in progress (core/drain.py), from the drain tags."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cooldowns_left(spec: WorkerPoolSpec, memory: PoolMemory, now: float) -> dict[str, float]:
    """Seconds left of each cooldown that runs: `scale_out`, `scale_in`.

    Each policy measures the pool's cooldowns with its own length; where the policies'
    lengths give different times, each is shown as `<policy>/scale_out`.
    """
    left: dict[str, dict[str, float]] = {"scale_out": {}, "scale_in": {}}
    for policy in spec.scaling_policies:
        if policy.scales_out:
            out = scale_out_cooldown_left(memory, policy.scale_out_cooldown, now)
            left["scale_out"][policy.name] = round(out, 1)
        if policy.scales_in:
            in_ = scale_in_cooldown_left(memory, policy.scale_in_cooldown, now)
            left["scale_in"][policy.name] = round(in_, 1)
    cooldowns: dict[str, float] = {}
    for kind, by_policy in left.items():
        if len(set(by_policy.values())) > 1:
            cooldowns.update({f"{name}/{kind}": s for name, s in by_policy.items() if s})
        elif by_policy and (seconds := next(iter(by_policy.values()))):
            cooldowns[kind] = seconds
    return cooldowns


def pool_status(
    pool: WorkerPool,
    service: ServiceObservation | None,
    now: float,
    *,
    error: str | None = None,
    leader: str | None = None,
) -> PoolStatus:
    """The conditions of one pool, Kubernetes style, from its service and tags."""
    spec = pool.spec
    if service is None:
        conditions = dict.fromkeys(CONDITIONS, False)
        conditions["Degraded"] = True
        status = PoolStatus(
            pool.name, spec.ecs.cluster, spec.ecs.service, conditions, error=error, leader=leader
        )
        return _with_bounds(status, spec, now)
    memory = memory_from_tags(service.tags)
    pause = pause_from_tags(service.tags)
    failures = memory.consecutive_failures
    cooldowns = _cooldowns_left(spec, memory, now)
    conditions = {
        "Ready": failures == 0,
        "Scaling": service.deploying or service.running + service.pending != service.desired,
        "Paused": pause.held or pause.replicas is not None,
        "Degraded": failures > 0,
        "FallbackActive": fallback_active(spec, failures),
        "Leader": leader is not None,
        **{condition.value: condition in memory.conditions for condition in Condition},
    }
    last = memory.last_action
    status = PoolStatus(
        pool=pool.name,
        cluster=spec.ecs.cluster,
        service=spec.ecs.service,
        conditions=conditions,
        current=service.desired,
        running=service.running,
        pending=service.pending,
        last_desired=memory.last_desired,
        last_action=last.action.value if last else None,
        last_action_time=last.time if last else None,
        last_reason=last.reason if last else None,
        failures=failures,
        cooldowns_left=cooldowns,
        leader=leader,
        error=error,
        paused=pause.describe(),
        drain=drain_summary(memory.drain) if memory.drain is not None else None,
    )
    return _with_bounds(status, spec, now)


def _with_bounds(status: PoolStatus, spec: WorkerPoolSpec, now: float) -> PoolStatus:
    """`status` with the bounds in force at `now` and the scheduled action due next."""
    bounds = spec.bounds_at(now)
    upcoming = next_action(spec.scheduled_actions, now)
    schedule = None
    if upcoming is not None:
        action, time = upcoming
        schedule = {
            "name": action.name,
            "time": time,
            "minCapacity": action.min_capacity,
            "maxCapacity": action.max_capacity,
        }
    sources = {"minCapacity": bounds.min_from, "maxCapacity": bounds.max_from}
    return replace(
        status,
        min_capacity=bounds.min_capacity,
        max_capacity=bounds.max_capacity,
        bounds_from={bound: name for bound, name in sources.items() if name is not None},
        next_schedule=schedule,
    )
