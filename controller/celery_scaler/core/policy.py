"""The decision of one pass: each scaling policy proposes, the pool combines (pure).

No I/O, no clock, no logging: every function takes time as an argument and returns
values, so the controller, the report replay and the simulator share one decision.

A pool has one or more scaling policies (its own, named `default`, and `spec.policies`),
each step scaling (core/step_scaling.py) or target tracking (core/target_tracking.py) on
its own metric and window. They combine as AWS combines a scalable target's policies:
scale out to the largest proposal when any proposes more than the count; scale in only
when every policy that can scale in proposes less, to the largest of those proposals.

Beyond AWS: a count outside [minCapacity, maxCapacity] is always brought back, whatever
cooldown, rollout or failed read is running; a policy acts only once its window holds a
window's worth of samples; a count someone else lowered no longer counts as added by a
running scale-out cooldown; a scale-in waits for rollouts, unanswered workers and busy
ones (safeScaleIn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from celery_scaler.core.autoscaling import conflict_sentence
from celery_scaler.core.conditions import (
    Condition,
    note_conditions,
    observed_conditions,
    overdue_conditions,
)
from celery_scaler.core.config import (
    DEFAULT_POLICY,
    FallbackBehavior,
    ScalingPolicySpec,
    Statistic,
    WorkerPoolSpec,
)
from celery_scaler.core.cooldowns import running_scale_out, scale_in_cooldown_left
from celery_scaler.core.metrics import BROKER_ONLY_METRICS, busy_workers, unanswered_workers
from celery_scaler.core.model import (
    Action,
    Decision,
    LastAction,
    Observation,
    PendingWrite,
    PoolMemory,
    Proposal,
    ScaleOutCooldown,
)
from celery_scaler.core.schedules import Bounds
from celery_scaler.core.state import (
    PAUSED,
    PAUSED_REPLICAS,
    PAUSED_SCALE_IN,
    PAUSED_SCALE_OUT,
    Pause,
    pause_from_tags,
)
from celery_scaler.core.step_scaling import step_proposal
from celery_scaler.core.target_tracking import tracking_proposal

Samples = tuple[tuple[float, float], ...]


def record_sample(
    memory: PoolMemory, now: float, value: float, window: float, policy: str = DEFAULT_POLICY
) -> PoolMemory:
    """Add a sample to a policy's window and drop the ones that fell out (0 keeps one)."""
    kept: Samples = ()
    if window > 0:
        kept = tuple((t, v) for t, v in memory.samples.get(policy, ()) if t >= now - window)
    return memory.evolve(samples={**memory.samples, policy: (*kept, (now, value))})


def window_shortfall(
    policy: ScalingPolicySpec, samples: Samples, now: float, interval: float
) -> str | None:
    """Why a policy's window does not hold enough samples yet for it to act, if it does not.

    Each sample stands for the `interval` up to the next pass, so the window holds enough
    once its oldest kept sample is at least `window - interval` old; a window of one
    interval or less (0 included) needs one sample. A new process, or one whose samples
    all aged out while its passes failed, starts short: a Minimum over one lone sample
    is not a Minimum over the window.
    """
    needed = policy.window - interval
    if not samples or now - samples[0][0] >= needed:
        return None
    count, held = len(samples), now - samples[0][0]
    return (
        f"{policy.metric.value}: samples cover {held:.0f}s of the {policy.window:g}s window so "
        f"far ({count} sample{'s' if count > 1 else ''}); a policy acts once they reach back "
        f"{needed:g}s"
    )


def aggregate(samples: Sequence[tuple[float, float]], statistic: Statistic) -> float:
    values = [value for _, value in samples]
    if statistic is Statistic.MINIMUM:
        return min(values)
    if statistic is Statistic.MAXIMUM:
        return max(values)
    return sum(values) / len(values)


def fallback_active(pool: WorkerPoolSpec, failures: int) -> bool:
    """Whether `failures` consecutive failed passes put the pool on its fallback."""
    fallback = pool.fallback
    return fallback.applies and failures >= fallback.failure_threshold


def decide(
    pool: WorkerPoolSpec,
    obs: Observation,
    metrics: Mapping[str, float],
    memory: PoolMemory,
    now: float,
    *,
    interval: float,
) -> Decision:
    """The desired count for one pool: its policies' proposals, combined.

    `memory` must already hold this pass's sample (see `record_sample`); `interval` is
    the time between passes. The steps, in order: another autoscaler on the service,
    pause and failed observation hold (or fall back); each policy proposes a count from
    its own windowed metric (none while its window fills); the proposals combine as AWS
    combines them (`_chosen`); the bounds clamp the result; a scale-in is then held back
    by what makes it unsafe. Whatever the path, workers that do not answer raise
    WorkersUnreachable where they block scale-in.

    The bounds are those in force at `now` (the pool's, or a schedule's: `bounds_at`);
    `paused-scale-in` and `paused-scale-out` then hold a change in their direction.
    """
    bounds = pool.bounds_at(now)
    pause = pause_from_tags(obs.service.tags) if obs.service is not None else Pause()
    decision = _decide(pool, obs, metrics, memory, now, interval, bounds, pause)
    decision = _paused_direction(decision, pause).evolve(bounds=bounds)
    unreachable = workers_unreachable(pool, obs)
    if unreachable is None:
        return decision
    sentence = (
        f"{unreachable}, so no scale-in until they do: a task whose worker hangs, consumes "
        "none of the pool's queues or uses another control exchange blocks it for good"
    )
    conditions = {**decision.conditions, Condition.WORKERS_UNREACHABLE: sentence}
    return decision.evolve(conditions=conditions)


def _decide(
    pool: WorkerPoolSpec,
    obs: Observation,
    metrics: Mapping[str, float],
    memory: PoolMemory,
    now: float,
    interval: float,
    bounds: Bounds,
    pause: Pause,
) -> Decision:
    policies = pool.scaling_policies
    metric = policies[0].metric.value
    service = obs.service
    current = service.desired if service is not None else 0

    if service is not None and obs.foreign_scaling is not None:
        # Two drivers of one count undo each other: not even the bounds or the fallback
        # capacity are applied while the other one is live (its own range applies).
        target = obs.foreign_scaling.resource_id
        return _hold(current, metric, f"another autoscaler drives {target}: holding at {current}")
    if pause.replicas is not None:
        # A person's explicit count, as KEDA's paused-replicas: neither the bounds nor the
        # scale-in guards stand in its way, as for a count set by hand.
        wanted = pause.replicas
        said = f"paused by the tag {PAUSED_REPLICAS}={wanted}"
        if wanted == current:
            return _hold(current, metric, f"{said}: holding at {current}")
        return Decision(
            _action(current, wanted), current, wanted, metric, None, f"{said}: {current} → {wanted}"
        )
    if pause.held:
        why = pause.problem or f"paused by the tag {PAUSED}=true"
        return _hold(current, metric, f"{why}: holding at {current}")
    if obs.errors or service is None:
        return _without_data(pool, obs, memory, current, bounds, now)
    activation = _activation(pool, metrics) if bounds.min_capacity == 0 else None
    if activation is not None and current == 0:
        return _leave_zero(pool, activation, bounds)
    for policy in policies:
        read = policy.metric.value
        if read not in metrics or not memory.samples.get(policy.name):
            return _hold(current, read, f"holding at {current}: {read} could not be read this pass")
    decision = _by_policies(pool, obs, memory, now, interval, current, bounds, activation)
    if activation is not None and current == 1 and decision.desired == 1:
        return _to_zero(pool, obs, memory, now, activation, bounds, decision)
    return decision


def _by_policies(
    pool: WorkerPoolSpec,
    obs: Observation,
    memory: PoolMemory,
    now: float,
    interval: float,
    current: int,
    bounds: Bounds,
    activation: Activation | None,
) -> Decision:
    """Each policy's proposal, combined, clamped to the bounds and guarded (a scale-in)."""
    policies = pool.scaling_policies
    proposals = [_propose(policy, memory, current, now, interval) for policy in policies]
    chosen = _chosen(pool, proposals, current)
    if chosen is None:
        held = _holding(pool, proposals, current)
        premise = _premises(pool, proposals, current)
        return _bring_into_range(bounds, current, held.metric, held.value, premise, held.policy)
    assert chosen.desired is not None
    label = "" if _alone(policies) else f"{chosen.policy}: "
    premise, rule, proposed = label + chosen.premise, chosen.rule, chosen.desired
    notes = list(chosen.notes)
    # Scaling to zero, the policies go down to 1: only activation takes the last task away.
    low = max(bounds.min_capacity, 1) if activation is not None else bounds.min_capacity
    desired = min(max(proposed, low), bounds.max_capacity)
    if desired != proposed and desired > bounds.min_capacity == 0:
        notes.append(f"{proposed} raised to 1: below 1 only by activation")
    elif desired != proposed:
        limit = bounds.label("maxCapacity" if desired < proposed else "minCapacity")
        notes.append(f"{proposed} clamped to {limit} {desired}")
    if desired < current:
        desired = _guard_scale_in(pool, obs, memory, current, desired, now, notes, bounds)

    action = _action(current, desired)
    detail = f" ({'; '.join(notes)})" if notes else ""
    if action is Action.HOLD:
        reason = f"{premise} ({rule}): holding at {current}{detail}"
    else:
        reason = f"{premise} ({rule}): {current} → {desired}{detail}"
    return Decision(
        action, current, desired, chosen.metric, chosen.value, reason, rule, chosen.policy
    )


@dataclass(frozen=True)
class Activation:
    """What the policies with an `activation` read this pass (KEDA's activation phase)."""

    readings: tuple[tuple[ScalingPolicySpec, float], ...]
    """Each such policy and its metric's value this pass (not its window: the edge 0 ↔ 1
    follows the latest reading, as KEDA's activation follows each poll)."""
    alone: bool
    """The pool's own policy alone: reasons name no policy."""

    @property
    def active(self) -> tuple[ScalingPolicySpec, float] | None:
        """The first policy above its activation value, if any is."""
        return next(((p, v) for p, v in self.readings if v > (p.activation or 0.0)), None)

    def premise(self, policy: ScalingPolicySpec, value: float) -> str:
        sign = ">" if value > (policy.activation or 0.0) else "≤"
        label = "" if self.alone else f"{policy.name}: "
        return f"{label}{policy.metric.value} {value:g} {sign} activation {policy.activation:g}"

    def premises(self) -> str:
        return "; ".join(self.premise(policy, value) for policy, value in self.readings)


def _activation(pool: WorkerPoolSpec, metrics: Mapping[str, float]) -> Activation | None:
    """The activation readings, where the pool scales to zero (None where it does not, or
    where one of them could not be read: then the pool is not decided by them)."""
    policies = pool.activation_policies
    if not policies or any(p.metric.value not in metrics for p in policies):
        return None
    readings = tuple((p, metrics[p.metric.value]) for p in policies)
    return Activation(readings, _alone(pool.scaling_policies))


def _leave_zero(pool: WorkerPoolSpec, activation: Activation, bounds: Bounds) -> Decision:
    """At 0 tasks: 1 when a policy is above its activation value, else 0 (KEDA's rule)."""
    active = activation.active
    if active is None:
        policy, value = activation.readings[0]
        reason = f"{activation.premises()}: holding at 0"
        return Decision(Action.HOLD, 0, 0, policy.metric.value, value, reason, policy=policy.name)
    policy, value = active
    premise = activation.premise(policy, value)
    if bounds.max_capacity == 0:
        limit = bounds.label("maxCapacity")
        reason = f"{premise}, but {limit} is 0: holding at 0"
        return Decision(Action.HOLD, 0, 0, policy.metric.value, value, reason, policy=policy.name)
    reason = f"{premise}: 0 → 1"
    return Decision(
        Action.SCALE_OUT, 0, 1, policy.metric.value, value, reason, "activation", policy.name
    )


def _to_zero(
    pool: WorkerPoolSpec,
    obs: Observation,
    memory: PoolMemory,
    now: float,
    activation: Activation,
    bounds: Bounds,
    decision: Decision,
) -> Decision:
    """At 1 task the policies keep: 0 once every activation reading is at or below its
    value, through the scale-in guards (a busy worker, a cooldown, a rollout hold it)."""
    if activation.active is not None:
        return decision
    notes: list[str] = []
    desired = _guard_scale_in(pool, obs, memory, 1, 0, now, notes, bounds)
    policy, value = activation.readings[0]
    detail = f" ({'; '.join(notes)})" if notes else ""
    result = "1 → 0" if desired == 0 else "holding at 1"
    reason = f"{activation.premises()}: {result}{detail}"
    return Decision(
        _action(1, desired),
        1,
        desired,
        policy.metric.value,
        value,
        reason,
        "activation",
        policy.name,
    )


def _propose(
    policy: ScalingPolicySpec, memory: PoolMemory, current: int, now: float, interval: float
) -> Proposal:
    """What one policy asks for, from its own window of samples."""
    samples = memory.samples.get(policy.name, ())
    short = window_shortfall(policy, samples, now, interval)
    if short is not None:
        return Proposal(policy.name, policy.metric.value, None, short)
    value, shown = _windowed_value(policy, samples)
    if policy.target_tracking is not None:
        return tracking_proposal(policy, policy.target_tracking, value, shown, memory, current, now)
    return step_proposal(policy, value, shown, memory, current, now)


def _chosen(pool: WorkerPoolSpec, proposals: Sequence[Proposal], current: int) -> Proposal | None:
    """The proposal the count follows, as AWS combines a target's policies; None: none.

    Any policy asking for more than the count scales out, to the largest such proposal
    (AWS: "the policy that provides the largest capacity"). A scale-in needs every policy
    that can scale in (a scaleIn table, or target tracking without disableScaleIn) to ask
    for less, and goes to the largest of those proposals (AWS's rule for several target
    tracking policies, here for step policies as well). Otherwise a policy that asks for
    the count itself holds it.
    """
    acting = [p for p in proposals if p.desired is not None]
    out = [p for p in acting if p.desired is not None and p.desired > current]
    if out:
        return max(out, key=_desired)  # the first of equals: policies in their order
    lower = {p.policy: p for p in acting if p.desired is not None and p.desired < current}
    if lower and all(p.name in lower for p in pool.scaling_policies if p.scales_in):
        return max(lower.values(), key=_desired)
    return next((p for p in acting if p.desired == current), None)


def _desired(proposal: Proposal) -> int:
    return proposal.desired if proposal.desired is not None else -1


def _holding(pool: WorkerPoolSpec, proposals: Sequence[Proposal], current: int) -> Proposal:
    """The policy a hold is put down to: one that kept a scale-in back, else the first."""
    lower = {p.policy for p in proposals if p.desired is not None and p.desired < current}
    if lower:
        keeping = [p.name for p in pool.scaling_policies if p.scales_in and p.name not in lower]
        return next(p for p in proposals if p.policy in keeping)
    return proposals[0]


def _alone(policies: Sequence[ScalingPolicySpec]) -> bool:
    """The pool's own policy and no other: its reasons name no policy, as they always did."""
    return len(policies) == 1 and policies[0].name == DEFAULT_POLICY


def _premises(pool: WorkerPoolSpec, proposals: Sequence[Proposal], current: int) -> str:
    """What each policy saw, when none moves the count (the pool's own alone: as it is)."""
    if _alone(pool.scaling_policies):
        return proposals[0].premise
    said = []
    for proposal in proposals:
        text = f"{proposal.policy}: {proposal.premise}"
        if proposal.desired is not None:
            text += f" ({proposal.rule}) proposes {proposal.desired}"
        said.append(text)
    if any(p.desired is not None and p.desired < current for p in proposals):
        said.append("no scale-in until every policy that scales in proposes fewer tasks")
    return "; ".join(said)


def _hold(current: int, metric: str, reason: str) -> Decision:
    return Decision(Action.HOLD, current, current, metric, None, reason)


def _action(current: int, desired: int) -> Action:
    if desired > current:
        return Action.SCALE_OUT
    if desired < current:
        return Action.SCALE_IN
    return Action.HOLD


def _paused_direction(decision: Decision, pause: Pause) -> Decision:
    """`decision`, held when people paused its direction (KEDA's paused-scale-in/-out).

    Every change in that direction waits, whatever asked for it: a policy, activation, a
    bound, the fallback; the other direction goes on as usual.
    """
    if pause.replicas is not None:
        return decision
    if decision.action is Action.SCALE_IN and pause.scale_in:
        tag, direction = PAUSED_SCALE_IN, "scale-in"
    elif decision.action is Action.SCALE_OUT and pause.scale_out:
        tag, direction = PAUSED_SCALE_OUT, "scale-out"
    else:
        return decision
    current = decision.current
    reason = (
        f"{direction} paused by the tag {tag}=true: holding at {current} "
        f"(otherwise {decision.reason})"
    )
    return decision.evolve(action=Action.HOLD, desired=current, reason=reason)


def _without_data(
    pool: WorkerPoolSpec,
    obs: Observation,
    memory: PoolMemory,
    current: int,
    bounds: Bounds,
    now: float,
) -> Decision:
    """A pass that could not observe: hold, or after enough failures apply the fallback.

    A count outside [minCapacity, maxCapacity] is brought back all the same: the bounds
    need no metric, only the count, and that was read. Otherwise only the fallback
    changes the count (`_fall_back`).
    """
    metric = pool.scaling_policies[0].metric.value
    problems = "; ".join(obs.errors) or "the ECS service was not read"
    failures = memory.consecutive_failures
    if obs.service is None:
        # Not "holding at 0": the count was never read, so there is nothing known to hold.
        return _hold(current, metric, f"count unknown, nothing changed: {problems}")
    desired = min(max(current, bounds.min_capacity), bounds.max_capacity)
    if desired != current:
        bound = (
            f"above {bounds.label('maxCapacity')}"
            if desired < current
            else f"below {bounds.label('minCapacity')}"
        )
        why = f"{current} is {bound}: {current} → {desired}"
    else:
        why = f"holding at {current}"
    if fallback_active(pool, failures):
        desired, why = _fall_back(pool, obs, memory, current, desired, why, bounds, now)
        why = f"fallback after {failures} failed passes: {why}"
    return Decision(_action(current, desired), current, desired, metric, None, f"{why}: {problems}")


def _fall_back(
    pool: WorkerPoolSpec,
    obs: Observation,
    memory: PoolMemory,
    current: int,
    desired: int,
    why: str,
    bounds: Bounds,
    now: float,
) -> tuple[int, str]:
    """The count under `fallback.behavior` (KEDA's), from `desired` (the count within the
    bounds), and why.

    currentReplicasIfHigher (the default, and the only rule before behaviours existed)
    never lowers the count. static and currentReplicasIfLower may: only through the
    scale-in guards, and never while safeScaleIn cannot see which workers are busy, so a
    failed read never stops a busy worker. The capacity is kept within the bounds in force
    (a schedule's may not hold it).
    """
    fallback = pool.fallback
    behavior = fallback.behavior
    if behavior is FallbackBehavior.CURRENT_REPLICAS:
        return desired, f"{why} (fallback.behavior currentReplicas)"
    assert fallback.capacity is not None
    capacity = fallback.capacity
    within = min(max(capacity, bounds.min_capacity), bounds.max_capacity)
    if behavior is FallbackBehavior.CURRENT_REPLICAS_IF_HIGHER:
        if within > desired:
            return (
                within,
                f"desired is max(current {current}, fallback.capacity {capacity}) = {within}",
            )
        return desired, f"{why} (fallback.capacity {capacity} is not above it)"
    if behavior is FallbackBehavior.STATIC:
        formula, target = f"fallback.capacity {capacity} (static)", within
    else:
        formula = f"min(current {current}, fallback.capacity {capacity})"
        target = min(desired, within)
    if within != capacity:
        formula += f", within [{bounds.min_capacity}, {bounds.max_capacity}]"
    if target >= desired:
        if target == desired:
            return desired, f"{why} ({formula} = {target})"
        return target, f"desired is {formula} = {target}"
    notes: list[str] = []
    if pool.safe_scale_in and obs.workers is None:
        notes.append("which workers are busy is unknown (safeScaleIn)")
        guarded = max(target, min(current, bounds.max_capacity))
    else:
        guarded = _guard_scale_in(pool, obs, memory, current, target, now, notes, bounds)
    said = f"desired is {formula} = {target}"
    if guarded != target:
        said += f", holding at {guarded}: {'; '.join(notes)}"
    return guarded, said


def _windowed_value(policy: ScalingPolicySpec, samples: Samples) -> tuple[float, str]:
    """The window's statistic, and how to say it in a reason."""
    metric = policy.metric.value
    value = aggregate(samples, policy.statistic)
    if policy.window > 0 and len(samples) > 1:
        statistic = policy.statistic.value.lower()
        return value, f"{metric} {statistic} {value:g} over {len(samples)} samples"
    return value, f"{metric} {value:g}"


def _guard_scale_in(
    pool: WorkerPoolSpec,
    obs: Observation,
    memory: PoolMemory,
    current: int,
    desired: int,
    now: float,
    notes: list[str],
    bounds: Bounds,
) -> int:
    """`desired` raised back as far as an unsafe scale-in must wait; appends why to `notes`."""
    # A count above maxCapacity comes down whatever else holds (as in _bring_into_range);
    # only the policy's own reduction waits.
    ceiling = min(current, bounds.max_capacity)
    blocked = _scale_in_blocked(pool, obs, memory, now)
    if blocked and desired < ceiling:
        notes.append(blocked)
        return ceiling
    if pool.safe_scale_in and obs.workers is not None:
        busy = busy_workers(obs.workers)
        floor = min(busy, ceiling)
        if desired < floor:
            notes.append(f"kept at {floor}: {busy} workers are busy (safeScaleIn)")
            return floor
    return desired


def _scale_in_blocked(
    pool: WorkerPoolSpec, obs: Observation, memory: PoolMemory, now: float
) -> str | None:
    """Why a scale-in must wait this pass, if it must."""
    if obs.service is not None and obs.service.deploying:
        return "no scale-in while a deployment rolls out"
    unreachable = workers_unreachable(pool, obs)
    if unreachable is not None:
        return unreachable
    # Every policy that scales in must agree to a scale-in, so each one's cooldown holds it.
    left = max(
        (scale_in_cooldown_left(memory, p.scale_in_cooldown, now) for p in pool.scaling_policies),
        default=0.0,
    )
    if left > 0:
        return f"scale-in cooldown has {left:.0f}s left"
    return None


def workers_unreachable(pool: WorkerPoolSpec, obs: Observation) -> str | None:
    """Why scale-in waits for workers that did not answer inspect, where it must wait.

    A running task whose worker did not answer may be busy, and its work is missing from
    a metric read through inspect and from the safeScaleIn floor: never scale in on
    missing data. A pool that scales on a broker-only metric without safeScaleIn reads
    neither, so for it AWS's step semantics hold exactly and nothing waits (every policy's
    metric must be broker-only for that).
    """
    # safeScaleIn first: most pools have it on, and then no policy's metric matters.
    if not pool.safe_scale_in and all(
        p.metric in BROKER_ONLY_METRICS for p in pool.scaling_policies
    ):
        return None
    missing = unanswered_workers(obs)
    if not missing or obs.service is None:
        return None
    running = obs.service.running
    return f"only {running - missing} of {running} running workers answered inspect"


def _bring_into_range(
    bounds: Bounds,
    current: int,
    metric: str,
    value: float | None,
    premise: str,
    policy: str | None = None,
) -> Decision:
    """No policy acts; only a count outside [min, max] is corrected."""
    desired = min(max(current, bounds.min_capacity), bounds.max_capacity)
    if desired > current:
        limit = bounds.label("minCapacity")
        reason = f"{premise}; {current} is below {limit}: {current} → {desired}"
    elif desired < current:
        limit = bounds.label("maxCapacity")
        reason = f"{premise}; {current} is above {limit}: {current} → {desired}"
    else:
        reason = f"{premise}: holding at {current}"
    action = _action(current, desired)
    return Decision(action, current, desired, metric, value, reason, policy=policy)


def plan_pass(
    pool: WorkerPoolSpec,
    obs: Observation,
    metrics: Mapping[str, float],
    memory: PoolMemory,
    now: float,
    *,
    interval: float,
) -> tuple[Decision, PoolMemory, tuple[str, ...], tuple[str, ...]]:
    """The pure part of one pass: (decision, memory before any write, events, errors).

    A metric the pool needs that cannot be read is a failed pass, never an idle fleet.
    `interval` is the time between passes (the window rule, `window_shortfall`).
    The controller, the report's replay and the simulator all decide through here.
    A condition held longer than its bound (conditions.OVERDUE_AFTER) adds a warning.
    Another autoscaler on the service (`Conflict`) adds an error, and the pool holds.
    """
    policies = _needed(pool, obs, now)
    unread = dict.fromkeys(p.metric.value for p in policies if p.metric.value not in metrics)
    errors = obs.errors
    if unread and not errors and obs.service is not None:
        errors = tuple(f"{metric} could not be read this pass" for metric in unread)
        obs = replace(obs, errors=errors)
    memory = settle_pending(pool, memory, obs)
    memory, events = note_pass(memory, obs, now)
    if not errors:
        for policy in policies:
            value = metrics.get(policy.metric.value)
            if value is not None:
                memory = record_sample(memory, now, value, policy.window, policy.name)
    decision = decide(pool, obs, metrics, memory, now, interval=interval)
    holding: dict[str, str] = {**observed_conditions(obs), **decision.conditions}
    memory, condition_events = note_conditions(memory, holding, now)
    warnings = overdue_conditions(memory, holding, now)
    if warnings:
        decision = decision.evolve(warnings=decision.warnings + warnings)
    if obs.foreign_scaling is not None:
        # An error, so `--once` exits 1; not a failed read, so no fallback capacity.
        errors += (conflict_sentence(obs.foreign_scaling),)
    return decision, memory, events + condition_events, errors


def _needed(pool: WorkerPoolSpec, obs: Observation, now: float) -> tuple[ScalingPolicySpec, ...]:
    """The policies whose metrics this pass must read: all, except at 0 tasks where the pool
    scales to zero, where only activation decides (a metric read through inspect has no
    worker to answer it then, and that is no failure)."""
    service = obs.service
    activating = pool.activation_policies
    at_zero = service is not None and service.desired == 0
    if at_zero and activating and pool.bounds_at(now).min_capacity == 0:
        return activating
    return pool.scaling_policies


def settle_pending(pool: WorkerPoolSpec, memory: PoolMemory, obs: Observation) -> PoolMemory:
    """A write begun and never recorded as done (`before_scaling`), settled by the count.

    The service at the count the write named: it went through and the controller stopped
    (or its tag write failed) before recording it, so it is recorded now, its cooldowns
    from the time of the write, and is not an external change. Any other count: the write
    did not happen, or someone changed the count since; `note_pass` tells which by
    last-desired. A person who sets exactly the count being written is taken for it.
    """
    pending = memory.pending
    if pending is None or obs.service is None:
        return memory
    memory = memory.evolve(pending=None)
    if obs.service.desired != pending.desired:
        return memory
    reason = (
        f"{pending.current} → {pending.desired}, by a controller that stopped before recording it"
    )
    metric = pool.scaling_policies[0].metric.value
    decision = Decision(pending.action, pending.current, pending.desired, metric, None, reason)
    return after_scaling(pool, memory, decision, pending.time)


def note_pass(
    memory: PoolMemory, obs: Observation, now: float
) -> tuple[PoolMemory, tuple[str, ...]]:
    """Count failures and notice external changes, before deciding; returns the events.

    A desiredCount other than the one the controller last wrote came from someone else
    (a person, a deployment tool, the CloudWatch fallback): it becomes current and starts
    the scale-in cooldown, so the controller does not undo it at once. A count lowered
    while a scale-out cooldown runs also takes what was removed off the capacity that
    cooldown counts as added (never below 0): a step is then measured from capacity that
    is there, as AWS measures from the current capacity.
    """
    failures = memory.consecutive_failures + 1 if obs.errors or obs.service is None else 0
    if obs.service is None:
        return memory.evolve(consecutive_failures=failures), ()
    desired, last = obs.service.desired, memory.last_desired
    if last is None or desired == last:
        return memory.evolve(consecutive_failures=failures, last_desired=desired), ()
    event = (
        f"desiredCount changed outside the controller: {last} → {desired}; "
        "taken as current, scale-in cooldown started"
    )
    memory = memory.evolve(
        consecutive_failures=failures, last_desired=desired, scale_in_cooldown_started=now
    )
    cooldown = memory.scale_out_cooldown
    if cooldown is not None and cooldown.added > 0 and desired < last:
        added = max(0, cooldown.added - (last - desired))
        memory = memory.evolve(scale_out_cooldown=ScaleOutCooldown(cooldown.started, added))
        event += f"; the scale-out cooldown now counts {added} added, not {cooldown.added}"
    return memory, (event,)


def before_scaling(memory: PoolMemory, decision: Decision, now: float) -> PoolMemory:
    """The memory to record on the service before `decision` is applied (`settle_pending`)."""
    pending = PendingWrite(decision.action, decision.current, decision.desired, now)
    return memory.evolve(pending=pending)


def after_scaling(
    pool: WorkerPoolSpec, memory: PoolMemory, decision: Decision, now: float
) -> PoolMemory:
    """The memory once `decision` has been applied: cooldowns start or accumulate.

    A scale-out adds to the running scale-out cooldown when it still runs by the length of
    the policy that decided (by the longest of the pool's, for a scaling no policy asked
    for: the fallback, minCapacity), else starts a new one.
    """
    if decision.action is Action.HOLD:
        return memory
    change = decision.desired - decision.current
    memory = memory.evolve(
        last_desired=decision.desired,
        last_action=LastAction(decision.action, now, decision.reason),
    )
    if decision.action is Action.SCALE_OUT:
        policy = pool.scaling_policy(decision.policy)
        length = (
            policy.scale_out_cooldown
            if policy is not None
            else max(p.scale_out_cooldown for p in pool.scaling_policies)
        )
        running = running_scale_out(memory, length, now)
        if running is not None:
            cooldown = ScaleOutCooldown(running.started, running.added + change)
        else:
            cooldown = ScaleOutCooldown(now, change)
        # AWS: a scale-out ends a running scale-in cooldown.
        return memory.evolve(scale_out_cooldown=cooldown, scale_in_cooldown_started=None)
    if decision.action is Action.SCALE_IN:
        return memory.evolve(scale_in_cooldown_started=now)
    return memory
