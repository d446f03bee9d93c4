"""Target tracking as AWS Application Auto Scaling does it (pure).

A target tracking policy keeps its metric near `targetValue`, assuming the metric falls as
capacity grows (a per-task figure such as `backlog_per_task`, or latency). With c the
count (at least 1, so a pool at 0 can leave it) and v the windowed metric:

- v > target: scale out to ceil(c * v / target), "proportionally to the metric, as fast as
  it can" (AWS);
- v < 0.9 * target: scale in to ceil(c * v / target); AWS "scales in more gradually", only
  once the metric is clearly below the target, so the count does not flap around it;
- otherwise, hold.

Cooldowns as AWS runs them: while a scale-out cooldown runs, the capacity it added counts
toward the next scale-out (c is the count the cooldown started from, and the policy only
adds what goes beyond the present count); a scale-in cooldown blocks scale-ins (the pool's
scale-in guards apply it, as for step policies). `disableScaleIn` never proposes a
scale-in.
"""

from __future__ import annotations

import math

from celery_scaler.core.config import ScalingPolicySpec, TargetTracking
from celery_scaler.core.cooldowns import running_scale_out
from celery_scaler.core.model import PoolMemory, Proposal


def tracked_capacity(capacity: int, value: float, target: float) -> int:
    """ceil(max(capacity, 1) * value / target), never below 0.

    Rounded to 9 places first: 0.3 * 10 / 0.1 is 30.000000000000004 in floating point,
    which must not become 31 tasks.
    """
    return max(0, math.ceil(round(max(capacity, 1) * value / target, 9)))


def tracking_proposal(
    policy: ScalingPolicySpec,
    tracking: TargetTracking,
    value: float,
    shown: str,
    memory: PoolMemory,
    current: int,
    now: float,
) -> Proposal:
    """What a target tracking policy asks for at the windowed `value` (`shown` says it)."""
    name, metric = policy.name, policy.metric.value
    target, below = tracking.target_value, tracking.scale_in_below
    if value > target:
        cooldown = running_scale_out(memory, tracking.scale_out_cooldown, now)
        added = cooldown.added if cooldown is not None else 0
        base = current - added
        proposed = tracked_capacity(base, value, target)
        notes = (f"{added} already added in cooldown",) if added else ()
        rule = f"ceil({max(base, 1)} * {value:g} / {target:g}) = {proposed}"
        # Only what goes beyond the present count: a scale-out never removes tasks.
        desired = max(current, proposed)
        return Proposal(name, metric, value, f"{shown} > target {target:g}", desired, rule, notes)
    if value < below:
        premise = f"{shown} < 0.9 * target {target:g}"
        if tracking.disable_scale_in:
            return Proposal(name, metric, value, f"{premise}, but disableScaleIn")
        proposed = tracked_capacity(current, value, target)
        rule = f"ceil({max(current, 1)} * {value:g} / {target:g}) = {proposed}"
        # A pool at 0 tasks reads c as 1: the ceiling may be 1, which is not a scale-in.
        return Proposal(name, metric, value, premise, min(current, proposed), rule)
    return Proposal(
        name, metric, value, f"{shown} is within {below:g} (0.9 * target) and target {target:g}"
    )
