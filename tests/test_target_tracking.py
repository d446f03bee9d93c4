"""Target tracking against AWS Application Auto Scaling's documented semantics.

Sources:

[UG-TT]    Application Auto Scaling User Guide, "How target tracking scaling for Application
           Auto Scaling works": scale out proportionally to the metric, scale in gradually
           https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html
[API-TTC]  Application Auto Scaling API Reference, TargetTrackingScalingPolicyConfiguration:
           ScaleOutCooldown and ScaleInCooldown (300 s for ECS services), DisableScaleIn
           https://docs.aws.amazon.com/autoscaling/application/APIReference/API_TargetTrackingScalingPolicyConfiguration.html
"""

from __future__ import annotations

from typing import Any

import pytest

from celery_scaler.core.config import TargetTracking, WorkerPoolSpec
from celery_scaler.core.model import (
    Action,
    Decision,
    Observation,
    PoolMemory,
    ScaleOutCooldown,
    ServiceObservation,
)
from celery_scaler.core.policy import after_scaling, plan_pass
from celery_scaler.core.target_tracking import tracked_capacity

T0 = 100_000.0
INTERVAL = 15.0


def tracking_pool(
    target: float = 30, *, min_capacity: int = 1, max_capacity: int = 20, **tracking: Any
) -> WorkerPoolSpec:
    return WorkerPoolSpec.model_validate(
        {
            "ecs": {"cluster": "prod", "service": "celery-worker"},
            "minCapacity": min_capacity,
            "maxCapacity": max_capacity,
            "metric": "queue_latency_seconds",
            "safeScaleIn": False,
            "targetTracking": {"targetValue": target, **tracking},
        }
    )


def at(current: int) -> Observation:
    service = ServiceObservation(desired=current, running=current, pending=0, deploying=False)
    return Observation(broker=None, workers=None, service=service)


def decide(
    pool: WorkerPoolSpec,
    value: float,
    current: int,
    memory: PoolMemory | None = None,
    now: float = T0,
) -> tuple[Decision, PoolMemory]:
    """One pass, as the controller runs it, its write assumed to succeed."""
    metrics = {"queue_latency_seconds": value}
    decision, memory, _, _ = plan_pass(
        pool, at(current), metrics, memory or PoolMemory(), now, interval=INTERVAL
    )
    return decision, after_scaling(pool, memory, decision, now)


@pytest.mark.parametrize(
    ("capacity", "value", "target", "expected"),
    [
        (2, 45, 30, 3),  # 1.5 times the target: 1.5 times the tasks
        (2, 31, 30, 3),  # any excess rounds up: 2.07 → 3
        (4, 10, 30, 2),  # a third of the target: 1.33 → 2
        (4, 0, 30, 0),  # nothing to do: 0 (minCapacity clamps it)
        (0, 45, 30, 2),  # a pool at 0 counts as 1, so it can leave 0
        (3, 10, 10, 3),  # exactly at the target
        (10, 0.3, 0.1, 30),  # 30.000000000000004 in floating point is still 30
    ],
)
def test_tracked_capacity_is_the_count_that_brings_the_metric_to_its_target(
    capacity: int, value: float, target: float, expected: int
) -> None:
    assert tracked_capacity(capacity, value, target) == expected


@pytest.mark.parametrize(
    ("value", "action", "desired"),
    [
        (60, Action.SCALE_OUT, 8),  # > target: ceil(4 x 60 / 30)
        (30.01, Action.SCALE_OUT, 5),  # just above: ceil(4.0013)
        (30, Action.HOLD, 4),  # at the target
        (27, Action.HOLD, 4),  # 0.9 x target is not yet "clearly below" it [UG-TT]
        (26.9, Action.HOLD, 4),  # below 27, but ceil(4 x 26.9 / 30) = ceil(3.59) = 4
        (15, Action.SCALE_IN, 2),  # ceil(4 x 15 / 30) = 2
        (0, Action.SCALE_IN, 1),  # 0 clamped to minCapacity
        (300, Action.SCALE_OUT, 20),  # 40 clamped to maxCapacity
    ],
)
def test_target_tracking_scales_proportionally_and_in_only_clearly_below_target(
    value: float, action: Action, desired: int
) -> None:
    decision, _ = decide(tracking_pool(), value, 4)
    assert (decision.action, decision.desired) == (action, desired), decision.reason
    assert decision.policy == "default"


def test_the_reason_shows_the_target_and_the_formula() -> None:
    out, _ = decide(tracking_pool(), 45, 2)
    assert out.reason == "queue_latency_seconds 45 > target 30 (ceil(2 * 45 / 30) = 3): 2 → 3"
    assert out.step == "ceil(2 * 45 / 30) = 3"
    inward, _ = decide(tracking_pool(), 10, 4)
    assert inward.reason == (
        "queue_latency_seconds 10 < 0.9 * target 30 (ceil(4 * 10 / 30) = 2): 4 → 2"
    )
    held, _ = decide(tracking_pool(), 28, 4)
    assert held.reason == (
        "queue_latency_seconds 28 is within 27 (0.9 * target) and target 30: holding at 4"
    )


def test_disable_scale_in_never_proposes_a_scale_in() -> None:
    # [API-TTC] DisableScaleIn: "the target tracking scaling policy won't remove capacity".
    pool = tracking_pool(disableScaleIn=True)
    decision, _ = decide(pool, 0, 6)
    assert (decision.action, decision.desired) == (Action.HOLD, 6)
    assert "disableScaleIn" in decision.reason
    decision, _ = decide(pool, 60, 6)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 12)


def test_default_cooldowns_are_awss_for_ecs() -> None:
    # [API-TTC]: 300 seconds for ECS services, both ways.
    tracking = TargetTracking(target_value=1)
    assert (tracking.scale_out_cooldown, tracking.scale_in_cooldown) == (300.0, 300.0)
    assert not tracking.disable_scale_in


def test_in_a_scale_out_cooldown_only_capacity_beyond_what_it_added() -> None:
    # [API-TTC] ScaleOutCooldown: "the capacity added by the initiating scale-out activity
    # is calculated as part of the desired capacity for the next scale-out activity".
    pool = tracking_pool(scaleOutCooldown="300s")
    first, memory = decide(pool, 60, 2)  # 2 → 4, a cooldown that added 2
    assert (first.current, first.desired) == (2, 4)
    assert memory.scale_out_cooldown == ScaleOutCooldown(T0, 2)

    # The new tasks have not yet shown in the metric: measured from the cooldown's base 2,
    # ceil(2 x 60 / 30) = 4 is what is there already.
    same, memory = decide(pool, 60, 4, memory, T0 + 60)
    assert (same.action, same.desired) == (Action.HOLD, 4)
    assert "2 already added in cooldown" in same.reason

    # A larger need adds only what goes beyond: ceil(2 x 90 / 30) = 6, so 2 more.
    more, memory = decide(pool, 90, 4, memory, T0 + 120)
    assert (more.action, more.desired) == (Action.SCALE_OUT, 6)
    assert memory.scale_out_cooldown == ScaleOutCooldown(T0, 4), "the same cooldown, 4 added"

    # Once the cooldown is over the count is measured as it is: ceil(6 x 60 / 30) = 12.
    after, _ = decide(pool, 60, 6, memory, T0 + 301)
    assert (after.action, after.desired) == (Action.SCALE_OUT, 12)


def test_no_scale_in_during_the_scale_in_cooldown_and_a_scale_out_ends_it() -> None:
    # [API-TTC] ScaleInCooldown: scale-ins are blocked until it expires; "if another alarm
    # triggers a scale-out activity during the scale-in cooldown period, Application Auto
    # Scaling scales out the target immediately ... the scale-in cooldown period stops".
    pool = tracking_pool(scaleInCooldown="120s", scaleOutCooldown="0s")
    first, memory = decide(pool, 10, 6)  # ceil(6 x 10 / 30) = 2
    assert (first.action, first.desired) == (Action.SCALE_IN, 2)

    blocked, memory = decide(pool, 5, 2, memory, T0 + 60)
    assert (blocked.action, blocked.desired) == (Action.HOLD, 2)
    assert "scale-in cooldown has 60s left" in blocked.reason

    out, memory = decide(pool, 60, 2, memory, T0 + 90)
    assert (out.action, out.desired) == (Action.SCALE_OUT, 4)
    assert memory.scale_in_cooldown_started is None

    inward, _ = decide(pool, 5, 4, memory, T0 + 100)
    assert (inward.action, inward.desired) == (Action.SCALE_IN, 1)
