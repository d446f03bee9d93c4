"""The configuration file: multi-document YAML, Kubernetes style (see docs/configuration.md).

Parsing is pure: it takes the file's text and the environment as arguments. Every
error names the document, the field path and what was expected.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from celery_scaler.core.errors import ConfigError
from celery_scaler.core.metrics import BROKER_ONLY_METRICS, LATENCY_METRICS, Metric
from celery_scaler.core.names import BROKER_ENV
from celery_scaler.core.schedules import Bounds, ScheduledAction, bounds_at, parse_expression, zone
from celery_scaler.core.transport_options import KNOWN_OPTIONS, TEXT_OPTIONS, TRANSPORT_NAMES

API_VERSION = "celery-scaler/v1"


class _FieldError(ValueError):
    """A check across fields that is about one of them: the error's path ends there."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# A number of seconds, or one or more number-unit parts as Go and Kubernetes write them:
# 15s, 250ms, 1m30s, 2h, 1d, 1h30m. "ms" before "m", or "250ms" would read as 250 minutes.
_DURATION_PART = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)"
_DURATION_PATTERN = r"^\s*(?:\d+(?:\.\d+)?\s*|(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+)$"
_DURATION = re.compile(_DURATION_PATTERN)
_PARTS = re.compile(_DURATION_PART)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_EXAMPLES = "15s, 5m, 1m30s, 2h, 1d or a number of seconds"


def parse_duration(value: object) -> float:
    """`15s`, `5m`, `1m30s`, `2h`, `1d`, `250ms` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as {_DURATION_EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value):
        parts = _PARTS.findall(value)
        seconds = (
            sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
            if parts
            else float(value)
        )
    else:
        raise ValueError(f"expected a duration such as {_DURATION_EXAMPLES}, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


# The schema must describe what a file may hold (`15s`), not the parsed float.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION_PATTERN},
            ],
            "description": _DURATION_EXAMPLES,
        }
    ),
]


def format_duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        # .nan or .inf would make every comparison with a threshold or bound false.
        allow_inf_nan=False,
    )


class AdjustmentType(StrEnum):
    CHANGE_IN_CAPACITY = "ChangeInCapacity"
    PERCENT_CHANGE_IN_CAPACITY = "PercentChangeInCapacity"
    EXACT_CAPACITY = "ExactCapacity"


class Statistic(StrEnum):
    AVERAGE = "Average"
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"


class StepAdjustment(_Spec):
    """One row of a step table; bounds are offsets from the policy's threshold."""

    metric_interval_lower_bound: float | None = None
    metric_interval_upper_bound: float | None = None
    scaling_adjustment: int

    @model_validator(mode="after")
    def _bounds_ordered(self) -> StepAdjustment:
        lower, upper = self.metric_interval_lower_bound, self.metric_interval_upper_bound
        if lower is None and upper is None:
            # AWS: "The upper and lower bound can't be null in the same step adjustment."
            raise ValueError(
                "a step needs metricIntervalLowerBound, metricIntervalUpperBound or both"
            )
        if lower is not None and upper is not None and lower >= upper:
            raise ValueError(
                f"metricIntervalLowerBound ({lower:g}) must be below "
                f"metricIntervalUpperBound ({upper:g})"
            )
        return self

    @property
    def lower(self) -> float:
        bound = self.metric_interval_lower_bound
        return float("-inf") if bound is None else bound

    @property
    def upper(self) -> float:
        bound = self.metric_interval_upper_bound
        return float("inf") if bound is None else bound


class StepPolicy(_Spec):
    """One Application Auto Scaling step policy together with its alarm threshold."""

    threshold: float
    adjustment_type: AdjustmentType = AdjustmentType.CHANGE_IN_CAPACITY
    min_adjustment_magnitude: int | None = Field(default=None, ge=1)
    cooldown: Duration = 300.0
    """AWS's default when a policy names none."""
    steps: tuple[StepAdjustment, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _table_is_valid(self) -> StepPolicy:
        if (
            self.min_adjustment_magnitude is not None
            and self.adjustment_type is not AdjustmentType.PERCENT_CHANGE_IN_CAPACITY
        ):
            raise _FieldError(
                "minAdjustmentMagnitude",
                f"applies only to PercentChangeInCapacity, not to {self.adjustment_type.value}",
            )
        if self.adjustment_type is AdjustmentType.EXACT_CAPACITY and any(
            step.scaling_adjustment < 0 for step in self.steps
        ):
            raise _FieldError("steps", "ExactCapacity steps need a scalingAdjustment of 0 or more")
        open_lower = sum(step.metric_interval_lower_bound is None for step in self.steps)
        open_upper = sum(step.metric_interval_upper_bound is None for step in self.steps)
        if open_lower > 1:
            raise _FieldError("steps", "at most one step may omit metricIntervalLowerBound")
        if open_upper > 1:
            raise _FieldError("steps", "at most one step may omit metricIntervalUpperBound")
        # AWS's StepAdjustment rules: a table that reaches past the threshold in one
        # direction must run on to infinity in that direction.
        if not open_lower and any(step.lower < 0 for step in self.steps):
            raise _FieldError(
                "steps",
                "a step has a negative metricIntervalLowerBound, so one step must omit "
                "metricIntervalLowerBound (the table must reach -infinity)",
            )
        if not open_upper and any(step.upper > 0 for step in self.steps):
            raise _FieldError(
                "steps",
                "a step has a positive metricIntervalUpperBound, so one step must omit "
                "metricIntervalUpperBound (the table must reach +infinity)",
            )
        for before, after in itertools.pairwise(self.ordered_steps):
            if before.upper > after.lower:
                raise _FieldError(
                    "steps",
                    f"steps overlap: {describe_interval(before)} and {describe_interval(after)}",
                )
            if before.upper < after.lower:
                raise _FieldError(
                    "steps", f"steps leave a gap between {before.upper:g} and {after.lower:g}"
                )
        return self

    @cached_property
    def ordered_steps(self) -> tuple[StepAdjustment, ...]:
        # Cached: the simulator and the report replay decide thousands of passes.
        return tuple(sorted(self.steps, key=lambda step: step.lower))


def describe_interval(step: StepAdjustment, *, below_threshold: bool = False) -> str:
    """The step's interval of offsets, bracketed as AWS includes its bounds on that side."""
    lower = "-inf" if step.metric_interval_lower_bound is None else f"{step.lower:g}"
    upper = "+inf" if step.metric_interval_upper_bound is None else f"{step.upper:g}"
    return f"({lower}, {upper}]" if below_threshold else f"[{lower}, {upper})"


TRACKING_SCALE_IN_RATIO = 0.9
"""Target tracking scales in only once its metric is below this share of the target: AWS
scales in gradually, on a metric clearly below the target (docs/semantics.md)."""


class TargetTracking(_Spec):
    """One Application Auto Scaling target tracking policy; the fields are those of AWS's
    TargetTrackingScalingPolicyConfiguration (the metric is the policy's own)."""

    target_value: float = Field(gt=0)
    """The value the policy keeps its metric at (AWS: above 0)."""
    scale_out_cooldown: Duration = 300.0
    """AWS's default for an ECS service."""
    scale_in_cooldown: Duration = 300.0
    """AWS's default for an ECS service."""
    disable_scale_in: bool = False
    """Never remove tasks; another policy may (AWS's DisableScaleIn)."""

    @property
    def scale_in_below(self) -> float:
        """The value below which the policy scales in."""
        return TRACKING_SCALE_IN_RATIO * self.target_value


ACTIVATION_HELP = (
    "Scale to zero (KEDA's activation): with minCapacity 0, the pool leaves 0 tasks for 1 only "
    "when this policy's metric is above this value, and goes from 1 to 0 only when every "
    "policy's with an activation is at or below its own. Between 1 and maxCapacity the "
    "policies decide as usual."
)

DEFAULT_POLICY = "default"
"""The name of the policy a pool's own metric, scaleOut, scaleIn and targetTracking make."""

POLICY_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ScalingPolicySpec(_Spec):
    """One scaling policy of a pool: its metric, window, and step tables or target tracking.

    A pool's own top-level fields make the first, named `default` (`WorkerPoolSpec.
    scaling_policies`); `spec.policies` lists the others.
    """

    name: str = Field(pattern=POLICY_NAME, max_length=63)
    metric: Metric
    statistic: Statistic = Statistic.AVERAGE
    window: Duration = 0.0
    scale_out: StepPolicy | None = None
    scale_in: StepPolicy | None = None
    target_tracking: TargetTracking | None = None
    activation: float | None = Field(default=None, description=ACTIVATION_HELP)

    @field_validator("metric", mode="before")
    @classmethod
    def _known_metric(cls, value: object) -> object:
        return _known_metric(value)

    @model_validator(mode="after")
    def _consistent(self) -> ScalingPolicySpec:
        if not (self.scale_out or self.scale_in or self.target_tracking):
            raise ValueError("a policy needs scaleOut, scaleIn (or both), or targetTracking")
        problem = _rules_problem(self)
        if problem is not None:
            raise problem
        return self

    @property
    def scales_out(self) -> bool:
        return self.scale_out is not None or self.target_tracking is not None

    @property
    def scales_in(self) -> bool:
        """Whether the policy can remove tasks: a pool scales in only when all such agree."""
        tracking = self.target_tracking
        return self.scale_in is not None or (tracking is not None and not tracking.disable_scale_in)

    @property
    def scale_out_cooldown(self) -> float:
        """How long this policy counts a scale-out cooldown (0 when it never scales out)."""
        if self.target_tracking is not None:
            return self.target_tracking.scale_out_cooldown
        return self.scale_out.cooldown if self.scale_out is not None else 0.0

    @property
    def scale_in_cooldown(self) -> float:
        """How long this policy waits after a scale-in (0 when it never scales in)."""
        if not self.scales_in:
            return 0.0
        if self.target_tracking is not None:
            return self.target_tracking.scale_in_cooldown
        return self.scale_in.cooldown if self.scale_in is not None else 0.0


def _known_metric(value: object) -> object:
    names = [metric.value for metric in Metric]
    if isinstance(value, str) and value not in names:
        raise ValueError(f"unknown metric {value!r}{_suggest(value, names)}")
    return value


def _rules_problem(policy: ScalingPolicySpec) -> _FieldError | None:
    """What is wrong with one policy's rules on their own, if anything."""
    if policy.target_tracking is not None and (policy.scale_out or policy.scale_in):
        return _FieldError(
            "targetTracking",
            "a policy is step scaling (scaleOut, scaleIn) or target tracking, not both; put "
            "the other in spec.policies under a name of its own",
        )
    for field, table, sign in (("scaleOut", policy.scale_out, 1), ("scaleIn", policy.scale_in, -1)):
        # ExactCapacity names a count, not a change: its direction depends on the count
        # then (a step pointing against its policy holds, docs/semantics.md).
        if table is None or table.adjustment_type is AdjustmentType.EXACT_CAPACITY:
            continue
        wrong = next((s for s in table.steps if s.scaling_adjustment * sign < 0), None)
        if wrong is not None:
            does, takes = ("removes", "0 or more") if sign > 0 else ("adds", "0 or less")
            return _FieldError(
                f"{field}.steps",
                f"a {field} step {does} tasks (scalingAdjustment {wrong.scaling_adjustment}); "
                f"{field} steps take {takes}",
            )
    return None


@dataclass(frozen=True)
class _Reach:
    """Where on its metric one side of a policy acts: beyond `bound` (at it, if inclusive)."""

    bound: float
    inclusive: bool
    field: str
    text: str


def _acting_steps(table: StepPolicy) -> list[StepAdjustment]:
    """The steps that change the count: a 0 step (AWS's band around a threshold) does not;
    an ExactCapacity step may, whatever its number."""
    exact = table.adjustment_type is AdjustmentType.EXACT_CAPACITY
    return [step for step in table.steps if exact or step.scaling_adjustment != 0]


def _scale_out_reach(policy: ScalingPolicySpec) -> _Reach | None:
    if policy.scale_out is not None:
        acting = _acting_steps(policy.scale_out)
        if not acting:
            return None
        # The alarm fires at the threshold; the first step that adds may start above it.
        value = policy.scale_out.threshold + max(0.0, min(step.lower for step in acting))
        return _Reach(value, True, "scaleOut.threshold", f"≥ {value:g}")
    if policy.target_tracking is not None:
        target = policy.target_tracking.target_value
        return _Reach(target, False, "targetTracking.targetValue", f"> {target:g}")
    return None


def _scale_in_reach(policy: ScalingPolicySpec) -> _Reach | None:
    if policy.scale_in is not None:
        acting = _acting_steps(policy.scale_in)
        if not acting:
            return None
        value = policy.scale_in.threshold + min(0.0, max(step.upper for step in acting))
        return _Reach(value, True, "scaleIn.threshold", f"≤ {value:g}")
    tracking = policy.target_tracking
    if tracking is not None and not tracking.disable_scale_in:
        below = tracking.scale_in_below
        return _Reach(below, False, "targetTracking.targetValue", f"< {below:g}")
    return None


def _flapping(policies: tuple[ScalingPolicySpec, ...], paths: Mapping[str, str]) -> None:
    """Refuse a scale-in that acts at a value where a scale-out acts, on one metric.

    Within a policy and across policies that read the same metric with the same statistic:
    the count would go out on one pass and in on a later one at the same load. Where a
    step table acts is where its first step that changes the count starts, so AWS's own
    example (both thresholds at 50, 0 steps within 10 of them) is no overlap. `paths`
    gives each policy's field path prefix ("" for the pool's own, "policies.1.").
    """
    for scaling_in in policies:
        inward = _scale_in_reach(scaling_in)
        if inward is None:
            continue
        for scaling_out in policies:
            outward = _scale_out_reach(scaling_out)
            same = (scaling_out.metric, scaling_out.statistic) == (
                scaling_in.metric,
                scaling_in.statistic,
            )
            if outward is None or not same:
                continue
            if outward.bound < inward.bound or (
                outward.bound == inward.bound and outward.inclusive and inward.inclusive
            ):
                whose = (
                    "this policy"
                    if scaling_out is scaling_in
                    else f"policy {scaling_out.name!r} ({paths[scaling_out.name]}{outward.field})"
                )
                metric = f"{scaling_in.metric.value} ({scaling_in.statistic.value})"
                raise _FieldError(
                    paths[scaling_in.name] + inward.field,
                    f"scales in at {metric} {inward.text}, where {whose} scales out "
                    f"({outward.text}): the count would flap; keep every scale-in below "
                    "every scale-out on the same metric",
                )


class EcsTarget(_Spec):
    cluster: str = Field(min_length=1)
    service: str = Field(min_length=1)


class FallbackBehavior(StrEnum):
    """KEDA's fallback behaviours, applied to a pool whose passes keep failing."""

    STATIC = "static"
    """The count becomes `capacity`: raised to it, or lowered to it when the scale-in is
    safe (the scale-in guards, and safeScaleIn's busy workers known)."""
    CURRENT_REPLICAS = "currentReplicas"
    """The count stays as it is (within the bounds); no capacity."""
    CURRENT_REPLICAS_IF_HIGHER = "currentReplicasIfHigher"
    """max(current, capacity): never lower. The default (KEDA's is static)."""
    CURRENT_REPLICAS_IF_LOWER = "currentReplicasIfLower"
    """min(current, capacity): never higher; lowered as static lowers."""


class FallbackSpec(_Spec):
    failure_threshold: int = Field(default=3, ge=1)
    capacity: int | None = Field(default=None, ge=0)
    behavior: FallbackBehavior = Field(
        default=FallbackBehavior.CURRENT_REPLICAS_IF_HIGHER,
        description="What the count becomes once failureThreshold passes in a row failed "
        "(KEDA's fallback.behavior): currentReplicasIfHigher (the default) max(current, "
        "capacity), static capacity, currentReplicasIfLower min(current, capacity), "
        "currentReplicas the count as it is. A lower count waits for a safe scale-in.",
    )

    @model_validator(mode="after")
    def _capacity_fits_behavior(self) -> FallbackSpec:
        explicit = "behavior" in self.model_fields_set
        if self.behavior is FallbackBehavior.CURRENT_REPLICAS:
            if self.capacity is not None:
                raise _FieldError(
                    "capacity", "currentReplicas keeps the count as it is: remove capacity"
                )
        elif explicit and self.capacity is None:
            raise _FieldError(
                "capacity", f"behavior {self.behavior.value} needs a capacity to fall back to"
            )
        return self

    @property
    def applies(self) -> bool:
        """Whether anything but holding happens once the threshold is reached."""
        return self.capacity is not None or self.behavior is FallbackBehavior.CURRENT_REPLICAS


SCHEDULE_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ScheduleSpec(_Spec):
    """One scheduled action (AWS's scheduled scaling): new bounds from its time on."""

    name: str = Field(pattern=SCHEDULE_NAME, max_length=63)
    schedule: str = Field(
        description="at(yyyy-mm-ddThh:mm:ss) once, or cron(Minutes Hours Day-of-month Month "
        "Day-of-week Year) as AWS writes it (EventBridge's six fields), in `timezone`."
    )
    timezone: str = Field(default="UTC", description="An IANA time zone name.")
    min_capacity: int | None = Field(default=None, ge=0)
    max_capacity: int | None = Field(default=None, ge=0)

    @field_validator("schedule")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_expression(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _sets_a_bound(self) -> ScheduleSpec:
        if self.min_capacity is None and self.max_capacity is None:
            raise ValueError("a schedule sets minCapacity, maxCapacity or both")
        if (
            self.min_capacity is not None
            and self.max_capacity is not None
            and self.min_capacity > self.max_capacity
        ):
            raise _FieldError(
                "minCapacity",
                f"minCapacity ({self.min_capacity}) is greater than maxCapacity "
                f"({self.max_capacity})",
            )
        return self

    def action(self) -> ScheduledAction:
        return ScheduledAction(
            self.name,
            parse_expression(self.schedule),
            self.timezone,
            self.min_capacity,
            self.max_capacity,
        )


# --- alarms (`celery-scaler alarms plan|apply|export`, see alarms.py) -------------------

MAX_ALARM_WINDOW_SECONDS = 86400
"""CloudWatch: period x evaluationPeriods may not exceed one day."""


class AlarmSpec(_Spec):
    """One CloudWatch alarm; created when enabled and it has a threshold."""

    enabled: bool = True
    threshold: float | None = None
    period: Duration | None = None
    """None: the controller's interval rounded up to whole minutes (at least 1 minute)."""
    evaluation_periods: int = Field(default=5, ge=1)
    datapoints_to_alarm: int | None = Field(default=None, ge=1)
    """None: every one of evaluationPeriods."""

    @model_validator(mode="after")
    def _cloudwatch_accepts(self) -> AlarmSpec:
        if self.period is not None and not (
            self.period in (10, 20, 30) or (self.period >= 60 and self.period % 60 == 0)
        ):
            raise _FieldError("period", "CloudWatch takes 10s, 20s, 30s or a multiple of 1m")
        if self.datapoints_to_alarm is not None and (
            self.datapoints_to_alarm > self.evaluation_periods
        ):
            raise _FieldError(
                "datapointsToAlarm",
                f"{self.datapoints_to_alarm} is more than evaluationPeriods "
                f"({self.evaluation_periods})",
            )
        return self


class CountAlarmSpec(AlarmSpec):
    """An alarm on a counter (the increase per pass), summed over five minutes."""

    period: Duration | None = 300.0
    evaluation_periods: int = Field(default=1, ge=1)


class FailedTasksAlarmSpec(CountAlarmSpec):
    threshold: float | None = 10.0


class RetriedTasksAlarmSpec(CountAlarmSpec):
    threshold: float | None = 50.0


class NotKeepingUpAlarmSpec(AlarmSpec):
    evaluation_periods: int = Field(default=15, ge=1)


class HeartbeatAlarmSpec(AlarmSpec):
    evaluation_periods: int = Field(default=3, ge=1)


class FallbackPolicySpec(AlarmSpec):
    """A scale-out-only Application Auto Scaling step policy and the alarm that triggers it.

    Step bounds are offsets above the alarm's threshold, as in `scaleOut`.
    """

    evaluation_periods: int = Field(default=3, ge=1)
    adjustment_type: AdjustmentType = AdjustmentType.CHANGE_IN_CAPACITY
    min_adjustment_magnitude: int | None = Field(default=None, ge=1)
    cooldown: Duration = 60.0
    steps: tuple[StepAdjustment, ...] = Field(
        default=(StepAdjustment(metric_interval_lower_bound=0, scaling_adjustment=1),),
        min_length=1,
    )

    @model_validator(mode="after")
    def _scale_out_only(self) -> FallbackPolicySpec:
        if self.adjustment_type is AdjustmentType.EXACT_CAPACITY:
            raise _FieldError(
                "adjustmentType",
                "ExactCapacity can set a count below the current one; the fallback only adds "
                "(ChangeInCapacity or PercentChangeInCapacity)",
            )
        if any(step.scaling_adjustment <= 0 for step in self.steps):
            raise _FieldError("steps", "the fallback only scales out: every scalingAdjustment > 0")
        if any(step.lower < 0 for step in self.steps) or min(s.lower for s in self.steps) != 0:
            raise _FieldError(
                "steps",
                "the alarm fires at or above the threshold: the steps start at "
                "metricIntervalLowerBound 0 and none lies below it",
            )
        self.step_policy(0.0)  # AWS's table rules, as for scaleOut
        return self

    def step_policy(self, threshold: float) -> StepPolicy:
        """The policy as the controller's own step-policy model (also the simulator's)."""
        try:
            return StepPolicy(
                threshold=threshold,
                adjustment_type=self.adjustment_type,
                min_adjustment_magnitude=self.min_adjustment_magnitude,
                cooldown=self.cooldown,
                steps=self.steps,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            cause = error.get("ctx", {}).get("error")
            field = cause.field if isinstance(cause, _FieldError) else "steps"
            raise _FieldError(field, str(error["msg"]).removeprefix("Value error, ")) from None


class CpuFallbackSpec(FallbackPolicySpec):
    threshold: float | None = 80.0


class FallbackScalingSpec(_Spec):
    cpu: CpuFallbackSpec = Field(
        default=CpuFallbackSpec(),
        description=(
            "The ECS service's CPUUtilization (AWS/ECS), counted only while the controller's "
            "heartbeat is missing: busy Celery workers run hot whenever the controller keeps "
            "a backlog, so CPU alone would fight it. Threshold in percent."
        ),
    )
    queue_depth: FallbackPolicySpec = Field(
        default=FallbackPolicySpec(),
        description=(
            "SQS brokers: the queues' ApproximateNumberOfMessagesVisible (AWS/SQS). "
            "Threshold null: scaleOut.threshold x maxCapacity, a depth the controller "
            "never holds while it keeps up."
        ),
    )


class AlarmsSpec(_Spec):
    """The CloudWatch alarms and the fallback `alarms apply` keeps for a pool.

    In the Controller document: defaults for every pool; in a WorkerPool: overrides,
    merged field by field.
    """

    enabled: bool = True
    notify: tuple[str, ...] = Field(
        default=(),
        description="SNS topic ARNs (or other alarm action ARNs) told when an alarm fires.",
    )
    notify_on_ok: bool = True
    """Tell `notify` when an alarm returns to OK as well."""
    active_tasks_high: AlarmSpec = Field(
        default=AlarmSpec(), description="active_tasks (Average); off until given a threshold."
    )
    reserved_tasks_high: AlarmSpec = Field(
        default=AlarmSpec(),
        description="reserved_tasks (Average): prefetched, not started (queue clogging); "
        "off until given a threshold.",
    )
    failed_tasks_high: FailedTasksAlarmSpec = Field(
        default=FailedTasksAlarmSpec(), description="failed_tasks increases (Sum) per period."
    )
    retried_tasks_high: RetriedTasksAlarmSpec = Field(
        default=RetriedTasksAlarmSpec(), description="retried_tasks increases (Sum) per period."
    )
    memory_high: AlarmSpec = Field(
        default=AlarmSpec(),
        description="memory_usage (Maximum), megabytes; off until given a threshold.",
    )
    too_few_workers: AlarmSpec = Field(
        default=AlarmSpec(),
        description="worker_status (Maximum) below the threshold; null: minCapacity.",
    )
    queue_latency_high: AlarmSpec = Field(
        default=AlarmSpec(),
        description="queue_latency_seconds (Maximum), Redis only; off until given a threshold.",
    )
    not_keeping_up: NotKeepingUpAlarmSpec = Field(
        default=NotKeepingUpAlarmSpec(),
        description="The pool's metric at or above the threshold (null: scaleOut.threshold) "
        "while desired_capacity is below maxCapacity, for every period: the controller "
        "is not keeping up.",
    )
    fallback: FallbackScalingSpec = FallbackScalingSpec()

    @field_validator("notify")
    @classmethod
    def _arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not arn.startswith("arn:") or arn.count(":") < 5:
                raise ValueError(
                    f"expected an ARN such as arn:aws:sns:REGION:ACCOUNT:TOPIC, got {arn!r}"
                )
        return value


class ControllerAlarmsSpec(AlarmsSpec):
    name_prefix: str = Field(
        default="celery-scaler",
        pattern=r"^[A-Za-z0-9_.-]+$",
        max_length=64,
        description="Starts every alarm and policy name; names the owner in their tags, so "
        "controllers with different prefixes never touch each other's.",
    )
    heartbeat_missing: HeartbeatAlarmSpec = Field(
        default=HeartbeatAlarmSpec(),
        description="controller_heartbeat (SampleCount) below 1, missing data breaching: the "
        "controller is gone. One for the controller, not per pool.",
    )


class WorkerPoolSpec(_Spec):
    ecs: EcsTarget
    queues: tuple[str, ...] = Field(default=("celery",), min_length=1)
    min_capacity: int = Field(default=1, ge=0)
    max_capacity: int = Field(default=20, ge=0)
    metric: Metric = Metric.BACKLOG_PER_TASK
    statistic: Statistic = Statistic.AVERAGE
    window: Duration = 0.0
    scale_out: StepPolicy | None = None
    scale_in: StepPolicy | None = None
    target_tracking: TargetTracking | None = None
    policies: tuple[ScalingPolicySpec, ...] = Field(
        default=(),
        description="More scaling policies, each on its own metric and window; with the "
        "pool's own (named default) they combine as AWS combines a target's policies.",
    )
    activation: float | None = Field(default=None, description=ACTIVATION_HELP)
    schedules: tuple[ScheduleSpec, ...] = Field(
        default=(),
        description="Scheduled actions (AWS's scheduled scaling): each sets minCapacity, "
        "maxCapacity or both at its time, and they hold until another action sets them.",
    )
    safe_scale_in: bool = True
    protect_busy_tasks: bool = False
    """Keep ECS task scale-in protection on tasks whose worker is busy (see protection.py)."""
    task_protection: Duration = 3600.0
    """How long each protection lasts (ECS allows 1 minute to 48 hours); renewed while busy."""
    drain_scale_in: bool | None = Field(
        default=None,
        description="Drain-then-remove (core/drain.py): a scale-in first tells the workers it "
        "removes to stop consuming, keeps scale-in protection on every other task, waits until "
        "they are idle and only then lowers desiredCount, so ECS stops no task mid-work. "
        "Default (null): on for Redis and RabbitMQ; SQS has no remote control to do it.",
    )
    drain_timeout: Duration = Field(
        default=600.0,
        description="How long a drain waits for its workers to finish their tasks before it "
        "gives up, restores their consumers and reports it (the scale-in is tried again later).",
    )
    fallback: FallbackSpec = FallbackSpec()
    alarms: AlarmsSpec = AlarmsSpec()
    """Overrides of the Controller's `alarms` for this pool."""

    @field_validator("metric", mode="before")
    @classmethod
    def _known_metric(cls, value: object) -> object:
        return _known_metric(value)

    @model_validator(mode="after")
    def _consistent(self) -> WorkerPoolSpec:
        if self.min_capacity > self.max_capacity:
            raise _FieldError(
                "minCapacity",
                f"minCapacity ({self.min_capacity}) is greater than "
                f"maxCapacity ({self.max_capacity})",
            )
        if self.max_capacity == 0:
            raise _FieldError(
                "maxCapacity", "minCapacity and maxCapacity are both 0: the pool could never run"
            )
        self._check_policies()
        if (
            self.fallback.capacity is not None
            and not self.min_capacity <= self.fallback.capacity <= self.max_capacity
        ):
            raise _FieldError(
                "fallback.capacity",
                f"{self.fallback.capacity} must lie within [minCapacity, maxCapacity] = "
                f"[{self.min_capacity}, {self.max_capacity}]",
            )
        self._check_schedules()
        if not 60 <= self.task_protection <= 48 * 3600:
            raise _FieldError(
                "taskProtection", "ECS protects a task for 1 minute to 48 hours (1m to 48h)"
            )
        if not 0 < self.drain_timeout <= 48 * 3600:
            raise _FieldError(
                "drainTimeout",
                "longer than 0s and at most 48h (ECS protects the other tasks meanwhile)",
            )
        return self

    def _check_schedules(self) -> None:
        names = [schedule.name for schedule in self.schedules]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _FieldError(
                    f"schedules.{index}.name", f"{name!r} is taken by another schedule"
                )
        reaches_zero = self.min_capacity == 0 or any(s.min_capacity == 0 for s in self.schedules)
        if self.activation_policies and not reaches_zero:
            field = (
                "activation"
                if self.activation is not None
                else f"policies.{self.policies.index(self.activation_policies[0])}.activation"
            )
            raise _FieldError(
                field,
                "activation decides only between 0 and 1 tasks: it needs minCapacity 0 (the "
                "pool's or a schedule's)",
            )

    def _check_policies(self) -> None:
        own = self.scale_out or self.scale_in or self.target_tracking
        if own:
            # The pool's own rules, checked as an entry of `policies` checks itself.
            problem = _rules_problem(self._own_policy())
            if problem is not None:
                raise problem
        else:
            unread = [
                f
                for f in ("metric", "statistic", "window", "activation")
                if f in self.model_fields_set
            ]
            if unread and self.policies:
                raise _FieldError(
                    unread[0],
                    "no policy reads it: the pool has no scaleOut, scaleIn or targetTracking "
                    "of its own, and each entry of policies names its own",
                )
        if not own and not self.policies:
            raise ValueError(
                "a pool needs a policy: scaleOut, scaleIn (or both), targetTracking, or an "
                "entry in policies"
            )
        paths = {DEFAULT_POLICY: ""}
        for index, policy in enumerate(self.policies):
            if policy.name in paths:
                taken = (
                    "names the pool's own policy"
                    if policy.name == DEFAULT_POLICY
                    else ("is taken by another policy")
                )
                raise _FieldError(f"policies.{index}.name", f"{policy.name!r} {taken}")
            paths[policy.name] = f"policies.{index}."
        _flapping(self.scaling_policies, paths)

    def _own_policy(self) -> ScalingPolicySpec:
        return ScalingPolicySpec.model_construct(
            name=DEFAULT_POLICY,
            metric=self.metric,
            statistic=self.statistic,
            window=self.window,
            scale_out=self.scale_out,
            scale_in=self.scale_in,
            target_tracking=self.target_tracking,
            activation=self.activation,
        )

    @cached_property
    def scaling_policies(self) -> tuple[ScalingPolicySpec, ...]:
        """Every policy of the pool in order: its own (`default`) first, when it has one.

        Cached: the simulator and the report replay decide thousands of passes.
        """
        own = self.scale_out or self.scale_in or self.target_tracking
        return ((self._own_policy(),) if own else ()) + self.policies

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # pydantic copies the instance's __dict__, where `scaling_policies` is cached: a
        # copy with other rules must work its policies out anew.
        copied = super().model_copy(update=update, deep=deep)
        for cached in ("scaling_policies", "activation_policies", "scheduled_actions"):
            copied.__dict__.pop(cached, None)
        return copied

    @cached_property
    def scheduled_actions(self) -> tuple[ScheduledAction, ...]:
        """`schedules`, parsed once (the simulator asks for the bounds every pass)."""
        return tuple(schedule.action() for schedule in self.schedules)

    def bounds_at(self, now: float) -> Bounds:
        """minCapacity and maxCapacity in force at `now`: the schedules' or the pool's own."""
        return bounds_at(self.min_capacity, self.max_capacity, self.scheduled_actions, now)

    @cached_property
    def activation_policies(self) -> tuple[ScalingPolicySpec, ...]:
        """The policies with an activation value: they decide 0 ↔ 1 where minCapacity is 0.

        Cached, as `scaling_policies`: every pass asks for them.
        """
        return tuple(p for p in self.scaling_policies if p.activation is not None)

    def scaling_policy(self, name: str | None) -> ScalingPolicySpec | None:
        return next((p for p in self.scaling_policies if p.name == name), None)


class Metadata(_Spec):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)


class CloudWatchSpec(_Spec):
    enabled: bool = True
    namespace: str = Field(default="CeleryMetrics", min_length=1, max_length=255)
    per_worker_metrics: bool = False
    mode: Literal["api", "emf"] = "api"
    """api: PutMetricData; emf: Embedded Metric Format lines on stdout (awslogs driver)."""
    high_resolution: bool = False
    """StorageResolution 1 (one-second metrics) when the interval is under a minute."""


class PrometheusSpec(_Spec):
    enabled: bool = True
    port: int = Field(default=9808, ge=0, le=65535)
    """0 picks a free port (the controller logs which)."""


class LeaderElectionSpec(_Spec):
    enabled: bool = False
    table: str = "celery-scaler-leases"
    lease_duration: Duration = 30.0


class SqsSpec(_Spec):
    queue_name_prefix: str = ""
    """Celery's `broker_transport_options['queue_name_prefix']`, so names match the app's.
    `brokerTransportOptions.queue_name_prefix` says the same; when both are set they must
    agree (see `ControllerSpec.sqs_queue_name_prefix`)."""


BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "sqs")


class ControllerSpec(_Spec):
    broker: str = "redis://localhost:6379/0"
    interval: Duration = 15.0
    inspect_timeout: Duration = 1.0
    control_exchange: str = Field(default="celery", min_length=1)
    """The workers' Celery `control_exchange` setting: inspect only reaches workers using it."""
    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    """Exactly the app's Celery `broker_transport_options` (priority steps, separator,
    global_keyprefix, visibility_timeout, ...): the queue reader, inspect and the event
    receiver must see the broker's keys as the app lays them out."""
    rabbitmq_management_url: str | None = None
    """RabbitMQ's management API (http://user:pass@host:15672): unacknowledged messages."""
    region: str | None = None
    cloudwatch: CloudWatchSpec = CloudWatchSpec()
    prometheus: PrometheusSpec = PrometheusSpec()
    leader_election: LeaderElectionSpec = LeaderElectionSpec()
    sqs: SqsSpec = SqsSpec()
    alarms: ControllerAlarmsSpec = ControllerAlarmsSpec()

    @field_validator("broker")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in BROKER_SCHEMES:
            raise ValueError(
                f"broker URL scheme {scheme or '(none)'!r} is not one of "
                f"{', '.join(BROKER_SCHEMES)}"
            )
        return value

    @field_validator("interval", "inspect_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @property
    def pass_deadline(self) -> float:
        """Seconds one pool's pass may take: its interval, but room for inspect and a write.

        An observation not in by then fails that pool's pass (the others go on), and the
        AWS clients' timeouts are sized to it (adapters/aws.py client_config).
        """
        # The inspect round waits up to one timeout for ECS's running counts, then up to
        # one for replies; a few seconds more leave room for UpdateService and the tags.
        return max(self.interval, 2 * self.inspect_timeout + 3.0)

    @property
    def sqs_queue_name_prefix(self) -> str:
        """The SQS queue name prefix: `brokerTransportOptions.queue_name_prefix`, where the
        application's Celery configuration has it, else `sqs.queueNamePrefix`."""
        given = self.broker_transport_options.get("queue_name_prefix")
        return given if isinstance(given, str) else self.sqs.queue_name_prefix

    @property
    def broker_kind(self) -> Literal["redis", "amqp", "sqs"]:
        scheme = urlsplit(self.broker).scheme
        if scheme.startswith("redis"):
            return "redis"
        return "sqs" if scheme == "sqs" else "amqp"

    def drains(self, pool: WorkerPoolSpec) -> bool:
        """Whether `pool` scales in by drain-then-remove: by default wherever Celery's
        remote control can drain a worker (Redis, RabbitMQ), never on SQS."""
        return self.broker_kind != "sqs" and pool.drain_scale_in is not False

    def guards_tasks(self, pool: WorkerPoolSpec) -> bool:
        """Whether the controller sets ECS task scale-in protection for `pool`."""
        return pool.protect_busy_tasks or self.drains(pool)


class ControllerDocument(_Spec):
    api_version: Literal["celery-scaler/v1"]
    kind: Literal["Controller"]
    metadata: Metadata | None = None
    spec: ControllerSpec = ControllerSpec()


class WorkerPoolDocument(_Spec):
    api_version: Literal["celery-scaler/v1"]
    kind: Literal["WorkerPool"]
    metadata: Metadata
    spec: WorkerPoolSpec


class WorkerPool(BaseModel):
    """A pool as the controller uses it: its name and its spec."""

    model_config = ConfigDict(frozen=True)

    name: str
    spec: WorkerPoolSpec


class Config(BaseModel):
    model_config = ConfigDict(frozen=True)

    controller: ControllerSpec
    pools: tuple[WorkerPool, ...]

    def pool(self, name: str) -> WorkerPool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        known = ", ".join(pool.name for pool in self.pools)
        raise ConfigError(f"no WorkerPool named {name!r} (the configuration has: {known})")


KINDS: dict[str, type[ControllerDocument] | type[WorkerPoolDocument]] = {
    "Controller": ControllerDocument,
    "WorkerPool": WorkerPoolDocument,
}


def parse_config(text: str, source: str, env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a configuration file's text; `source` names it in errors."""
    try:
        raw_documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None

    controller: ControllerSpec | None = None
    controller_label = source
    pools: list[WorkerPool] = []
    labels: dict[str, str] = {}
    for index, raw in enumerate(raw_documents, start=1):
        label = f"{source}: document {index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{label}: expected a mapping with apiVersion, kind and spec")
        kind = raw.get("kind")
        if raw.get("apiVersion") != API_VERSION:
            raise ConfigError(
                f"{label}: apiVersion: expected {API_VERSION!r}, got {raw.get('apiVersion')!r}"
            )
        if kind not in KINDS:
            raise ConfigError(f"{label}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        metadata = raw.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        label = f"{label} ({kind}{'/' + name if name else ''})"
        try:
            document = KINDS[kind].model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{label}: {_first_error(exc, KINDS[kind])}") from None
        if isinstance(document, ControllerDocument):
            if controller is not None:
                raise ConfigError(f"{label}: a second Controller document; only one is allowed")
            controller = document.spec
            controller_label = label
        else:
            if any(pool.name == document.metadata.name for pool in pools):
                raise ConfigError(
                    f"{label}: metadata.name: a WorkerPool named {document.metadata.name!r} "
                    "is already defined"
                )
            pools.append(WorkerPool(name=document.metadata.name, spec=document.spec))
            labels[document.metadata.name] = label

    if not pools:
        raise ConfigError(f"{source}: no WorkerPool document; the controller has nothing to scale")
    controller = controller or ControllerSpec()
    broker_override = (env or {}).get(BROKER_ENV)
    if broker_override:
        try:
            controller = ControllerSpec.model_validate(
                {**controller.model_dump(by_alias=True), "broker": broker_override}
            )
        except ValidationError as exc:
            raise ConfigError(f"{BROKER_ENV}: {_first_error(exc, ControllerSpec)}") from None
    _check_broker_options(controller, controller_label)
    for pool in pools:
        _check_broker_can_give(controller, pool, labels[pool.name])
        try:
            pool_alarms(controller, pool.spec)
        except ValidationError as exc:
            raise ConfigError(
                f"{labels[pool.name]}: spec.alarms (over the Controller's): "
                f"{_first_error(exc, AlarmsSpec)}"
            ) from None
    return Config(controller=controller, pools=tuple(pools))


def pool_alarms(controller: ControllerSpec, pool: WorkerPoolSpec) -> AlarmsSpec:
    """A pool's alarms: the Controller's, with the fields the pool sets over them."""
    controller_only = set(ControllerAlarmsSpec.model_fields) - set(AlarmsSpec.model_fields)
    base = controller.alarms.model_dump(by_alias=True, exclude_unset=True, exclude=controller_only)
    return AlarmsSpec.model_validate(
        _merged(base, pool.alarms.model_dump(by_alias=True, exclude_unset=True))
    )


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on `base`, mappings merged key by key; anything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = (
            _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
        )
    return merged


def _check_broker_options(controller: ControllerSpec, label: str) -> None:
    """The transport options kombu takes for this broker, and the management API's URL.

    Checked once the broker is final (`CELERY_SCALER_BROKER_URL` may change its kind).
    """
    kind = controller.broker_kind
    for name, value in controller.broker_transport_options.items():
        problem = _transport_option_problem(kind, name, value)
        if problem:
            raise ConfigError(f"{label}: spec.brokerTransportOptions.{name}: {problem}")
    given = controller.broker_transport_options.get("queue_name_prefix")
    if given is not None and controller.sqs.queue_name_prefix not in ("", given):
        raise ConfigError(
            f"{label}: spec.sqs.queueNamePrefix: {controller.sqs.queue_name_prefix!r} differs "
            f"from brokerTransportOptions.queue_name_prefix {given!r}; set one of them"
        )
    url = controller.rabbitmq_management_url
    if url is not None:
        if kind != "amqp":
            raise ConfigError(
                f"{label}: spec.rabbitmqManagementUrl: only a RabbitMQ broker has a management "
                f"API; the broker is {kind}"
            )
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(
                f"{label}: spec.rabbitmqManagementUrl: expected http://user:password@host:15672, "
                f"got {mask_url(url)!r}"
            )


def _transport_option_problem(kind: str, name: str, value: object) -> str | None:
    """Why kombu's `kind` transport would not take this option as given; None if it would."""
    known = KNOWN_OPTIONS[kind]
    if name not in known:
        return f"unknown option for kombu's {TRANSPORT_NAMES[kind]} transport" + _suggest(
            name, sorted(known)
        )
    if name in TEXT_OPTIONS and not isinstance(value, str):
        return f"expected text, got {value!r}"
    if name == "ack_emulation" and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    steps = value if isinstance(value, list) else []
    if name == "priority_steps" and not (
        steps and all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
    ):
        return f"expected a list of whole numbers such as [0, 3, 6, 9], got {value!r}"
    return None


def _check_broker_can_give(controller: ControllerSpec, pool: WorkerPool, label: str) -> None:
    kind = controller.broker_kind
    spec = pool.spec
    read = [(f"spec.policies.{index}.metric", p.metric) for index, p in enumerate(spec.policies)]
    if spec.scaling_policies[0].name == DEFAULT_POLICY:
        read.insert(0, ("spec.metric", spec.metric))
    for path, metric in read:
        problem = _metric_problem(controller, metric)
        if problem:
            raise ConfigError(f"{label}: {path}: {problem}")
    if kind == "sqs" and "safe_scale_in" in pool.spec.model_fields_set and pool.spec.safe_scale_in:
        raise ConfigError(
            f"{label}: spec.safeScaleIn: needs Celery's remote control (inspect) to see busy "
            "workers, which the SQS transport does not have; remove it or set it to false"
        )
    if kind == "sqs" and pool.spec.drain_scale_in:
        raise ConfigError(
            f"{label}: spec.drainScaleIn: needs Celery's remote control (cancel_consumer) to "
            "drain a worker, which the SQS transport does not have; the workers protect their "
            "own tasks while busy instead (celery_scaler.instrument)"
        )
    if kind == "sqs" and pool.spec.protect_busy_tasks:
        raise ConfigError(
            f"{label}: spec.protectBusyTasks: needs Celery's remote control (inspect) to see "
            "busy workers, which the SQS transport does not have"
        )


def _metric_problem(controller: ControllerSpec, metric: Metric) -> str | None:
    """Why this broker cannot give `metric`, if it cannot."""
    kind = controller.broker_kind
    if metric is Metric.UNACKED_TASKS and kind == "amqp" and not controller.rabbitmq_management_url:
        return (
            "unacked_tasks is read from RabbitMQ's management API; set the Controller's "
            "rabbitmqManagementUrl"
        )
    only_on = {Metric.DELAYED_TASKS: "sqs", Metric.UNSTAMPED_MESSAGES: "redis"}
    if metric in only_on and kind != only_on[metric]:
        return f"{metric.value} is read on {only_on[metric]} only; the {kind} broker cannot give it"
    # Latency first: on SQS its reason is the missing stamps, not the missing inspect.
    if metric in LATENCY_METRICS and kind != "redis":
        return (
            f"{metric.value} is read from message stamps on Redis only; the {kind} broker "
            "cannot give it"
        )
    if kind == "sqs" and metric not in BROKER_ONLY_METRICS:
        return (
            f"{metric.value} needs Celery's remote control (inspect), which the SQS transport "
            "does not have; use queue_depth or backlog_per_task"
        )
    return None


def _first_error(exc: ValidationError, model: type[BaseModel]) -> str:
    errors = exc.errors()
    # A misspelt key also leaves its real one missing: name the typo, which explains both.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = error["loc"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _FieldError):
        loc = (*loc, *cause.field.split("."))
    path = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown field{_suggest(str(loc[-1]), _fields_at(model, loc[:-1]))}"
    if error["type"] == "missing":
        return f"{path}: required field is missing"
    return f"{path}: {message}" if path else message


def _fields_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str]:
    """The field names allowed at `loc`, to suggest the one a typo meant."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = next(
            (info for name, info in model.model_fields.items() if part in (info.alias, name)),
            None,
        )
        model = _model_in(field.annotation) if field else None
    return [info.alias or name for name, info in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation such as `X | None` or `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in getattr(annotation, "__args__", ()):
        if (found := _model_in(inner)) is not None:
            return found
    return None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def mask_url(url: str) -> str:
    """The URL with any password replaced, for logs and output."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. an unclosed IPv6 bracket: show nothing rather than a secret
        return "(unparseable URL)"
    if password is None:
        return url
    # Rebuild from the netloc text so the host keeps its case, brackets and port.
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def json_schema() -> dict[str, Any]:
    """JSON Schema for one document of the configuration file (editors, CI checks)."""
    document = Annotated[ControllerDocument | WorkerPoolDocument, Field(discriminator="kind")]
    schema = TypeAdapter(document).json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "celery-scaler configuration document",
        **schema,
    }
