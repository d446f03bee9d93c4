"""Cooldowns as AWS Application Auto Scaling runs them (pure).

A pool keeps one scale-out cooldown (when it started, and the capacity it added since)
and one scale-in cooldown start, on its service's tags (core/state.py). Each scaling
policy measures them with its own length: `scaleOut.cooldown` / `scaleIn.cooldown` of a
step policy, `scaleOutCooldown` / `scaleInCooldown` of a target tracking one. AWS does not
say whether one policy's scaling starts another's cooldown; the controller takes the
pool's last scaling as every policy's, so capacity just added counts for each policy
until its own cooldown ends (docs/semantics.md#cooldowns).
"""

from __future__ import annotations

from celery_scaler.core.model import PoolMemory, ScaleOutCooldown


def scale_out_cooldown_left(memory: PoolMemory, length: float, now: float) -> float:
    """Seconds a scale-out cooldown of `length` has left (0 when none runs)."""
    cooldown = memory.scale_out_cooldown
    return 0.0 if cooldown is None else max(0.0, cooldown.started + length - now)


def scale_in_cooldown_left(memory: PoolMemory, length: float, now: float) -> float:
    """Seconds a scale-in cooldown of `length` has left (0 when none runs)."""
    started = memory.scale_in_cooldown_started
    return 0.0 if started is None else max(0.0, started + length - now)


def running_scale_out(memory: PoolMemory, length: float, now: float) -> ScaleOutCooldown | None:
    """The pool's scale-out cooldown, if it still runs by a policy's `length`.

    AWS: while it runs, the capacity it added counts toward the next scale-out, which is
    measured from the count the cooldown started at.
    """
    if scale_out_cooldown_left(memory, length, now) <= 0:
        return None
    return memory.scale_out_cooldown
