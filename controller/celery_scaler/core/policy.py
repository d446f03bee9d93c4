"""Step scaling with exactly AWS Application Auto Scaling's semantics (pure).

No I/O, no clock, no logging: every function takes time as an argument and returns
values, so the controller, the report replay and the simulator share one decision.

The rules, from AWS's step scaling documentation:

- Step bounds are offsets from the policy's threshold. Above the threshold the lower
  bound is inclusive and the upper exclusive; below it the lower bound is exclusive
  and the upper inclusive. At the threshold itself the side is the policy's: a
  scale-out alarm (>=) is above, a scale-in alarm (<=) is below.
- PercentChangeInCapacity rounds as AWS does: > 1 down, 0..1 to 1, -1..0 to -1,
  < -1 up toward zero; then at least minAdjustmentMagnitude.
- While a scale-out cooldown runs, the capacity that cooldown already added counts
  toward the next scale-out (the adjustment is taken from the capacity the cooldown
  started at). No scale-in while a scale-in cooldown runs; a scale-out ends it.

Beyond AWS: a scale-out policy never lowers the count and a scale-in policy never raises
it (AWS would apply an ExactCapacity step either way); a count outside [minCapacity,
maxCapacity] is always brought back, whatever cooldown, rollout or failed read is running;
a policy acts only once its window holds a window's worth of samples; a count someone
else lowered no longer counts as added by a running scale-out cooldown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from enum import Enum

from celery_scaler.core.conditions import (
    Condition,
    note_conditions,
    observed_conditions,
    overdue_conditions,
)
from celery_scaler.core.config import (
    AdjustmentType,
    Statistic,
    StepAdjustment,
    StepPolicy,
    WorkerPoolSpec,
)
from celery_scaler.core.config import describe_interval as describe_interval
from celery_scaler.core.metrics import BROKER_ONLY_METRICS, busy_workers, unanswered_workers
from celery_scaler.core.model import (
    Action,
    Decision,
    LastAction,
    Observation,
    PendingWrite,
    PoolMemory,
    ScaleOutCooldown,
)
from celery_scaler.core.state import PAUSED, is_paused


class Direction(Enum):
    OUT = "out"
    IN = "in"


def record_sample(memory: PoolMemory, now: float, value: float, window: float) -> PoolMemory:
    """Add a metric sample and drop the ones that fell out of the window (0 keeps one)."""
    kept = tuple((t, v) for t, v in memory.samples if window > 0 and t >= now - window)
    return memory.evolve(samples=(*kept, (now, value)))


def window_shortfall(
    pool: WorkerPoolSpec, memory: PoolMemory, now: float, interval: float
) -> str | None:
    """Why the window does not hold enough samples yet for a policy to act, if it does not.

    Each sample stands for the `interval` up to the next pass, so the window holds enough
    once its oldest kept sample is at least `window - interval` old; a window of one
    interval or less (0 included) needs one sample. A new process, or one whose samples
    all aged out while its passes failed, starts short: a Minimum over one lone sample
    is not a Minimum over the window.
    """
    needed = pool.window - interval
    if not memory.samples or now - memory.samples[0][0] >= needed:
        return None
    count, held = len(memory.samples), now - memory.samples[0][0]
    return (
        f"{pool.metric.value}: samples cover {held:.0f}s of the {pool.window:g}s window so "
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


def match_step(policy: StepPolicy, value: float, direction: Direction) -> StepAdjustment | None:
    """The step whose interval holds `value`, with AWS's inclusivity rules."""
    offset = value - policy.threshold
    above = offset > 0 or (offset == 0 and direction is Direction.OUT)
    for step in policy.ordered_steps:
        inside = step.lower <= offset < step.upper if above else step.lower < offset <= step.upper
        if inside:
            return step
    return None


def percent_change(capacity: int, percent: int, min_magnitude: int | None) -> int:
    """A percentage of `capacity` as a whole change, rounded as AWS rounds it."""
    change = capacity * percent / 100
    if change > 1:
        whole = math.floor(change)
    elif change > 0:
        whole = 1
    elif change < -1:
        whole = math.ceil(change)
    elif change < 0:
        whole = -1
    else:
        whole = 0
    # The step's sign, not the rounded change's: a percentage of 0 tasks is 0, and a
    # pool scaled to zero must still be able to leave it when a magnitude is set.
    if min_magnitude is not None and percent != 0 and abs(whole) < min_magnitude:
        whole = min_magnitude if percent > 0 else -min_magnitude
    return whole


def adjusted_capacity(policy: StepPolicy, step: StepAdjustment, capacity: int) -> int:
    """The capacity a step asks for when applied to `capacity` (before clamping)."""
    adjustment = step.scaling_adjustment
    if policy.adjustment_type is AdjustmentType.EXACT_CAPACITY:
        return adjustment
    if policy.adjustment_type is AdjustmentType.PERCENT_CHANGE_IN_CAPACITY:
        return capacity + percent_change(capacity, adjustment, policy.min_adjustment_magnitude)
    return capacity + adjustment


def describe_step(
    policy: StepPolicy, step: StepAdjustment, direction: Direction = Direction.OUT
) -> str:
    """`step [0, 10) → +1`, bracketed as the bounds apply on the policy's side."""
    adjustment = step.scaling_adjustment
    if policy.adjustment_type is AdjustmentType.EXACT_CAPACITY:
        effect = f"={adjustment}"
    elif policy.adjustment_type is AdjustmentType.PERCENT_CHANGE_IN_CAPACITY:
        effect = f"{adjustment:+d}%"
    else:
        effect = f"{adjustment:+d}"
    interval = describe_interval(step, below_threshold=direction is Direction.IN)
    return f"step {interval} → {effect}"


def scale_out_cooldown_left(memory: PoolMemory, policy: StepPolicy, now: float) -> float:
    """Seconds the running scale-out cooldown has left (0 when none runs)."""
    cooldown = memory.scale_out_cooldown
    return 0.0 if cooldown is None else max(0.0, cooldown.started + policy.cooldown - now)


def scale_out_cooldown_active(memory: PoolMemory, policy: StepPolicy, now: float) -> bool:
    return scale_out_cooldown_left(memory, policy, now) > 0


def scale_in_cooldown_left(memory: PoolMemory, policy: StepPolicy, now: float) -> float:
    """Seconds the running scale-in cooldown has left (0 when none runs)."""
    started = memory.scale_in_cooldown_started
    return 0.0 if started is None else max(0.0, started + policy.cooldown - now)


def fallback_active(pool: WorkerPoolSpec, failures: int) -> bool:
    """Whether `failures` consecutive failed passes put the pool on its fallback capacity."""
    fallback = pool.fallback
    return fallback.capacity is not None and failures >= fallback.failure_threshold


def decide(
    pool: WorkerPoolSpec,
    obs: Observation,
    metrics: Mapping[str, float],
    memory: PoolMemory,
    now: float,
    *,
    interval: float,
) -> Decision:
    """The desired count for one pool: the step tables applied to the windowed metric.

    `memory` must already hold this pass's sample (see `record_sample`); `interval` is
    the time between passes. The steps, in order: pause and failed observation hold (or
    fall back); a window not yet full holds; the windowed value picks the breached policy
    and its step; the step proposes a capacity (cooldown, direction); the bounds clamp
    it; a scale-in is then held back by what makes it unsafe. Whatever the path, workers
    that do not answer raise WorkersUnreachable where they block scale-in.
    """
    decision = _decide(pool, obs, metrics, memory, now, interval)
    unreachable = workers_unreachable(pool, obs)
    if unreachable is None:
        return decision
    sentence = (
        f"{unreachable}, so no scale-in until they do: a task whose worker hangs, consumes "
        "none of the pool's queues or uses another control exchange blocks it for good"
    )
    conditions = {**decision.conditions, Condition.WORKERS_UNREACHABLE: sentence}
    return replace(decision, conditions=conditions)


def _decide(
    pool: WorkerPoolSpec,
    obs: Observation,
    metrics: Mapping[str, float],
    memory: PoolMemory,
    now: float,
    interval: float,
) -> Decision:
    metric = pool.metric.value
    service = obs.service
    current = service.desired if service is not None else 0

    if service is not None and is_paused(service.tags):
        return _hold(current, metric, f"paused by the tag {PAUSED}=true: holding at {current}")
    if obs.errors or service is None:
        return _without_data(pool, obs, memory, current)
    if metric not in metrics or not memory.samples:
        return _hold(current, metric, f"holding at {current}: {metric} could not be read this pass")
    short = window_shortfall(pool, memory, now, interval)
    if short is not None:
        return _bring_into_range(pool, current, metric, None, short)

    value, shown = _windowed_value(pool, memory)
    breached = _breached_policy(pool, value)
    if breached is None:
        return _bring_into_range(pool, current, metric, value, f"{shown} is within thresholds")
    policy, direction = breached
    comparison = "≥" if direction is Direction.OUT else "≤"
    premise = f"{shown} {comparison} {policy.threshold:g}"
    step = match_step(policy, value, direction)
    if step is None:
        return _bring_into_range(pool, current, metric, value, f"{premise} but no step matches")
    rule = describe_step(policy, step, direction)

    proposed, notes = _proposed_capacity(policy, step, direction, memory, current, now)
    desired = min(max(proposed, pool.min_capacity), pool.max_capacity)
    if desired != proposed:
        limit = "maxCapacity" if desired < proposed else "minCapacity"
        notes.append(f"{proposed} clamped to {limit} {desired}")
    if desired < current:
        desired = _guard_scale_in(pool, obs, memory, current, desired, now, notes)

    action = _action(current, desired)
    detail = f" ({'; '.join(notes)})" if notes else ""
    reason = f"{premise} ({rule}): {current} → {desired}{detail}"
    if action is Action.HOLD:
        reason = f"{premise} ({rule}): holding at {current}{detail}"
    return Decision(action, current, desired, metric, value, reason, step=rule)


def _hold(current: int, metric: str, reason: str) -> Decision:
    return Decision(Action.HOLD, current, current, metric, None, reason)


def _action(current: int, desired: int) -> Action:
    if desired > current:
        return Action.SCALE_OUT
    if desired < current:
        return Action.SCALE_IN
    return Action.HOLD


def _without_data(
    pool: WorkerPoolSpec, obs: Observation, memory: PoolMemory, current: int
) -> Decision:
    """A pass that could not observe: hold, or after enough failures raise to the fallback.

    A count outside [minCapacity, maxCapacity] is brought back all the same: the bounds
    need no metric, only the count, and that was read. Nothing else lowers the count.
    """
    metric = pool.metric.value
    problems = "; ".join(obs.errors) or "the ECS service was not read"
    failures = memory.consecutive_failures
    if obs.service is None:
        # Not "holding at 0": the count was never read, so there is nothing known to hold.
        return _hold(current, metric, f"count unknown, nothing changed: {problems}")
    desired = min(max(current, pool.min_capacity), pool.max_capacity)
    if desired != current:
        bound = "above maxCapacity" if desired < current else "below minCapacity"
        why = f"{current} is {bound}: {current} → {desired}"
    else:
        why = f"holding at {current}"
    capacity = pool.fallback.capacity
    if capacity is not None and fallback_active(pool, failures):
        # fallback.capacity lies within [minCapacity, maxCapacity] (the configuration
        # says so), so raising to it keeps the count there.
        if capacity > desired:
            desired = capacity
            why = f"desired is max(current {current}, fallback.capacity {capacity}) = {capacity}"
        else:
            why += f" (fallback.capacity {capacity} is not above it)"
        why = f"fallback after {failures} failed passes: {why}"
    return Decision(_action(current, desired), current, desired, metric, None, f"{why}: {problems}")


def _windowed_value(pool: WorkerPoolSpec, memory: PoolMemory) -> tuple[float, str]:
    """The window's statistic, and how to say it in a reason."""
    metric = pool.metric.value
    value = aggregate(memory.samples, pool.statistic)
    if pool.window > 0 and len(memory.samples) > 1:
        statistic = pool.statistic.value.lower()
        return value, f"{metric} {statistic} {value:g} over {len(memory.samples)} samples"
    return value, f"{metric} {value:g}"


def _breached_policy(pool: WorkerPoolSpec, value: float) -> tuple[StepPolicy, Direction] | None:
    """The policy whose alarm `value` breaches; scale-out wins when both do."""
    if pool.scale_out is not None and value >= pool.scale_out.threshold:
        return pool.scale_out, Direction.OUT
    if pool.scale_in is not None and value <= pool.scale_in.threshold:
        return pool.scale_in, Direction.IN
    return None


def _proposed_capacity(
    policy: StepPolicy,
    step: StepAdjustment,
    direction: Direction,
    memory: PoolMemory,
    current: int,
    now: float,
) -> tuple[int, list[str]]:
    """The capacity the step asks for, before the bounds, and notes for the reason."""
    notes: list[str] = []
    if direction is Direction.OUT and scale_out_cooldown_active(memory, policy, now):
        # AWS: what this cooldown already added counts toward the new step.
        assert memory.scale_out_cooldown is not None
        added = memory.scale_out_cooldown.added
        proposed = max(current, adjusted_capacity(policy, step, current - added))
        if added:
            notes.append(f"{added} already added in cooldown")
    else:
        proposed = adjusted_capacity(policy, step, current)
    # Each policy keeps to its direction (an ExactCapacity step can point the other way):
    # a scale-out below the count would remove tasks past every scale-in guard. Only
    # [minCapacity, maxCapacity] may override.
    if direction is Direction.OUT and proposed < current:
        notes.append(f"{proposed} is below {current}; a scale-out policy never removes tasks")
        proposed = current
    elif direction is Direction.IN and proposed > current:
        notes.append(f"{proposed} is above {current}; a scale-in policy never adds tasks")
        proposed = current
    return proposed, notes


def _guard_scale_in(
    pool: WorkerPoolSpec,
    obs: Observation,
    memory: PoolMemory,
    current: int,
    desired: int,
    now: float,
    notes: list[str],
) -> int:
    """`desired` raised back as far as an unsafe scale-in must wait; appends why to `notes`."""
    # A count above maxCapacity comes down whatever else holds (as in _bring_into_range);
    # only the policy's own reduction waits.
    ceiling = min(current, pool.max_capacity)
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
    if pool.scale_in is not None:
        left = scale_in_cooldown_left(memory, pool.scale_in, now)
        if left > 0:
            return f"scale-in cooldown has {left:.0f}s left"
    return None


def workers_unreachable(pool: WorkerPoolSpec, obs: Observation) -> str | None:
    """Why scale-in waits for workers that did not answer inspect, where it must wait.

    A running task whose worker did not answer may be busy, and its work is missing from
    a metric read through inspect and from the safeScaleIn floor: never scale in on
    missing data. A pool that scales on a broker-only metric without safeScaleIn reads
    neither, so for it AWS's step semantics hold exactly and nothing waits.
    """
    if pool.metric in BROKER_ONLY_METRICS and not pool.safe_scale_in:
        return None
    missing = unanswered_workers(obs)
    if not missing or obs.service is None:
        return None
    running = obs.service.running
    return f"only {running - missing} of {running} running workers answered inspect"


def _bring_into_range(
    pool: WorkerPoolSpec, current: int, metric: str, value: float | None, premise: str
) -> Decision:
    """No policy acts; only a count outside [min, max] is corrected."""
    desired = min(max(current, pool.min_capacity), pool.max_capacity)
    if desired > current:
        return Decision(
            Action.SCALE_OUT,
            current,
            desired,
            metric,
            value,
            f"{premise}; {current} is below minCapacity: {current} → {desired}",
        )
    if desired < current:
        return Decision(
            Action.SCALE_IN,
            current,
            desired,
            metric,
            value,
            f"{premise}; {current} is above maxCapacity: {current} → {desired}",
        )
    return Decision(
        Action.HOLD, current, current, metric, value, f"{premise}: holding at {current}"
    )


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
    """
    value = metrics.get(pool.metric.value)
    errors = obs.errors
    if value is None and not errors and obs.service is not None:
        errors = (f"{pool.metric.value} could not be read this pass",)
        obs = replace(obs, errors=errors)
    memory = settle_pending(pool, memory, obs)
    memory, events = note_pass(memory, obs, now)
    if value is not None and not errors:
        memory = record_sample(memory, now, value, pool.window)
    decision = decide(pool, obs, metrics, memory, now, interval=interval)
    holding: dict[str, str] = {**observed_conditions(obs), **decision.conditions}
    memory, condition_events = note_conditions(memory, holding, now)
    warnings = overdue_conditions(memory, holding, now)
    if warnings:
        decision = replace(decision, warnings=decision.warnings + warnings)
    return decision, memory, events + condition_events, errors


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
    decision = Decision(
        pending.action, pending.current, pending.desired, pool.metric.value, None, reason
    )
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
    memory = memory.evolve(consecutive_failures=failures)
    if obs.service is None:
        return memory, ()
    desired, last = obs.service.desired, memory.last_desired
    if last is None or desired == last:
        return memory.evolve(last_desired=desired), ()
    event = (
        f"desiredCount changed outside the controller: {last} → {desired}; "
        "taken as current, scale-in cooldown started"
    )
    memory = memory.evolve(last_desired=desired, scale_in_cooldown_started=now)
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
    """The memory once `decision` has been applied: cooldowns start or accumulate."""
    if decision.action is Action.HOLD:
        return memory
    change = decision.desired - decision.current
    memory = memory.evolve(
        last_desired=decision.desired,
        last_action=LastAction(decision.action, now, decision.reason),
    )
    if decision.action is Action.SCALE_OUT:
        policy = pool.scale_out
        if policy is not None and scale_out_cooldown_active(memory, policy, now):
            assert memory.scale_out_cooldown is not None
            cooldown = ScaleOutCooldown(
                memory.scale_out_cooldown.started, memory.scale_out_cooldown.added + change
            )
        else:
            cooldown = ScaleOutCooldown(now, change)
        # AWS: a scale-out ends a running scale-in cooldown.
        return memory.evolve(scale_out_cooldown=cooldown, scale_in_cooldown_started=None)
    if decision.action is Action.SCALE_IN:
        return memory.evolve(scale_in_cooldown_started=now)
    return memory
