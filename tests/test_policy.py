"""The pure step-scaling policy against AWS Application Auto Scaling's documented semantics.

Sources the worked examples come from (cited beside each test as [tag]):

[API-SA]   Application Auto Scaling API Reference, StepAdjustment
           https://docs.aws.amazon.com/autoscaling/application/APIReference/API_StepAdjustment.html
[API-SSPC] Application Auto Scaling API Reference, StepScalingPolicyConfiguration
           (Cooldown, MinAdjustmentMagnitude)
           https://docs.aws.amazon.com/autoscaling/application/APIReference/API_StepScalingPolicyConfiguration.html
[UG-STEP]  Application Auto Scaling User Guide, "How step scaling for Application Auto
           Scaling works", Step adjustments (capacity 10, thresholds 50, PercentChangeInCapacity)
           https://docs.aws.amazon.com/autoscaling/application/userguide/step-scaling-policy-overview.html
[EC2-ADJ]  Amazon EC2 Auto Scaling User Guide, Scaling adjustment types (the rounding examples,
           which Application Auto Scaling shares)
           https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_scaler.core.conditions import Condition
from celery_scaler.core.config import AdjustmentType, Statistic, StepPolicy, WorkerPoolSpec
from celery_scaler.core.model import (
    Action,
    Decision,
    LastAction,
    Observation,
    PendingWrite,
    PoolMemory,
    ScaleOutCooldown,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.core.policy import (
    after_scaling,
    aggregate,
    decide,
    plan_pass,
    record_sample,
)
from celery_scaler.core.step_scaling import (
    Direction,
    adjusted_capacity,
    match_step,
    percent_change,
)

T0 = 100_000.0
INTERVAL = 15.0
"""The controller's default interval: the time between the passes these tests run."""

# --------------------------------------------------------------------------- helpers


def step(lower: float | None, upper: float | None, adjustment: int) -> dict[str, Any]:
    row: dict[str, Any] = {"scalingAdjustment": adjustment}
    if lower is not None:
        row["metricIntervalLowerBound"] = lower
    if upper is not None:
        row["metricIntervalUpperBound"] = upper
    return row


def policy(
    threshold: float,
    *steps: dict[str, Any],
    adjustment: str = "ChangeInCapacity",
    cooldown: float = 0,
    magnitude: int | None = None,
) -> dict[str, Any]:
    return {
        "threshold": threshold,
        "adjustmentType": adjustment,
        "cooldown": cooldown,
        "minAdjustmentMagnitude": magnitude,
        "steps": list(steps),
    }


# DESIGN.md's example pool: scale out above a backlog of 10, in at or below 2.
DESIGN_OUT = policy(10, step(0, 10, 1), step(10, None, 2), cooldown=60)
DESIGN_IN = policy(2, step(None, 0, -1), cooldown=300)

# [UG-STEP]: one alarm above 50 and one below 50, both PercentChangeInCapacity.
AWS_OUT = policy(
    50, step(0, 10, 0), step(10, 20, 10), step(20, None, 30), adjustment="PercentChangeInCapacity"
)
AWS_IN = policy(
    50,
    step(-10, 0, 0),
    step(-20, -10, -10),
    step(None, -20, -30),
    adjustment="PercentChangeInCapacity",
)

_UNSET: Any = object()


def make_pool(
    *,
    scale_out: dict[str, Any] | None = _UNSET,
    scale_in: dict[str, Any] | None = _UNSET,
    min_capacity: int = 1,
    max_capacity: int = 20,
    **extra: Any,
) -> WorkerPoolSpec:
    doc: dict[str, Any] = {
        "ecs": {"cluster": "prod", "service": "celery-worker"},
        "minCapacity": min_capacity,
        "maxCapacity": max_capacity,
        "scaleOut": DESIGN_OUT if scale_out is _UNSET else scale_out,
        "scaleIn": DESIGN_IN if scale_in is _UNSET else scale_in,
        **extra,
    }
    return WorkerPoolSpec.model_validate(doc)


def step_policy(doc: dict[str, Any]) -> StepPolicy:
    return StepPolicy.model_validate(doc)


def workers(*active: int) -> tuple[WorkerSnapshot, ...]:
    """One worker per entry, with that many active tasks."""
    return tuple(
        WorkerSnapshot(
            name=f"celery@w{index}",
            queues=frozenset({"celery"}),
            active=count,
            reserved=0,
            scheduled=0,
            revoked=0,
            concurrency=4,
        )
        for index, count in enumerate(active)
    )


def observation(
    desired: int,
    *,
    worker_list: tuple[WorkerSnapshot, ...] | None = None,
    deploying: bool = False,
    errors: tuple[str, ...] = (),
    running: int | None = None,
) -> Observation:
    """By default every running task's worker answered inspect."""
    if running is None:
        running = desired if worker_list is None else len(worker_list)
    return Observation(
        broker=None,
        workers=worker_list,
        service=ServiceObservation(
            desired=desired, running=running, pending=0, deploying=deploying
        ),
        errors=errors,
    )


def decide_at(
    pool: WorkerPoolSpec,
    value: float,
    current: int,
    *,
    memory: PoolMemory | None = None,
    now: float = T0,
    **obs: Any,
) -> Decision:
    """One pass as the reconcile loop runs it: record the sample, then decide."""
    memory = record_sample(memory or PoolMemory(), now, value, pool.window)
    metrics = {pool.metric.value: value}
    return decide(pool, observation(current, **obs), metrics, memory, now, interval=INTERVAL)


def run(pool: WorkerPoolSpec, passes: list[tuple[float, float]], current: int) -> list[Decision]:
    """Consecutive passes `(time, value)`, applying every decision as the loop would."""
    memory = PoolMemory()
    decisions = []
    for now, value in passes:
        memory = record_sample(memory, now, value, pool.window)
        metrics = {pool.metric.value: value}
        decision = decide(pool, observation(current), metrics, memory, now, interval=INTERVAL)
        if decision.action is not Action.HOLD:
            memory = after_scaling(pool, memory, decision, now)
        current = decision.desired
        decisions.append(decision)
    return decisions


# --------------------------------------------------------------------------- match_step


@pytest.mark.parametrize(
    ("table", "value", "direction", "expected"),
    [
        # [API-SA]: threshold 50, "greater than or equal to 50 and less than 60" is [0, 10).
        (AWS_OUT, 50, Direction.OUT, 0),  # value == threshold, scale-out: lower inclusive
        (AWS_OUT, 59.999, Direction.OUT, 0),
        (AWS_OUT, 60, Direction.OUT, 10),  # upper exclusive above the threshold
        (AWS_OUT, 69.999, Direction.OUT, 10),
        (AWS_OUT, 70, Direction.OUT, 30),
        (AWS_OUT, 1e9, Direction.OUT, 30),  # missing upper bound is +infinity
        # [API-SA]: "greater than 40 and less than or equal to 50" is (-10, 0].
        (AWS_IN, 50, Direction.IN, 0),  # value == threshold, scale-in: upper inclusive
        (AWS_IN, 40.001, Direction.IN, 0),
        (AWS_IN, 40, Direction.IN, -10),  # lower exclusive below the threshold
        (AWS_IN, 30.001, Direction.IN, -10),
        (AWS_IN, 30, Direction.IN, -30),
        (AWS_IN, -1e9, Direction.IN, -30),  # missing lower bound is -infinity
    ],
)
def test_match_step_bounds(
    table: dict[str, Any], value: float, direction: Direction, expected: int
) -> None:
    matched = match_step(step_policy(table), value, direction)
    assert matched is not None
    assert matched.scaling_adjustment == expected


def test_match_step_at_the_threshold_takes_the_policys_side() -> None:
    # One table with a step ending at 0 and one starting at 0: at the threshold itself a
    # scale-out alarm (>=) reads it as above, a scale-in alarm (<=) as below.
    table = step_policy(policy(50, step(None, 0, -1), step(0, None, 1)))
    out, in_ = match_step(table, 50, Direction.OUT), match_step(table, 50, Direction.IN)
    assert out is not None
    assert out.scaling_adjustment == 1
    assert in_ is not None
    assert in_.scaling_adjustment == -1


def test_match_step_none_when_no_step_covers_the_value() -> None:
    # A table may start above the threshold (AWS allows positive lower bounds).
    table = step_policy(policy(10, step(5, None, 1)))
    assert match_step(table, 12, Direction.OUT) is None
    matched = match_step(table, 15, Direction.OUT)
    assert matched is not None
    assert matched.scaling_adjustment == 1


# --------------------------------------------------------------------------- adjustments


@pytest.mark.parametrize(
    ("capacity", "percent", "magnitude", "expected"),
    [
        (127, 10, None, 12),  # [EC2-ADJ] 12.7 is rounded to 12 (> 1: down)
        (67, 1, None, 1),  # [EC2-ADJ] .67 is rounded to 1 (0..1: 1)
        (58, -1, None, -1),  # [EC2-ADJ] -.58 is rounded to -1 (-1..0: -1)
        (667, -1, None, -6),  # [EC2-ADJ] -6.67 is rounded to -6 (< -1: up, toward zero)
        (10, 10, None, 1),  # [EC2-ADJ] 10 percent of 10 instances adds 1
        (10, -10, None, -1),  # exactly -1
        (11, 30, None, 3),  # [UG-STEP] 30 percent of 11, 3.3, rounded down to 3
        (14, -10, None, -1),  # [UG-STEP] 10 percent of 14, 1.4, rounded down to 1
        (13, -30, None, -3),  # [UG-STEP] 30 percent of 13, 3.9, rounded down to 3
        (4, 25, 2, 2),  # [API-SSPC] 25 percent of 4 is 1, MinAdjustmentMagnitude 2 → 2
        (4, -25, 2, -2),  # the magnitude applies to removals too
        (100, 25, 2, 25),  # a magnitude never shrinks a larger change
        (10, 0, None, 0),  # a 0% step changes nothing ...
        (10, 0, 2, 0),  # ... even with a magnitude
        (0, 50, None, 0),  # a percentage of nothing is nothing
        (0, 50, 2, 2),  # but a magnitude lets a pool at 0 leave it
    ],
)
def test_percent_change_rounds_as_aws(
    capacity: int, percent: int, magnitude: int | None, expected: int
) -> None:
    assert percent_change(capacity, percent, magnitude) == expected


@pytest.mark.parametrize(
    ("adjustment", "scaling", "capacity", "expected"),
    [
        ("ChangeInCapacity", 5, 3, 8),  # [EC2-ADJ] 3 instances, adjustment 5 → 8
        ("ChangeInCapacity", -2, 5, 3),
        ("ExactCapacity", 5, 3, 5),  # [EC2-ADJ] 3 instances, exact 5 → 5
        ("ExactCapacity", 5, 9, 5),
        ("PercentChangeInCapacity", 10, 10, 11),  # [EC2-ADJ] 10 percent of 10 → 11
        ("PercentChangeInCapacity", -50, 9, 5),  # -4.5 → -4
    ],
)
def test_adjusted_capacity_for_each_adjustment_type(
    adjustment: str, scaling: int, capacity: int, expected: int
) -> None:
    table = step_policy(policy(1, step(0, None, scaling), adjustment=adjustment))
    assert adjusted_capacity(table, table.steps[0], capacity) == expected


# --------------------------------------------------------------------------- AWS worked examples


@pytest.mark.parametrize("value", [40.001, 45, 50, 55, 59.999])
def test_aws_example_capacity_kept_between_40_and_60(value: float) -> None:
    # [UG-STEP] "The original capacity is maintained while the aggregated metric value is
    # greater than 40 and less than 60." At exactly 50 both alarms breach: scale-out wins,
    # and its 0% step holds.
    pool = make_pool(scale_out=AWS_OUT, scale_in=AWS_IN, max_capacity=100)
    decision = decide_at(pool, value, 10)
    assert decision.action is Action.HOLD
    assert decision.desired == 10


def test_aws_example_capacity_10_threshold_50() -> None:
    # [UG-STEP] Capacity 10. Metric 60 → +10% of 10 = 1 → 11. Metric 70 → +30% of 11 = 3.3,
    # rounded down to 3 → 14. Metric 40 → -10% of 14 = 1.4 → 1 → 13. Metric 30 → -30% of 13
    # = 3.9 → 3 → 10. The example assumes no cooldown stands in the way (see the next test).
    pool = make_pool(scale_out=AWS_OUT, scale_in=AWS_IN, max_capacity=100)
    decisions = run(pool, [(T0, 60), (T0 + 60, 70), (T0 + 120, 40), (T0 + 180, 30)], current=10)
    assert [(d.current, d.desired) for d in decisions] == [(10, 11), (11, 14), (14, 13), (13, 10)]
    assert [d.action for d in decisions] == [
        Action.SCALE_OUT,
        Action.SCALE_OUT,
        Action.SCALE_IN,
        Action.SCALE_IN,
    ]


def test_aws_example_within_cooldowns() -> None:
    # The same passes with ECS's default cooldown of 300s [API-SSPC]: at 70 the 1 task added
    # in the running cooldown counts, so 30% is taken of the cooldown's base 10 (3) → 13,
    # not 14; the scale-in at 30 waits for the scale-in cooldown started at 40.
    out = {**AWS_OUT, "cooldown": 300}
    in_ = {**AWS_IN, "cooldown": 300}
    pool = make_pool(scale_out=out, scale_in=in_, max_capacity=100)
    decisions = run(pool, [(T0, 60), (T0 + 60, 70), (T0 + 120, 40), (T0 + 180, 30)], current=10)
    assert [(d.current, d.desired) for d in decisions] == [(10, 11), (11, 13), (13, 12), (12, 12)]
    assert "1 already added in cooldown" in decisions[1].reason
    assert "scale-in cooldown has 240s left" in decisions[3].reason


def test_aws_min_adjustment_magnitude_example() -> None:
    # [API-SSPC] Scale out an ECS service by 25 percent with MinAdjustmentMagnitude 2: with 4
    # tasks 25 percent is 1, but the service scales out by 2 tasks.
    out = policy(5, step(0, None, 25), adjustment="PercentChangeInCapacity", magnitude=2)
    decision = decide_at(make_pool(scale_out=out, scale_in=None), 6, 4)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 6)


def test_aws_cooldown_example_plus_2_then_plus_3_adds_1() -> None:
    # [API-SSPC] "an alarm triggers a step scaling policy to scale out an Amazon ECS service by
    # 2 tasks ... a cooldown period of 5 minutes starts. During the cooldown period, if the
    # alarm triggers the same policy again but at a more aggressive step adjustment to scale
    # out the service by 3 tasks, the 2 tasks that were added ... only 1 additional task".
    out = policy(10, step(0, 10, 2), step(10, None, 3), cooldown=300)
    pool = make_pool(scale_out=out, scale_in=None)
    first, second, third, after = run(
        pool, [(T0, 15), (T0 + 60, 25), (T0 + 120, 25), (T0 + 300, 25)], current=4
    )
    assert (first.current, first.desired) == (4, 6)
    assert (second.current, second.desired) == (6, 7)  # base 4 + 3, so only 1 more
    assert "2 already added in cooldown" in second.reason
    assert (third.action, third.desired) == (Action.HOLD, 7)  # 3 of 3 already added
    assert (after.current, after.desired) == (7, 10)  # cooldown over: a fresh +3


def test_smaller_step_inside_scale_out_cooldown_adds_nothing() -> None:
    # AWS: the policy "won't increase the desired capacity again unless either a larger scale
    # out is triggered or the cooldown period ends" [API-SSPC].
    out = policy(10, step(0, 10, 1), step(10, None, 3), cooldown=300)
    pool = make_pool(scale_out=out, scale_in=None)
    first, second = run(pool, [(T0, 25), (T0 + 30, 15)], current=4)
    assert first.desired == 7
    assert (second.action, second.desired) == (Action.HOLD, 7)


def test_percent_step_inside_cooldown_is_taken_from_the_cooldowns_base() -> None:
    out = policy(10, step(0, 10, 50), step(10, None, 100), adjustment="PercentChangeInCapacity")
    pool = make_pool(scale_out={**out, "cooldown": 300}, scale_in=None, max_capacity=100)
    first, second = run(pool, [(T0, 15), (T0 + 30, 25)], current=10)
    assert first.desired == 15  # +50% of 10
    assert second.desired == 20  # +100% of the base 10, not of 15


# --------------------------------------------------------------------------- the three types


@pytest.mark.parametrize(
    ("scale_out", "value", "current", "expected"),
    [
        (policy(10, step(0, None, 3)), 12, 4, 7),
        (policy(10, step(0, None, 12), adjustment="ExactCapacity"), 12, 4, 12),
        (policy(10, step(0, None, 50), adjustment="PercentChangeInCapacity"), 12, 4, 6),
    ],
)
def test_decide_applies_each_adjustment_type(
    scale_out: dict[str, Any], value: float, current: int, expected: int
) -> None:
    decision = decide_at(make_pool(scale_out=scale_out, scale_in=None), value, current)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, expected)


def test_scale_in_with_percent_rounds_toward_zero() -> None:
    in_ = policy(2, step(None, 0, -30), adjustment="PercentChangeInCapacity")
    decision = decide_at(make_pool(scale_in=in_), 1, 13, worker_list=workers())
    assert decision.desired == 10  # -3.9 → -3


def test_exact_capacity_scale_out_below_current_holds() -> None:
    # AWS would set the count to 5. Here a scale-out never removes tasks: that would bypass
    # every scale-in guard (cooldown, rollout, safeScaleIn), and inside a scale-out cooldown
    # the same step already holds.
    out = policy(10, step(0, None, 5), adjustment="ExactCapacity")
    decision = decide_at(make_pool(scale_out=out), 12, 9, worker_list=workers(1) * 9)
    assert (decision.action, decision.desired) == (Action.HOLD, 9)
    assert "5 is below 9; a scale-out policy never removes tasks" in decision.reason


def test_exact_capacity_scale_in_above_current_holds() -> None:
    in_ = policy(2, step(None, 0, 6), adjustment="ExactCapacity")
    decision = decide_at(make_pool(scale_in=in_), 1, 4, worker_list=workers())
    assert (decision.action, decision.desired) == (Action.HOLD, 4)
    assert "6 is above 4; a scale-in policy never adds tasks" in decision.reason


def test_exact_capacity_scale_in_below_min_still_raises_to_min() -> None:
    in_ = policy(2, step(None, 0, 0), adjustment="ExactCapacity")
    decision = decide_at(make_pool(scale_in=in_, min_capacity=3), 1, 2, worker_list=workers())
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 3)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("value", "action", "desired"),
    [
        (10, Action.SCALE_OUT, 5),  # value == scale-out threshold breaches (>=)
        (9.999, Action.HOLD, 4),  # just below it does not
        (19.999, Action.SCALE_OUT, 5),  # [0, 10) above the threshold: upper exclusive
        (20, Action.SCALE_OUT, 6),  # [10, +inf): lower inclusive
        (2, Action.SCALE_IN, 3),  # value == scale-in threshold breaches (<=)
        (2.001, Action.HOLD, 4),
        (0, Action.SCALE_IN, 3),
    ],
)
def test_breach_and_bounds_through_decide(value: float, action: Action, desired: int) -> None:
    decision = decide_at(make_pool(), value, 4, worker_list=workers())
    assert (decision.action, decision.desired) == (action, desired)


def test_scale_out_breached_without_a_matching_step_holds() -> None:
    pool = make_pool(scale_out=policy(10, step(5, None, 1)), scale_in=None)
    decision = decide_at(pool, 12, 4)
    assert decision.action is Action.HOLD
    assert "no step matches" in decision.reason


# --------------------------------------------------------------------------- clamping


def test_scale_out_clamped_to_max_capacity() -> None:
    decision = decide_at(make_pool(max_capacity=5), 25, 4)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 5)
    assert "6 clamped to maxCapacity 5" in decision.reason


def test_scale_in_clamped_to_min_capacity() -> None:
    in_ = policy(2, step(None, 0, -5))
    decision = decide_at(make_pool(scale_in=in_, min_capacity=2), 0, 4, worker_list=workers())
    assert (decision.action, decision.desired) == (Action.SCALE_IN, 2)
    assert "-1 clamped to minCapacity 2" in decision.reason


def test_exact_capacity_clamped_to_max() -> None:
    out = policy(10, step(0, None, 50), adjustment="ExactCapacity")
    decision = decide_at(make_pool(scale_out=out, max_capacity=20), 12, 4)
    assert decision.desired == 20


def test_at_max_a_scale_out_holds() -> None:
    decision = decide_at(make_pool(max_capacity=4), 25, 4)
    assert (decision.action, decision.desired) == (Action.HOLD, 4)
    assert "holding at 4" in decision.reason


# --------------------------------------------------------------------------- outside [min, max]


@pytest.mark.parametrize(
    ("current", "action", "desired", "words"),
    [
        (0, Action.SCALE_OUT, 1, "0 is below minCapacity: 0 → 1"),
        (25, Action.SCALE_IN, 20, "25 is above maxCapacity: 25 → 20"),
    ],
)
def test_current_outside_range_is_brought_back(
    current: int, action: Action, desired: int, words: str
) -> None:
    decision = decide_at(make_pool(), 5, current)  # 5 breaches neither policy
    assert (decision.action, decision.desired) == (action, desired)
    assert words in decision.reason


def test_current_below_min_with_scale_in_breached_goes_to_min() -> None:
    decision = decide_at(make_pool(min_capacity=3), 0, 1, worker_list=workers())
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 3)


@pytest.mark.parametrize("why", ["cooldown", "deploying"])
def test_current_above_max_comes_down_even_when_scale_in_waits(why: str) -> None:
    # A lowered maxCapacity is not the policy's scale-in: neither the scale-in cooldown nor a
    # rollout keeps the count above it (the same as when no policy breaches).
    memory = PoolMemory(scale_in_cooldown_started=T0 - 10) if why == "cooldown" else None
    decision = decide_at(
        make_pool(max_capacity=20),
        0,
        25,
        memory=memory,
        deploying=why == "deploying",
        worker_list=workers(),
    )
    assert (decision.action, decision.desired) == (Action.SCALE_IN, 20)


def test_current_above_max_with_scale_out_breached_comes_down_to_max() -> None:
    decision = decide_at(make_pool(max_capacity=20), 25, 25)
    assert (decision.action, decision.desired) == (Action.SCALE_IN, 20)


# --------------------------------------------------------------------------- scale-in guards


def test_scale_in_blocked_during_its_cooldown_then_allowed() -> None:
    pool = make_pool()  # scale-in cooldown 300s
    memory = after_scaling(pool, PoolMemory(), Decision(Action.SCALE_IN, 5, 4, "m", 0, "r"), T0)
    blocked = decide_at(pool, 0, 4, memory=memory, now=T0 + 100, worker_list=workers())
    assert (blocked.action, blocked.desired) == (Action.HOLD, 4)
    assert "scale-in cooldown has 200s left" in blocked.reason
    allowed = decide_at(pool, 0, 4, memory=memory, now=T0 + 300, worker_list=workers())
    assert (allowed.action, allowed.desired) == (Action.SCALE_IN, 3)


def test_scale_out_during_scale_in_cooldown_goes_ahead_and_ends_it() -> None:
    # [API-SSPC] "if another alarm triggers a scale-out activity during the cooldown period
    # after a scale-in activity, Application Auto Scaling scales out the target immediately.
    # In this case, the cooldown period for the scale-in activity stops".
    pool = make_pool()
    memory = PoolMemory(scale_in_cooldown_started=T0)
    out = decide_at(pool, 25, 4, memory=memory, now=T0 + 10)
    assert (out.action, out.desired) == (Action.SCALE_OUT, 6)
    memory = after_scaling(pool, memory, out, T0 + 10)
    assert memory.scale_in_cooldown_started is None
    back_in = decide_at(pool, 0, 6, memory=memory, now=T0 + 20, worker_list=workers())
    assert (back_in.action, back_in.desired) == (Action.SCALE_IN, 5)


def test_no_scale_in_while_deploying_but_scale_out_goes_ahead() -> None:
    pool = make_pool()
    held = decide_at(pool, 0, 4, deploying=True, worker_list=workers())
    assert (held.action, held.desired) == (Action.HOLD, 4)
    assert "deployment" in held.reason
    out = decide_at(pool, 25, 4, deploying=True)
    assert (out.action, out.desired) == (Action.SCALE_OUT, 6)


@pytest.mark.parametrize(
    ("safe", "active", "desired"),
    [
        (True, (1, 1, 1, 1, 0, 0), 4),  # 4 busy: not below 4
        (True, (1, 0, 0, 0, 0, 0), 3),  # 1 busy: the step's 3 stands
        (True, (1,) * 6, 6),  # all busy: hold
        (False, (1, 1, 1, 1, 0, 0), 3),  # safeScaleIn off
    ],
)
def test_safe_scale_in_keeps_busy_workers(
    safe: bool, active: tuple[int, ...], desired: int
) -> None:
    pool = make_pool(scale_in=policy(2, step(None, 0, -3)), safeScaleIn=safe)
    decision = decide_at(pool, 0, 6, worker_list=workers(*active))
    assert decision.desired == desired
    if safe and desired > 3:
        assert "workers are busy (safeScaleIn)" in decision.reason


def test_safe_scale_in_counts_each_worker_once() -> None:
    twice = workers(1, 1) + workers(1)  # celery@w0 replied twice
    pool = make_pool(scale_in=policy(2, step(None, 0, -5)))
    decision = decide_at(pool, 0, 6, worker_list=twice, running=2)
    assert decision.desired == 2


def test_safe_scale_in_never_scales_out() -> None:
    # More busy workers than desired tasks (a rollout's old and new tasks): hold, not grow.
    pool = make_pool(scale_in=policy(2, step(None, 0, -1)))
    decision = decide_at(pool, 0, 3, worker_list=workers(1, 1, 1, 1, 1))
    assert (decision.action, decision.desired) == (Action.HOLD, 3)


# --------------------------------------------------------------------------- missing data


@pytest.mark.parametrize("value", [0, 25])
def test_hold_on_any_observation_error(value: float) -> None:
    decision = decide_at(make_pool(), value, 4, errors=("redis: connection refused",))
    assert (decision.action, decision.current, decision.desired) == (Action.HOLD, 4, 4)
    assert "redis: connection refused" in decision.reason


def test_hold_when_the_metric_is_missing() -> None:
    pool = make_pool()
    memory = record_sample(PoolMemory(), T0 - 15, 0.0, pool.window)  # an old sample is no excuse
    decision = decide(pool, observation(4), {"queue_depth": 0.0}, memory, T0, interval=INTERVAL)
    assert (decision.action, decision.desired, decision.value) == (Action.HOLD, 4, None)
    assert "backlog_per_task could not be read" in decision.reason


def test_hold_when_no_sample_was_recorded() -> None:
    decision = decide(
        make_pool(), observation(4), {"backlog_per_task": 0.0}, PoolMemory(), T0, interval=INTERVAL
    )
    assert (decision.action, decision.desired) == (Action.HOLD, 4)


def test_hold_when_the_service_is_missing() -> None:
    pool = make_pool()
    memory = record_sample(PoolMemory(), T0, 25, pool.window)
    obs = Observation(broker=None, workers=(), service=None)
    decision = decide(pool, obs, {"backlog_per_task": 25}, memory, T0, interval=INTERVAL)
    assert (decision.action, decision.current, decision.desired) == (Action.HOLD, 0, 0)
    assert "ECS service was not read" in decision.reason
    assert "holding at 0" not in decision.reason, "a count never read is not held at 0"


# --------------------------------------------------------------------------- window, statistic


def test_record_sample_window_zero_keeps_the_latest_only() -> None:
    memory = record_sample(PoolMemory(), T0, 1.0, 0)
    memory = record_sample(memory, T0 + 15, 2.0, 0)
    assert memory.samples == {"default": ((T0 + 15, 2.0),)}


def test_record_sample_drops_what_left_the_window() -> None:
    memory = PoolMemory()
    for age, value in [(90, 1.0), (45, 2.0), (15, 3.0)]:
        memory = record_sample(memory, T0 - age, value, 60)
    memory = record_sample(memory, T0, 4.0, 60)
    assert memory.samples == {"default": ((T0 - 45, 2.0), (T0 - 15, 3.0), (T0, 4.0))}


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [(Statistic.AVERAGE, 10.0), (Statistic.MINIMUM, 2.0), (Statistic.MAXIMUM, 20.0)],
)
def test_aggregate(statistic: Statistic, expected: float) -> None:
    assert aggregate([(1.0, 2.0), (2.0, 20.0), (3.0, 8.0)], statistic) == expected


@pytest.mark.parametrize(
    ("statistic", "action", "desired", "shown"),
    [
        ("Average", Action.SCALE_OUT, 5, "backlog_per_task average 10 over 3 samples ≥ 10"),
        ("Minimum", Action.SCALE_IN, 3, "backlog_per_task minimum 2 over 3 samples ≤ 2"),
        ("Maximum", Action.SCALE_OUT, 6, "backlog_per_task maximum 20 over 3 samples ≥ 10"),
    ],
)
def test_decide_uses_the_windowed_statistic(
    statistic: str, action: Action, desired: int, shown: str
) -> None:
    pool = make_pool(window="60s", statistic=statistic)
    memory = PoolMemory()
    for age, value in [(45, 2.0), (15, 20.0)]:  # reaching back 60s - INTERVAL
        memory = record_sample(memory, T0 - age, value, pool.window)
    decision = decide_at(pool, 8.0, 4, memory=memory, worker_list=workers())
    assert (decision.action, decision.desired) == (action, desired)
    assert shown in decision.reason


def test_window_zero_decides_on_the_latest_sample() -> None:
    pool = make_pool()
    memory = record_sample(PoolMemory(), T0 - 15, 50.0, pool.window)
    decision = decide_at(pool, 0.0, 4, memory=memory, worker_list=workers())
    assert decision.action is Action.SCALE_IN
    assert decision.value == 0.0


# --------------------------------------------------------------------------- the reason


def test_reason_names_metric_value_threshold_step_and_change() -> None:
    decision = decide_at(make_pool(), 25, 4)
    assert decision.reason == "backlog_per_task 25 ≥ 10 (step [10, +inf) → +2): 4 → 6"
    assert decision.step == "step [10, +inf) → +2"
    assert (decision.metric, decision.value, decision.current, decision.desired) == (
        "backlog_per_task",
        25,
        4,
        6,
    )


def test_reason_for_scale_in_brackets_the_step_as_below_the_threshold() -> None:
    decision = decide_at(make_pool(), 1.5, 5, worker_list=workers())
    assert decision.reason == "backlog_per_task 1.5 ≤ 2 (step (-inf, 0] → -1): 5 → 4"


@pytest.mark.parametrize(
    ("adjustment", "scaling", "shown"),
    [("PercentChangeInCapacity", 50, "+50%"), ("ExactCapacity", 9, "=9")],
)
def test_reason_shows_the_adjustment_type(adjustment: str, scaling: int, shown: str) -> None:
    out = policy(10, step(0, None, scaling), adjustment=adjustment)
    decision = decide_at(make_pool(scale_out=out), 12, 4)
    assert f"(step [0, +inf) → {shown}): 4 → " in decision.reason


def test_reason_when_within_thresholds() -> None:
    decision = decide_at(make_pool(), 5, 4)
    assert decision.reason == "backlog_per_task 5 is within thresholds: holding at 4"
    assert decision.step is None


# --------------------------------------------------------------------------- after_scaling


def test_after_scaling_hold_changes_nothing() -> None:
    memory = PoolMemory(samples={"default": ((T0, 1.0),)}, scale_in_cooldown_started=T0 - 5)
    hold = Decision(Action.HOLD, 4, 4, "m", 1.0, "r")
    assert after_scaling(make_pool(), memory, hold, T0) == memory


def test_after_scaling_starts_accumulates_and_restarts_the_scale_out_cooldown() -> None:
    pool = make_pool()  # scale-out cooldown 60s
    memory = after_scaling(pool, PoolMemory(), Decision(Action.SCALE_OUT, 4, 6, "m", 0, "r"), T0)
    assert memory.scale_out_cooldown == ScaleOutCooldown(started=T0, added=2)
    memory = after_scaling(pool, memory, Decision(Action.SCALE_OUT, 6, 7, "m", 0, "r"), T0 + 30)
    assert memory.scale_out_cooldown == ScaleOutCooldown(started=T0, added=3)
    memory = after_scaling(pool, memory, Decision(Action.SCALE_OUT, 7, 9, "m", 0, "r"), T0 + 60)
    assert memory.scale_out_cooldown == ScaleOutCooldown(started=T0 + 60, added=2)


def test_after_scaling_scale_in_starts_its_cooldown_and_keeps_the_scale_out_one() -> None:
    pool = make_pool()
    running = ScaleOutCooldown(started=T0 - 10, added=2)
    memory = PoolMemory(scale_out_cooldown=running)
    memory = after_scaling(pool, memory, Decision(Action.SCALE_IN, 6, 5, "m", 0, "r"), T0)
    assert memory.scale_in_cooldown_started == T0
    assert memory.scale_out_cooldown == running


# --------------------------------------------------------------------------- properties

ADJUSTMENT_TYPES = [kind.value for kind in AdjustmentType]


@st.composite
def step_tables(draw: st.DrawFn, direction: Direction, kinds: list[str]) -> dict[str, Any]:
    """A valid AWS step table on one side of its threshold."""
    kind = draw(st.sampled_from(kinds))
    cuts = sorted(draw(st.lists(st.integers(1, 50), unique=True, max_size=3)))
    sign = 1 if direction is Direction.OUT else -1
    if kind == "ExactCapacity":
        adjustments = st.integers(0, 40)
    elif kind == "PercentChangeInCapacity":
        adjustments = st.integers(0, 200) if sign > 0 else st.integers(-100, 0)
    else:
        adjustments = st.integers(0, 6) if sign > 0 else st.integers(-6, 0)
    bounds: list[float | None] = [0.0, *(sign * cut for cut in cuts), None]
    rows = []
    for near, far in itertools.pairwise(bounds):
        lower, upper = (near, far) if sign > 0 else (far, near)
        rows.append(step(lower, upper, draw(adjustments)))
    magnitude = draw(st.none() | st.integers(1, 3)) if kind == "PercentChangeInCapacity" else None
    return policy(
        draw(st.integers(-5, 30)),
        *rows,
        adjustment=kind,
        cooldown=draw(st.sampled_from([0, 60, 300])),
        magnitude=magnitude,
    )


@st.composite
def pools(draw: st.DrawFn, kinds: list[str] = ADJUSTMENT_TYPES) -> WorkerPoolSpec:
    out = draw(st.none() | step_tables(Direction.OUT, kinds))
    in_ = (
        draw(step_tables(Direction.IN, kinds))
        if out is None
        else draw(st.none() | step_tables(Direction.IN, kinds))
    )
    if out is not None and in_ is not None:
        # Below the scale-out threshold: the configuration refuses tables that overlap.
        in_ = {**in_, "threshold": out["threshold"] - draw(st.integers(1, 20))}
    low = draw(st.integers(0, 5))
    return make_pool(
        scale_out=out,
        scale_in=in_,
        min_capacity=low,
        max_capacity=draw(st.integers(max(low, 1), low + 25)),  # 0 and 0 is refused
        safeScaleIn=draw(st.booleans()),
        statistic=draw(st.sampled_from(["Average", "Minimum", "Maximum"])),
        window=draw(st.sampled_from([0, 60])),
    )


@st.composite
def memories(draw: st.DrawFn) -> PoolMemory:
    samples = tuple(
        (T0 - age, value)
        for age, value in draw(
            st.lists(st.tuples(st.integers(1, 59), st.integers(-10, 80)), max_size=3)
        )
    )
    scale_out = draw(
        st.none()
        | st.builds(
            ScaleOutCooldown,
            started=st.integers(0, 400).map(lambda age: T0 - age),
            added=st.integers(0, 5),
        )
    )
    scale_in = draw(st.none() | st.integers(0, 400).map(lambda age: T0 - age))
    return PoolMemory(
        samples={"default": tuple(sorted(samples))},
        scale_out_cooldown=scale_out,
        scale_in_cooldown_started=scale_in,
    )


@st.composite
def situations(
    draw: st.DrawFn, kinds: list[str] = ADJUSTMENT_TYPES
) -> tuple[WorkerPoolSpec, int, float, PoolMemory, tuple[WorkerSnapshot, ...], bool]:
    pool = draw(pools(kinds))
    current = draw(st.integers(pool.min_capacity, pool.max_capacity))
    value = draw(st.floats(-20, 120, allow_nan=False) | st.integers(-20, 120).map(float))
    busy = draw(st.integers(0, current))
    idle = draw(st.integers(0, 3))
    return (
        pool,
        current,
        value,
        draw(memories()),
        workers(*([1] * busy + [0] * idle)),
        draw(st.booleans()),
    )


OBSERVATION_ERRORS = [
    "redis: connection refused",
    "inspect: no reply within 1s",
    "ecs: ThrottlingException",
]

# Enough to find a broken invariant, few enough to keep the suite fast.
FAST = settings(max_examples=75, deadline=None)


@FAST
@given(situations())
def test_property_desired_within_range_when_current_is(
    case: tuple[WorkerPoolSpec, int, float, PoolMemory, tuple[WorkerSnapshot, ...], bool],
) -> None:
    pool, current, value, memory, busy, deploying = case
    decision = decide_at(pool, value, current, memory=memory, worker_list=busy, deploying=deploying)
    assert pool.min_capacity <= decision.desired <= pool.max_capacity
    assert decision.current == current
    expected = (
        Action.SCALE_OUT
        if decision.desired > current
        else Action.SCALE_IN
        if decision.desired < current
        else Action.HOLD
    )
    assert decision.action is expected


@FAST
@given(situations(), st.lists(st.sampled_from(OBSERVATION_ERRORS), min_size=1, max_size=3))
def test_property_errors_always_hold(
    case: tuple[WorkerPoolSpec, int, float, PoolMemory, tuple[WorkerSnapshot, ...], bool],
    errors: list[str],
) -> None:
    pool, current, value, memory, busy, deploying = case
    decision = decide_at(
        pool,
        value,
        current,
        memory=memory,
        worker_list=busy,
        deploying=deploying,
        errors=tuple(errors),
    )
    assert (decision.action, decision.desired) == (Action.HOLD, current)


@FAST
@given(situations(), st.integers(0, 299))
def test_property_no_scale_in_while_the_scale_in_cooldown_runs(
    case: tuple[WorkerPoolSpec, int, float, PoolMemory, tuple[WorkerSnapshot, ...], bool],
    age: int,
) -> None:
    pool, current, value, memory, busy, deploying = case
    if pool.scale_in is not None:
        scale_in = pool.scale_in.model_copy(update={"cooldown": 300.0})
        pool = pool.model_copy(update={"scale_in": scale_in})
    memory = memory.evolve(scale_in_cooldown_started=T0 - age)
    decision = decide_at(pool, value, current, memory=memory, worker_list=busy, deploying=deploying)
    assert decision.desired >= current


@FAST
@given(situations())
def test_property_safe_scale_in_keeps_busy_workers(
    case: tuple[WorkerPoolSpec, int, float, PoolMemory, tuple[WorkerSnapshot, ...], bool],
) -> None:
    pool, current, value, memory, busy, deploying = case
    decision = decide_at(pool, value, current, memory=memory, worker_list=busy, deploying=deploying)
    busy_count = sum(1 for worker in busy if worker.busy)
    if pool.safe_scale_in and decision.action is Action.SCALE_IN:
        assert decision.desired >= busy_count


@FAST
@given(
    pools(kinds=["ChangeInCapacity", "PercentChangeInCapacity"]),
    st.data(),
)
def test_property_scale_out_in_cooldown_never_exceeds_the_largest_step_from_its_base(
    pool: WorkerPoolSpec, data: st.DataObject
) -> None:
    if pool.scale_out is None:
        return
    # One long cooldown that every pass falls inside; no scale-in policy to interleave.
    scale_out = pool.scale_out.model_copy(update={"cooldown": 300.0})
    pool = pool.model_copy(update={"scale_out": scale_out, "scale_in": None})
    base = data.draw(st.integers(pool.min_capacity, pool.max_capacity), label="base")
    offsets = data.draw(st.lists(st.floats(0, 80, allow_nan=False), min_size=1, max_size=6))
    times = sorted(
        data.draw(st.lists(st.integers(0, 299), min_size=len(offsets), max_size=len(offsets)))
    )
    decisions = run(
        pool,
        [(T0 + t, scale_out.threshold + offset) for t, offset in zip(times, offsets, strict=True)],
        base,
    )
    largest = max(adjusted_capacity(scale_out, row, base) for row in scale_out.steps)
    ceiling = min(pool.max_capacity, max(base, largest))
    assert all(decision.desired <= ceiling for decision in decisions)


def test_no_scale_in_while_running_workers_did_not_answer_inspect() -> None:
    # 4 tasks run but only 3 workers answered: the fourth may be busy, and its work is
    # missing from the metric.
    decision = decide_at(make_pool(), 1, 4, worker_list=workers(0, 0, 0), running=4)
    assert (decision.action, decision.desired) == (Action.HOLD, 4)
    assert "only 3 of 4 running workers answered inspect" in decision.reason
    # Scale-out is not held back by it.
    decision = decide_at(make_pool(), 25, 4, worker_list=workers(1, 1, 1), running=4)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 6)


def plan_at(
    pool: WorkerPoolSpec, value: float | None, memory: PoolMemory, now: float = T0, **obs: Any
) -> tuple[Decision, PoolMemory, tuple[str, ...]]:
    """One whole pure pass (plan_pass): (decision, memory, events)."""
    current = obs.pop("current")
    metrics = {} if value is None else {pool.metric.value: value}
    decision, memory, events, _ = plan_pass(
        pool, observation(current, **obs), metrics, memory, now, interval=INTERVAL
    )
    return decision, memory, events


# --------------------------------------------------------------------------- external changes

PLUS_3 = policy(10, step(0, None, 3), cooldown=300)


def test_external_change_in_a_scale_out_cooldown_counts_only_the_capacity_left() -> None:
    # 2 → 5 by the policy 60s ago, cooldown 300s; then someone set the count by hand.
    pool = make_pool(scale_out=PLUS_3, scale_in=None)
    memory = PoolMemory(last_desired=5, scale_out_cooldown=ScaleOutCooldown(T0 - 60, 3))
    for changed_to, added, desired in [
        (2, 0, 5),  # all 3 the cooldown added were removed: a whole new +3
        (4, 2, 5),  # 1 of them removed: 2 still count, so +3 from 2 adds 1
        (7, 3, 7),  # raised by someone else: the cooldown's own 3 still count; 4 + 3 is here
    ]:
        decision, after, events = plan_at(pool, 30, memory, current=changed_to)
        assert after.scale_out_cooldown == ScaleOutCooldown(T0 - 60, added)
        assert (decision.current, decision.desired) == (changed_to, desired)
        (event,) = events
        assert event.startswith(f"desiredCount changed outside the controller: 5 → {changed_to}")
        if added != 3:
            assert event.endswith(f"the scale-out cooldown now counts {added} added, not 3")
        if added == 0:
            assert "already added in cooldown" not in decision.reason


# --------------------------------------------------------------------------- failed passes


def failing(**pool: Any) -> tuple[WorkerPoolSpec, PoolMemory]:
    """A pool whose pass just failed for the third time in a row."""
    return make_pool(**pool), PoolMemory(consecutive_failures=2)


FAILED_PASSES: list[tuple[dict[str, Any], int, Action, int, str]] = [
    # The fallback raises, and never past maxCapacity.
    ({"fallback": {"capacity": 3}}, 2, Action.SCALE_OUT, 3, "fallback after 3 failed"),
    ({"fallback": {"capacity": 3}}, 4, Action.HOLD, 4, "not above it"),
    # Above maxCapacity: brought down to it, with or without a fallback (it was 6, hold).
    (
        {"fallback": {"capacity": 3}, "max_capacity": 5},
        8,
        Action.SCALE_IN,
        5,
        "8 is above maxCapacity: 8 → 5",
    ),
    ({"max_capacity": 5}, 8, Action.SCALE_IN, 5, "8 is above maxCapacity: 8 → 5"),
    # Below minCapacity: raised to it.
    ({"min_capacity": 2}, 0, Action.SCALE_OUT, 2, "0 is below minCapacity: 0 → 2"),
    ({}, 4, Action.HOLD, 4, "holding at 4"),
]


def test_failed_pass_brings_the_count_within_bounds_and_says_so() -> None:
    for pool, current, action, desired, words in FAILED_PASSES:
        spec, memory = failing(**pool)
        decision, _, _ = plan_at(spec, None, memory, current=current)
        assert (decision.action, decision.current, decision.desired) == (action, current, desired)
        assert words in decision.reason
        assert "could not be read this pass" in decision.reason


@FAST
@given(situations(), st.integers(0, 30), st.integers(0, 5))
def test_property_a_failed_pass_agrees_with_itself_and_keeps_the_bounds(
    case: tuple[WorkerPoolSpec, int, float, PoolMemory, tuple[WorkerSnapshot, ...], bool],
    current: int,
    failures: int,
) -> None:
    pool, _, _, memory, busy, deploying = case
    memory = memory.evolve(consecutive_failures=failures)
    decision = decide_at(
        pool, 0, current, memory=memory, worker_list=busy, deploying=deploying, errors=("x",)
    )
    assert pool.min_capacity <= decision.desired <= pool.max_capacity
    assert decision.action is _direction(current, decision.desired)
    # Nothing but the bounds lowers the count without data.
    assert decision.desired >= min(current, pool.max_capacity)


def _direction(current: int, desired: int) -> Action:
    if desired > current:
        return Action.SCALE_OUT
    return Action.SCALE_IN if desired < current else Action.HOLD


# --------------------------------------------------------------------------- a window not yet full

MIN_OVER_A_MINUTE: dict[str, Any] = {"window": "60s", "statistic": "Minimum"}


def test_a_new_process_does_not_act_on_one_sample_of_a_window() -> None:
    # The first pass of a new process: one sample of 25 is no Minimum over 60s.
    decision = decide_at(make_pool(**MIN_OVER_A_MINUTE), 25, 4)
    assert (decision.action, decision.desired, decision.value) == (Action.HOLD, 4, None)
    assert decision.reason == (
        "backlog_per_task: samples cover 0s of the 60s window so far (1 sample); "
        "a policy acts once they reach back 45s: holding at 4"
    )


def test_the_window_acts_once_its_samples_reach_back_window_minus_interval() -> None:
    # A pass every 15s: the samples at 0, 15, 30 hold; at 45 they reach back 60 - 15.
    pool = make_pool(**MIN_OVER_A_MINUTE)
    decisions = run(pool, [(T0 + t, 25.0) for t in (0, 15, 30, 45)], current=4)
    assert [d.action for d in decisions] == [Action.HOLD] * 3 + [Action.SCALE_OUT]
    assert "samples cover 30s of the 60s window so far (3 samples)" in decisions[2].reason
    assert decisions[3].reason.startswith("backlog_per_task minimum 25 over 4 samples ≥ 10")
    # A window of one interval or less can hold no more than one sample: it is enough.
    for window in ("0s", "10s", "15s"):
        decision = decide_at(make_pool(window=window, statistic="Minimum"), 25, 4)
        assert (decision.action, decision.desired) == (Action.SCALE_OUT, 6)


def test_samples_aged_out_during_failures_fill_the_window_anew() -> None:
    pool = make_pool(**MIN_OVER_A_MINUTE)
    memory = PoolMemory()
    for age in (60, 45, 30):  # then passes failed for 90s: no sample
        memory = record_sample(memory, T0 - 120 - age, 25.0, pool.window)
    decision = decide_at(pool, 25, 4, memory=memory)
    assert (decision.action, decision.desired) == (Action.HOLD, 4)
    assert "samples cover 0s of the 60s window" in decision.reason


@pytest.mark.parametrize(
    ("current", "action", "desired"), [(0, Action.SCALE_OUT, 1), (25, Action.SCALE_IN, 20)]
)
def test_a_window_not_yet_full_still_brings_the_count_within_bounds(
    current: int, action: Action, desired: int
) -> None:
    decision = decide_at(make_pool(**MIN_OVER_A_MINUTE), 25, current)
    assert (decision.action, decision.desired) == (action, desired)
    assert "samples cover 0s" in decision.reason


# --------------------------------------------------------------------------- an unrecorded write


def written_then_stopped(current: int, desired: int) -> PoolMemory:
    """What a controller left that wrote `current → desired` at T0 - 30 and then stopped."""
    return PoolMemory(
        last_desired=current,
        pending=PendingWrite(_direction(current, desired), current, desired, T0 - 30),
    )


def test_a_write_found_done_is_the_controllers_own_with_its_cooldown() -> None:
    pool = make_pool(scale_out=PLUS_3, scale_in=None)
    decision, memory, events = plan_at(pool, 30, written_then_stopped(2, 5), current=5)
    assert events == ()
    assert (memory.last_desired, memory.pending) == (5, None)
    assert memory.scale_out_cooldown == ScaleOutCooldown(T0 - 30, 3)
    assert memory.last_action is not None
    assert (memory.last_action.action, memory.last_action.time) == (Action.SCALE_OUT, T0 - 30)
    # The cooldown it started still counts what it added.
    assert (decision.action, decision.desired) == (Action.HOLD, 5)
    assert "3 already added in cooldown" in decision.reason


def test_a_write_that_never_happened_is_dropped_quietly() -> None:
    pool = make_pool(scale_out=PLUS_3, scale_in=None)
    decision, memory, events = plan_at(pool, 30, written_then_stopped(2, 5), current=2)
    assert events == ()
    assert (memory.pending, memory.last_action, memory.scale_out_cooldown) == (None, None, None)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 5)


def test_a_count_changed_after_an_unrecorded_write_is_still_external() -> None:
    pool = make_pool(scale_out=PLUS_3, scale_in=None)
    _, memory, events = plan_at(pool, 30, written_then_stopped(2, 5), current=7)
    assert events == (
        "desiredCount changed outside the controller: 2 → 7; taken as current, "
        "scale-in cooldown started",
    )
    assert (memory.pending, memory.last_desired) == (None, 7)


# --------------------------------------------------------------------------- unanswered workers


@pytest.mark.parametrize(
    ("metric", "safe", "blocked"),
    [
        ("queue_depth", False, False),  # broker-only metric, no safeScaleIn: AWS's semantics
        ("backlog_per_task", False, False),
        ("queue_depth", True, True),  # safeScaleIn needs every busy worker
        ("active_tasks", False, True),  # so does a metric read through inspect
        ("busy_ratio", False, True),
    ],
)
def test_unanswered_workers_block_scale_in_only_where_inspect_data_is_needed(
    metric: str, safe: bool, blocked: bool
) -> None:
    pool = make_pool(metric=metric, safeScaleIn=safe, scale_in=policy(0.1, step(None, 0, -1)))
    decision = decide_at(pool, 0, 4, worker_list=workers(0, 0, 0), running=4)
    assert (decision.action, decision.desired) == (
        (Action.HOLD, 4) if blocked else (Action.SCALE_IN, 3)
    )
    assert (Condition.WORKERS_UNREACHABLE in decision.conditions) is blocked
    if blocked:
        assert "only 3 of 4 running workers answered inspect" in decision.reason
        assert decision.conditions[Condition.WORKERS_UNREACHABLE].startswith(
            "only 3 of 4 running workers answered inspect, so no scale-in until they do"
        )


def test_workers_unreachable_holds_whatever_the_metric_asks() -> None:
    # A condition of the pool, not of this pass's step: it holds on a scale-out too.
    decision = decide_at(make_pool(), 25, 4, worker_list=workers(1, 1, 1), running=4)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 6)
    assert Condition.WORKERS_UNREACHABLE in decision.conditions
    everyone = decide_at(make_pool(), 25, 4, worker_list=workers(1, 1, 1, 1), running=4)
    assert everyone.conditions == {}


def test_workers_unreachable_is_announced_then_warned_about_past_5_minutes() -> None:
    pool = make_pool()
    memory, seen = PoolMemory(), []
    for age in (0, 300, 301):
        decision, memory, events = plan_at(
            pool, 0, memory, now=T0 + age, current=4, worker_list=workers(0, 0, 0), running=4
        )
        seen.append((events, decision.warnings, decision.desired))
    (appeared,), _, _ = seen[0]
    assert appeared.startswith("WorkersUnreachable: only 3 of 4 running workers answered")
    assert seen[1][:2] == ((), ())  # 300s is the bound itself: not yet
    events, (warning,), desired = seen[2]
    assert events == ()
    assert warning.startswith(
        "WorkersUnreachable has held for 301s, longer than 300s: only 3 of 4 running workers"
    )
    assert desired == 4  # a warning changes nothing
    _, memory, events = plan_at(pool, 0, memory, now=T0 + 315, current=4, worker_list=workers(0))
    assert events == ("WorkersUnreachable cleared",)
    assert memory.conditions == {}


def test_last_action_is_kept_by_a_settled_write() -> None:
    memory = written_then_stopped(5, 3)
    pool = make_pool()
    _, after, _ = plan_at(pool, 5, memory, current=3, worker_list=workers(0, 0, 0))
    assert after.last_action == LastAction(
        Action.SCALE_IN, T0 - 30, "5 → 3, by a controller that stopped before recording it"
    )
    assert after.scale_in_cooldown_started == T0 - 30


# --------------------------------------------------------------------------- several policies
# [UG-TT] Application Auto Scaling User Guide, target tracking, "Multiple scaling policies":
# scale out if any policy is ready to scale out; scale in only if all are ready to scale in;
# [API-PSP] PutScalingPolicy: "precedence to the policy that provides the largest capacity".

LATENCY = {"name": "latency", "metric": "queue_latency_seconds", "targetTracking": {}}


def latency(target: float = 30, **tracking: Any) -> dict[str, Any]:
    """A target tracking policy on queue latency, beside the pool's own backlog steps."""
    return {**LATENCY, "targetTracking": {"targetValue": target, **tracking}}


def burst(threshold: float = 100, adjustment: int = 5) -> dict[str, Any]:
    """A scale-out-only step policy on queue depth (no scale-in part)."""
    return {
        "name": "burst",
        "metric": "queue_depth",
        "scaleOut": policy(threshold, step(0, None, adjustment)),
    }


def combined(*policies: dict[str, Any], **extra: Any) -> WorkerPoolSpec:
    """DESIGN_OUT and DESIGN_IN on backlog_per_task (cooldowns 0), and `policies`."""
    return make_pool(
        scale_out={**DESIGN_OUT, "cooldown": 0},
        scale_in={**DESIGN_IN, "cooldown": 0},
        policies=list(policies),
        **extra,
    )


def passes(
    pool: WorkerPoolSpec,
    metrics: dict[str, float],
    current: int,
    memory: PoolMemory | None = None,
    now: float = T0,
) -> tuple[Decision, PoolMemory]:
    """One pass on every policy's metric; its write assumed to succeed."""
    decision, memory, _, _ = plan_pass(
        pool, observation(current), metrics, memory or PoolMemory(), now, interval=INTERVAL
    )
    return decision, after_scaling(pool, memory, decision, now)


BACKLOG, LATENCY_S, DEPTH = "backlog_per_task", "queue_latency_seconds", "queue_depth"


@pytest.mark.parametrize(
    ("backlog", "latency_s", "desired", "decider"),
    [
        (12, 10, 5, "default"),  # only the backlog asks for more: +1
        (5, 90, 12, "latency"),  # only latency: ceil(4 x 90 / 30)
        (25, 40, 6, "default"),  # both ask for 6 (+2, ceil(5.33)): the first in order
        (12, 90, 12, "latency"),  # both: the largest, 12 over 5
        (1, 90, 12, "latency"),  # backlog would scale in; any scale-out wins
    ],
)
def test_scale_out_goes_to_the_largest_proposal(
    backlog: float, latency_s: float, desired: int, decider: str
) -> None:
    pool = combined(latency())
    decision, _ = passes(pool, {BACKLOG: backlog, LATENCY_S: latency_s}, 4)
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, desired), decision.reason
    assert decision.policy == decider
    assert decision.reason.startswith(f"{decider}: ")


@pytest.mark.parametrize(
    ("backlog", "latency_s", "action", "desired", "decider"),
    [
        (1, 10, Action.SCALE_IN, 3, "default"),  # -1 → 3; latency ceil(4 x 10 / 30) = 2: 3 wins
        (1, 0, Action.SCALE_IN, 3, "default"),  # the largest of the proposals, not the smallest
        (1, 28, Action.HOLD, 4, "latency"),  # latency near its target: no scale-in
        (5, 10, Action.HOLD, 4, "default"),  # backlog within thresholds: no scale-in
    ],
)
def test_scale_in_only_when_every_policy_proposes_less(
    backlog: float, latency_s: float, action: Action, desired: int, decider: str
) -> None:
    pool = combined(latency())
    decision, _ = passes(pool, {BACKLOG: backlog, LATENCY_S: latency_s}, 4)
    assert (decision.action, decision.desired) == (action, desired), decision.reason
    assert decision.policy == decider


def test_a_held_scale_in_says_what_each_policy_saw() -> None:
    decision, _ = passes(combined(latency()), {BACKLOG: 1, LATENCY_S: 28}, 4)
    assert decision.reason == (
        "default: backlog_per_task 1 ≤ 2 (step (-inf, 0] → -1) proposes 3; "
        "latency: queue_latency_seconds 28 is within 27 (0.9 * target) and target 30; "
        "no scale-in until every policy that scales in proposes fewer tasks: holding at 4"
    )
    assert decision.value == 28, "the value of the policy that held the count"


@pytest.mark.parametrize(
    "other",
    [latency(disableScaleIn=True), burst()],
    ids=["disable-scale-in", "scale-out-only-steps"],
)
def test_a_policy_that_never_scales_in_does_not_hold_a_scale_in_back(
    other: dict[str, Any],
) -> None:
    # [UG-TT]: "scales in only if all of the target tracking policies (with the scale-in
    # portion enabled) are ready to scale in".
    pool = combined(other)
    decision, _ = passes(pool, {BACKLOG: 1, LATENCY_S: 28, DEPTH: 3}, 4)
    assert (decision.action, decision.desired, decision.policy) == (
        Action.SCALE_IN,
        3,
        "default",
    )


def test_a_scale_out_only_policy_scales_out_on_its_own_metric() -> None:
    pool = combined(burst(100, 5))
    decision, _ = passes(pool, {BACKLOG: 5, DEPTH: 150}, 4)
    assert (decision.action, decision.desired, decision.policy) == (Action.SCALE_OUT, 9, "burst")
    assert decision.reason == "burst: queue_depth 150 ≥ 100 (step [0, +inf) → +5): 4 → 9"
    assert (decision.metric, decision.value) == (DEPTH, 150)


def test_each_policy_keeps_its_own_window() -> None:
    # The pool's own window is 0s (the latest sample); latency's is 60s of Maximum.
    pool = combined({**latency(), "window": "60s", "statistic": "Maximum"})
    memory = PoolMemory()
    seen = []
    for age, latency_s in ((0, 90), (15, 20), (30, 20), (45, 20)):
        decision, memory = passes(pool, {BACKLOG: 5, LATENCY_S: latency_s}, 4, memory, T0 + age)
        seen.append((decision.action, decision.policy))
    # A new process: latency's window fills from 45s on (60s - 15s); until then it holds.
    assert seen[:3] == [(Action.HOLD, "default")] * 3
    assert seen[3] == (Action.SCALE_OUT, "latency"), "the Maximum still holds the 90"
    assert [v for _, v in memory.samples["latency"]] == [90, 20, 20, 20]
    assert [v for _, v in memory.samples["default"]] == [5]


def test_a_policy_whose_window_is_not_full_blocks_scale_in_but_not_scale_out() -> None:
    pool = combined({**latency(), "window": "60s"})
    out, _ = passes(pool, {BACKLOG: 25, LATENCY_S: 0}, 4)
    assert (out.action, out.desired) == (Action.SCALE_OUT, 6)
    held, _ = passes(pool, {BACKLOG: 0, LATENCY_S: 0}, 4)
    assert held.action is Action.HOLD
    assert "latency: queue_latency_seconds: samples cover 0s of the 60s window" in held.reason


def test_a_metric_one_policy_needs_and_cannot_read_fails_the_pass() -> None:
    pool = combined(latency())
    decision, memory, _, errors = plan_pass(
        pool, observation(4), {BACKLOG: 25}, PoolMemory(), T0, interval=INTERVAL
    )
    assert errors == ("queue_latency_seconds could not be read this pass",)
    assert (decision.action, decision.policy) == (Action.HOLD, None)
    assert memory.samples == {}, "a failed pass records no sample"


def test_a_scale_out_adds_to_the_cooldown_by_the_length_of_the_policy_that_decided() -> None:
    # One scale-out cooldown per pool (its tags); each policy measures it with its own length.
    pool = combined(latency(scaleOutCooldown="600s"))
    memory = PoolMemory(scale_out_cooldown=ScaleOutCooldown(T0 - 100, 2))
    # The pool's own policy (cooldown 0): its cooldown is over, a new one starts.
    own, after = passes(pool, {BACKLOG: 12, LATENCY_S: 28}, 4, memory)
    assert own.policy == "default"
    assert after.scale_out_cooldown == ScaleOutCooldown(T0, 1)
    # Latency's (600s): the running cooldown still counts the 2 it added, and adds to it.
    tracked, after = passes(pool, {BACKLOG: 5, LATENCY_S: 90}, 4, memory)
    assert (tracked.policy, tracked.desired) == ("latency", 6)  # ceil(2 x 90 / 30) from base 2
    assert "2 already added in cooldown" in tracked.reason
    assert after.scale_out_cooldown == ScaleOutCooldown(T0 - 100, 4)


def test_the_longest_scale_in_cooldown_of_the_policies_that_scale_in_holds_a_scale_in() -> None:
    pool = combined(latency(scaleInCooldown="300s"))
    memory = PoolMemory(scale_in_cooldown_started=T0 - 100)
    decision, _ = passes(pool, {BACKLOG: 0, LATENCY_S: 0}, 4, memory)
    assert (decision.action, decision.desired) == (Action.HOLD, 4)
    assert "scale-in cooldown has 200s left" in decision.reason


def test_a_single_policy_pool_reasons_as_before() -> None:
    # The pool's own policy alone is not named in its reasons (today's lines stay as they are).
    decision, _ = passes(make_pool(), {BACKLOG: 12}, 4)
    assert decision.reason == "backlog_per_task 12 ≥ 10 (step [0, 10) → +1): 4 → 5"
    assert decision.policy == "default"


# --------------------------------------------------------------------------- pause tags (KEDA's)


def pass_with_tags(
    pool: WorkerPoolSpec,
    value: float | None,
    current: int,
    tags: dict[str, str],
    *,
    memory: PoolMemory | None = None,
    errors: tuple[str, ...] = (),
    now: float = T0,
) -> Decision:
    """One whole pure pass on a service carrying `tags`."""
    obs = Observation(
        broker=None,
        workers=None,
        service=ServiceObservation(
            desired=current, running=current, pending=0, deploying=False, tags=tags
        ),
        errors=errors,
    )
    metrics = {} if value is None else {pool.metric.value: value}
    decision, _, _, _ = plan_pass(
        pool, obs, metrics, memory or PoolMemory(), now, interval=INTERVAL
    )
    return decision


PAUSES: list[tuple[dict[str, str], float, int, Action, int, str]] = [
    # paused-scale-in holds a scale-in and lets a scale-out through; paused-scale-out the reverse.
    ({"celery-scaler.io/paused-scale-in": "true"}, 0, 4, Action.HOLD, 4, "scale-in paused"),
    ({"celery-scaler.io/paused-scale-in": "true"}, 25, 4, Action.SCALE_OUT, 6, "≥ 10"),
    ({"celery-scaler.io/paused-scale-out": "true"}, 25, 4, Action.HOLD, 4, "scale-out paused"),
    ({"celery-scaler.io/paused-scale-out": "true"}, 0, 4, Action.SCALE_IN, 3, "≤ 2"),
    # Even a count below minCapacity waits while scale-out is paused.
    ({"celery-scaler.io/paused-scale-out": " TRUE "}, 5, 0, Action.HOLD, 0, "below minCapacity"),
    # paused-replicas sets the count and holds it, whatever the metric and the bounds (KEDA).
    ({"celery-scaler.io/paused-replicas": "2"}, 25, 4, Action.SCALE_IN, 2, "paused-replicas=2"),
    ({"celery-scaler.io/paused-replicas": "2"}, 0, 2, Action.HOLD, 2, "holding at 2"),
    ({"celery-scaler.io/paused-replicas": "30"}, 0, 4, Action.SCALE_OUT, 30, "4 → 30"),
    # It wins over the other tags, as KEDA's does over paused.
    (
        {"celery-scaler.io/paused-replicas": "0", "celery-scaler.io/paused": "true"},
        0,
        4,
        Action.SCALE_IN,
        0,
        "paused-replicas=0: 4 → 0",
    ),
    # A value that is no count holds the pool: whoever set it meant to stop the controller.
    ({"celery-scaler.io/paused-replicas": "two"}, 25, 4, Action.HOLD, 4, "is not a number"),
    ({"celery-scaler.io/paused": "true"}, 25, 4, Action.HOLD, 4, "paused by the tag"),
]


@pytest.mark.parametrize(("tags", "value", "current", "action", "desired", "words"), PAUSES)
def test_pause_tags(
    tags: dict[str, str], value: float, current: int, action: Action, desired: int, words: str
) -> None:
    decision = pass_with_tags(make_pool(), value, current, tags)
    assert (decision.action, decision.desired) == (action, desired), decision.reason
    assert words in decision.reason


def test_paused_replicas_needs_no_metric() -> None:
    tags = {"celery-scaler.io/paused-replicas": "3"}
    decision = pass_with_tags(make_pool(), None, 5, tags, errors=("the broker is down",))
    assert (decision.action, decision.desired) == (Action.SCALE_IN, 3)


# --------------------------------------------------------------------------- fallback.behavior

FALLBACKS: list[tuple[dict[str, Any], int, Action, int, str]] = [
    # currentReplicasIfHigher, the default (and the only rule before behaviours): never lower.
    ({"capacity": 3}, 2, Action.SCALE_OUT, 3, "max(current 2, fallback.capacity 3) = 3"),
    ({"capacity": 3, "behavior": "currentReplicasIfHigher"}, 5, Action.HOLD, 5, "not above it"),
    # static: the capacity, up or down.
    ({"capacity": 3, "behavior": "static"}, 2, Action.SCALE_OUT, 3, "fallback.capacity 3 (static)"),
    ({"capacity": 3, "behavior": "static"}, 6, Action.SCALE_IN, 3, "= 3"),
    # currentReplicasIfLower: min(current, capacity).
    ({"capacity": 3, "behavior": "currentReplicasIfLower"}, 2, Action.HOLD, 2, "= 2"),
    ({"capacity": 3, "behavior": "currentReplicasIfLower"}, 6, Action.SCALE_IN, 3, "min(current 6"),
    # currentReplicas: the count as it is.
    ({"behavior": "currentReplicas"}, 6, Action.HOLD, 6, "currentReplicas"),
]


@pytest.mark.parametrize(("fallback", "current", "action", "desired", "words"), FALLBACKS)
def test_fallback_behaviors_after_the_failure_threshold(
    fallback: dict[str, Any], current: int, action: Action, desired: int, words: str
) -> None:
    pool = make_pool(fallback=fallback, safe_scale_in=False)
    memory = PoolMemory(consecutive_failures=2)
    decision, _, _ = plan_at(pool, None, memory, current=current)
    assert (decision.action, decision.desired) == (action, desired), decision.reason
    assert decision.reason.startswith("fallback after 3 failed passes: ")
    assert words in decision.reason


def test_a_fallback_below_the_count_never_stops_workers_it_cannot_see() -> None:
    # safeScaleIn is on and inspect failed: which workers are busy is unknown, so it holds.
    pool = make_pool(fallback={"capacity": 3, "behavior": "static"})
    decision, _, _ = plan_at(pool, None, PoolMemory(consecutive_failures=2), current=6)
    assert (decision.action, decision.desired) == (Action.HOLD, 6)
    assert "which workers are busy is unknown (safeScaleIn)" in decision.reason
    # With inspect answering, the busy workers are the floor, as for any scale-in.
    memory = PoolMemory(consecutive_failures=2)
    decision, _, _ = plan_at(
        pool, None, memory, current=6, worker_list=workers(1, 1, 1, 1, 0, 0), errors=("broker",)
    )
    assert (decision.action, decision.desired) == (Action.SCALE_IN, 4), decision.reason


def test_a_lowering_fallback_waits_for_the_scale_in_cooldown() -> None:
    pool = make_pool(fallback={"capacity": 3, "behavior": "static"}, safe_scale_in=False)
    memory = PoolMemory(consecutive_failures=2, scale_in_cooldown_started=T0 - 10)
    decision, _, _ = plan_at(pool, None, memory, current=6)
    assert (decision.action, decision.desired) == (Action.HOLD, 6)
    assert "scale-in cooldown has 290s left" in decision.reason


# --------------------------------------------------------------------------- scale to zero

QUEUE_IN_AT_0 = policy(0, step(None, 0, -1))


def zero_pool(scale_in: dict[str, Any] = QUEUE_IN_AT_0, **extra: Any) -> WorkerPoolSpec:
    """Scale to zero on queue_depth: activation at 0 messages, out at 10, in at 0."""
    return make_pool(min_capacity=0, metric="queue_depth", activation=0, scale_in=scale_in, **extra)


@pytest.mark.parametrize(
    ("value", "current", "action", "desired", "reason"),
    [
        # At 0 tasks, activation alone decides: 1 as soon as the metric is above it...
        (3, 0, Action.SCALE_OUT, 1, "queue_depth 3 > activation 0: 0 → 1"),
        # ... even where a step would add more (KEDA goes to 1; the policies take over next).
        (40, 0, Action.SCALE_OUT, 1, "queue_depth 40 > activation 0: 0 → 1"),
        (0, 0, Action.HOLD, 0, "queue_depth 0 ≤ activation 0: holding at 0"),
        # From 1, to 0 only once every activation reading is at or below its value.
        (0, 1, Action.SCALE_IN, 0, "queue_depth 0 ≤ activation 0: 1 → 0"),
        # Between 1 and maxCapacity the policies decide, down to 1.
        (0, 3, Action.SCALE_IN, 2, "queue_depth 0 ≤ 0"),
        (25, 1, Action.SCALE_OUT, 3, "queue_depth 25 ≥ 10"),
    ],
)
def test_activation_decides_between_zero_and_one(
    value: float, current: int, action: Action, desired: int, reason: str
) -> None:
    decision = decide_at(zero_pool(), value, current)
    assert (decision.action, decision.desired) == (action, desired), decision.reason
    assert decision.reason.startswith(reason)


def test_activation_above_zero_keeps_one_task_while_the_policies_would_remove_it() -> None:
    pool = make_pool(
        min_capacity=0, metric="queue_depth", activation=5, scale_in=policy(8, step(None, 0, -1))
    )
    held = decide_at(pool, 7, 1)  # the scale-in table is breached, yet 7 > 5
    assert (held.action, held.desired) == (Action.HOLD, 1), held.reason
    assert "7 raised to 1: below 1 only by activation" not in held.reason
    assert (decide_at(pool, 5, 1).desired, decide_at(pool, 5, 0).desired) == (0, 0)


def test_to_zero_waits_for_a_busy_worker_and_the_scale_in_cooldown() -> None:
    busy = decide_at(zero_pool(), 0, 1, worker_list=workers(1))
    assert (busy.action, busy.desired) == (Action.HOLD, 1)
    assert "kept at 1: 1 workers are busy (safeScaleIn)" in busy.reason
    memory = PoolMemory(scale_in_cooldown_started=T0 - 100)
    slow = zero_pool(scale_in=policy(0, step(None, 0, -1), cooldown=300))
    cooling = decide_at(slow, 0, 1, memory=memory)
    assert (cooling.action, cooling.desired) == (Action.HOLD, 1)
    assert "scale-in cooldown" in cooling.reason


def test_at_zero_only_the_activation_metrics_must_be_read() -> None:
    # busy_ratio has no worker to read it from at 0 tasks: not a failed pass.
    pool = zero_pool(
        policies=[
            {
                "name": "busy",
                "metric": "busy_ratio",
                "targetTracking": {"targetValue": 0.8, "disableScaleIn": True},
            }
        ]
    )
    obs = observation(0)
    decision, memory, _, errors = plan_pass(
        pool, obs, {"queue_depth": 4}, PoolMemory(), T0, interval=INTERVAL
    )
    assert (decision.action, decision.desired, errors) == (Action.SCALE_OUT, 1, ())
    assert memory.consecutive_failures == 0
    # From 1 task on, every policy's metric counts again.
    decision, memory, _, errors = plan_pass(
        pool, observation(1), {"queue_depth": 4}, PoolMemory(), T0, interval=INTERVAL
    )
    assert errors == ("busy_ratio could not be read this pass",)
    assert decision.action is Action.HOLD


def test_activation_needs_min_capacity_zero() -> None:
    with pytest.raises(ValueError, match="activation decides only between 0 and 1 tasks"):
        make_pool(metric="queue_depth", activation=0)


# --------------------------------------------------------------------------- scheduled bounds

BUSINESS_HOURS = [
    {"name": "business-hours", "schedule": "cron(0 8 ? * MON-FRI *)", "minCapacity": 5},
    {"name": "evening", "schedule": "cron(0 20 ? * MON-FRI *)", "minCapacity": 1},
]
WEDNESDAY_10H = 1_772_618_400.0  # 2026-03-04T10:00:00Z


def test_a_schedules_min_capacity_scales_out_to_it_and_says_so() -> None:
    pool = make_pool(schedules=BUSINESS_HOURS)
    decision = decide_at(pool, 5, 2, now=WEDNESDAY_10H)  # within thresholds
    assert (decision.action, decision.desired) == (Action.SCALE_OUT, 5)
    assert "2 is below minCapacity (schedule 'business-hours'): 2 → 5" in decision.reason
    assert decision.bounds is not None
    assert decision.bounds.scheduled == ("business-hours",)
    # After 20:00 the evening's minCapacity 1 holds: the count may come down again.
    evening = decide_at(pool, 0, 5, now=WEDNESDAY_10H + 11 * 3600)
    assert (evening.action, evening.desired) == (Action.SCALE_IN, 4)


def test_a_schedules_max_capacity_clamps_and_the_fallback_keeps_within_it() -> None:
    night = [{"name": "night", "schedule": "cron(0 0 * * ? *)", "maxCapacity": 2}]
    pool = make_pool(schedules=night, fallback={"capacity": 4})
    decision = decide_at(pool, 25, 2, now=WEDNESDAY_10H)
    assert (decision.action, decision.desired) == (Action.HOLD, 2)
    assert "clamped to maxCapacity (schedule 'night') 2" in decision.reason
    failed, _, _ = plan_at(pool, None, PoolMemory(consecutive_failures=2), WEDNESDAY_10H, current=1)
    assert (failed.action, failed.desired) == (Action.SCALE_OUT, 2), failed.reason
