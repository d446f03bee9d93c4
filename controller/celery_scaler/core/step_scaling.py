"""Step scaling with exactly AWS Application Auto Scaling's semantics (pure).

The rules, from AWS's step scaling documentation:

- Step bounds are offsets from the policy's threshold. Above the threshold the lower
  bound is inclusive and the upper exclusive; below it the lower bound is exclusive
  and the upper inclusive. At the threshold itself the side is the policy's: a
  scale-out alarm (>=) is above, a scale-in alarm (<=) is below.
- PercentChangeInCapacity rounds as AWS does: > 1 down, 0..1 to 1, -1..0 to -1,
  < -1 up toward zero; then at least minAdjustmentMagnitude.
- While a scale-out cooldown runs, the capacity that cooldown already added counts
  toward the next scale-out (the adjustment is taken from the capacity the cooldown
  started at).

Beyond AWS: a scale-out table never lowers the count and a scale-in table never raises it
(AWS would apply an ExactCapacity step either way).
"""

from __future__ import annotations

import math
from enum import Enum

from celery_scaler.core.config import (
    AdjustmentType,
    ScalingPolicySpec,
    StepAdjustment,
    StepPolicy,
    describe_interval,
)
from celery_scaler.core.cooldowns import running_scale_out
from celery_scaler.core.model import PoolMemory, Proposal


class Direction(Enum):
    OUT = "out"
    IN = "in"


def step_proposal(
    policy: ScalingPolicySpec,
    value: float,
    shown: str,
    memory: PoolMemory,
    current: int,
    now: float,
) -> Proposal:
    """What a step policy asks for at the windowed `value` (`shown` says it in a reason)."""
    name, metric = policy.name, policy.metric.value
    breached = _breached_table(policy, value)
    if breached is None:
        return Proposal(name, metric, value, f"{shown} is within thresholds")
    table, direction = breached
    comparison = "≥" if direction is Direction.OUT else "≤"
    premise = f"{shown} {comparison} {table.threshold:g}"
    step = match_step(table, value, direction)
    if step is None:
        return Proposal(name, metric, value, f"{premise} but no step matches")
    desired, notes = _proposed_capacity(policy, table, step, direction, memory, current, now)
    rule = describe_step(table, step, direction)
    return Proposal(name, metric, value, premise, desired, rule, notes)


def _breached_table(policy: ScalingPolicySpec, value: float) -> tuple[StepPolicy, Direction] | None:
    """The table whose alarm `value` breaches (the configuration keeps them apart)."""
    if policy.scale_out is not None and value >= policy.scale_out.threshold:
        return policy.scale_out, Direction.OUT
    if policy.scale_in is not None and value <= policy.scale_in.threshold:
        return policy.scale_in, Direction.IN
    return None


def _proposed_capacity(
    policy: ScalingPolicySpec,
    table: StepPolicy,
    step: StepAdjustment,
    direction: Direction,
    memory: PoolMemory,
    current: int,
    now: float,
) -> tuple[int, tuple[str, ...]]:
    """The capacity the step asks for, before the bounds, and notes for the reason."""
    notes: list[str] = []
    cooldown = running_scale_out(memory, policy.scale_out_cooldown, now)
    if direction is Direction.OUT and cooldown is not None:
        # AWS: what the running cooldown already added counts toward the new step.
        proposed = max(current, adjusted_capacity(table, step, current - cooldown.added))
        if cooldown.added:
            notes.append(f"{cooldown.added} already added in cooldown")
    else:
        proposed = adjusted_capacity(table, step, current)
    # Each table keeps to its direction (an ExactCapacity step can point the other way):
    # a scale-out below the count would remove tasks past every scale-in guard. Only
    # [minCapacity, maxCapacity] may override.
    if direction is Direction.OUT and proposed < current:
        notes.append(f"{proposed} is below {current}; a scale-out policy never removes tasks")
        proposed = current
    elif direction is Direction.IN and proposed > current:
        notes.append(f"{proposed} is above {current}; a scale-in policy never adds tasks")
        proposed = current
    return proposed, tuple(notes)


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
