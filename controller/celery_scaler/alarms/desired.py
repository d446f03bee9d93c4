"""The CloudWatch alarms and the Application Auto Scaling fallback the controller owns (pure).

`desired(config)` builds every resource the configuration asks for, each as the body of
the API request that makes it (PutMetricAlarm, RegisterScalableTarget, PutScalingPolicy);
the adapters read what exists into the same shape (`normalize_*`), and `diff(desired,
actual)` compares the two, pip-tools style, into a `Plan`. Applying a plan is
sync.py's job; rendering one, formats.py's.

Ownership: an alarm is this controller's when its tags say so (`celery-scaler.io/
managed-by` and `…/controller`, the `namePrefix`); a scalable target when the ECS
service it scales carries `celery-scaler.io/scalable-target=<namePrefix>/<pool>` (the
local AWS API keeps no tags on scalable targets, and operator state lives on the service
anyway, see docs/faults.md); a scaling policy when it sits on an owned target. Nothing
else is touched, and a name the configuration wants that exists without that mark is a
conflict.

Periods: the controller publishes every `interval`, so a period shorter than it would
see gaps; alarms on its metrics default to the interval rounded up to whole minutes
(60 s for the default 15 s interval), and the heartbeat alarm needs every one of 3
periods empty before it fires (3 minutes by default: a slow pass is not an outage).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from celery_scaler.core import autoscaling
from celery_scaler.core.autoscaling import (
    DESIRED_COUNT,
    ECS_NAMESPACE,
    SCALABLE_TARGET,
    target_marker,
)
from celery_scaler.core.config import (
    AlarmSpec,
    AlarmsSpec,
    Config,
    ControllerSpec,
    FallbackPolicySpec,
    StepPolicy,
    WorkerPool,
    WorkerPoolSpec,
    format_duration,
    pool_alarms,
)
from celery_scaler.core.names import sqs_queue_name
from celery_scaler.core.state import PREFIX

MANAGED_BY = PREFIX + "managed-by"
CONTROLLER = PREFIX + "controller"
POOL = PREFIX + "pool"
MANAGED_BY_VALUE = "celery-scaler"
MANAGED_NOTE = "Managed by celery-scaler (`alarms apply`): edits are reverted."
"""Ends every alarm's description, so people who find it in the console know."""
UNKNOWN = "(known after apply)"
"""An ARN that exists only once the policy it names has been created."""

GE = "GreaterThanOrEqualToThreshold"
LT = "LessThanThreshold"


class AlarmsError(Exception):
    """The configuration cannot give these alarms; the message is for a person."""


class Kind(StrEnum):
    TARGET = "scalable-target"
    POLICY = "scaling-policy"
    ALARM = "alarm"


KIND_ORDER = {Kind.TARGET: 0, Kind.POLICY: 1, Kind.ALARM: 2}
"""Creation order: a policy needs its target, an alarm its policy's ARN."""


@dataclass(frozen=True)
class PolicyRef:
    """A scaling policy an alarm triggers: its ARN joins the alarm's AlarmActions."""

    resource_id: str
    name: str


@dataclass(frozen=True)
class Resource:
    kind: Kind
    name: str
    """The alarm's or policy's name; a target's resource id (`service/CLUSTER/SERVICE`)."""
    pool: str | None
    """None: the controller's own (the heartbeat alarm)."""
    slug: str
    """What it is within its pool: `failed-tasks-high`, `fallback-cpu`, `target`."""
    body: Mapping[str, Any]
    """The API request that makes it, without tags and policy ARNs, normalized."""
    tags: Mapping[str, str] = field(default_factory=dict)
    triggers: tuple[PolicyRef, ...] = ()
    arn: str = ""
    """What exists: the alarm's ARN; for a target, its ECS service's (which holds the tag)."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, str(self.body.get("ResourceId", "")), self.name)

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(str(self.body["ResourceId"]), self.name)


def alarm_tags(prefix: str, pool: str | None) -> dict[str, str]:
    tags = {MANAGED_BY: MANAGED_BY_VALUE, CONTROLLER: prefix}
    if pool is not None:
        tags[POOL] = pool
    return tags


def owns_alarm(prefix: str, tags: Mapping[str, str]) -> bool:
    return tags.get(MANAGED_BY) == MANAGED_BY_VALUE and tags.get(CONTROLLER) == prefix


def resource_id(pool: WorkerPool) -> str:
    return autoscaling.resource_id(pool.spec.ecs.cluster, pool.spec.ecs.service)


def metric_period(interval: float) -> int:
    """The controller's interval rounded up to whole minutes, at least one."""
    return max(60, math.ceil(interval / 60) * 60)


# --- normalized request bodies -----------------------------------------------------------


def _dimensions(dims: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    pairs = sorted((str(d.get("Name", "")), str(d.get("Value", ""))) for d in dims)
    return [{"Name": name, "Value": value} for name, value in pairs]


def _query(query: Mapping[str, Any]) -> dict[str, Any]:
    if "Expression" in query:
        return {
            "Id": query["Id"],
            "Expression": query["Expression"],
            "Label": query.get("Label", ""),
            "ReturnData": query.get("ReturnData", True),
        }
    stat = query.get("MetricStat", {})
    metric = stat.get("Metric", {})
    return {
        "Id": query["Id"],
        "MetricStat": {
            "Metric": {
                "Namespace": metric.get("Namespace"),
                "MetricName": metric.get("MetricName"),
                "Dimensions": _dimensions(metric.get("Dimensions", [])),
            },
            "Period": stat.get("Period"),
            "Stat": stat.get("Stat"),
        },
        "ReturnData": query.get("ReturnData", True),
    }


ALARM_EXTRAS = (
    "ExtendedStatistic",
    "Unit",
    "ThresholdMetricId",
    "EvaluateLowSampleCountPercentile",
)
"""Fields the controller never sets: present on an alarm only when someone else set them."""


def normalize_alarm(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """PutMetricAlarm's fields from a request or a DescribeAlarms entry, comparable."""
    evaluation = int(alarm.get("EvaluationPeriods", 1))
    body: dict[str, Any] = {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription", ""),
        "ActionsEnabled": alarm.get("ActionsEnabled", True),
        "AlarmActions": sorted(alarm.get("AlarmActions", [])),
        "OKActions": sorted(alarm.get("OKActions", [])),
        "InsufficientDataActions": sorted(alarm.get("InsufficientDataActions", [])),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Threshold": float(alarm["Threshold"]) if "Threshold" in alarm else None,
        "EvaluationPeriods": evaluation,
        "DatapointsToAlarm": int(alarm.get("DatapointsToAlarm") or evaluation),
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
    }
    if alarm.get("Metrics"):
        body["Metrics"] = [_query(query) for query in alarm["Metrics"]]
    else:
        body.update(
            Namespace=alarm.get("Namespace"),
            MetricName=alarm.get("MetricName"),
            Statistic=alarm.get("Statistic"),
            Dimensions=_dimensions(alarm.get("Dimensions", [])),
            Period=alarm.get("Period"),
        )
    body.update({key: alarm[key] for key in ALARM_EXTRAS if alarm.get(key) is not None})
    return body


def normalize_target(target: Mapping[str, Any]) -> dict[str, Any]:
    suspended = target.get("SuspendedState") or {}
    return {
        "ServiceNamespace": target.get("ServiceNamespace"),
        "ResourceId": target["ResourceId"],
        "ScalableDimension": target.get("ScalableDimension"),
        "MinCapacity": target.get("MinCapacity"),
        "MaxCapacity": target.get("MaxCapacity"),
        "SuspendedState": {
            name: bool(suspended.get(name, False))
            for name in (
                "DynamicScalingInSuspended",
                "DynamicScalingOutSuspended",
                "ScheduledScalingSuspended",
            )
        },
    }


def normalize_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "PolicyName": policy["PolicyName"],
        "ServiceNamespace": policy.get("ServiceNamespace"),
        "ResourceId": policy["ResourceId"],
        "ScalableDimension": policy.get("ScalableDimension"),
        "PolicyType": policy.get("PolicyType"),
    }
    config = policy.get("StepScalingPolicyConfiguration")
    if config is not None:
        steps = [
            {
                **{
                    bound: float(step[bound])
                    for bound in ("MetricIntervalLowerBound", "MetricIntervalUpperBound")
                    if step.get(bound) is not None
                },
                "ScalingAdjustment": int(step["ScalingAdjustment"]),
            }
            for step in config.get("StepAdjustments", [])
        ]
        steps.sort(key=lambda step: step.get("MetricIntervalLowerBound", -math.inf))
        body["StepScalingPolicyConfiguration"] = {
            "AdjustmentType": config.get("AdjustmentType"),
            "Cooldown": config.get("Cooldown"),
            "MetricAggregationType": config.get("MetricAggregationType", "Average"),
            "StepAdjustments": steps,
            **(
                {"MinAdjustmentMagnitude": config["MinAdjustmentMagnitude"]}
                if config.get("MinAdjustmentMagnitude") is not None
                else {}
            ),
        }
    return body


def resolved_actions(resource: Resource, arns: Mapping[PolicyRef, str]) -> list[str]:
    """The alarm's AlarmActions with the ARNs of the policies it triggers."""
    policies = [arns.get(ref, UNKNOWN) for ref in resource.triggers]
    return sorted([*resource.body.get("AlarmActions", []), *policies])


# --- what the configuration wants ---------------------------------------------------------


@dataclass(frozen=True)
class _Pool:
    """What every alarm of one pool shares."""

    pool: WorkerPool
    spec: AlarmsSpec
    prefix: str
    namespace: str
    period: int
    broker: str

    @property
    def name(self) -> str:
        return self.pool.name

    def alarm_name(self, slug: str) -> str:
        return f"{self.prefix}/{self.name}/{slug}"

    @property
    def dims(self) -> list[dict[str, str]]:
        return [{"Name": "Pool", "Value": self.name}]


def desired(config: Config, only: Sequence[WorkerPool] | None = None) -> tuple[Resource, ...]:
    """Every resource the configuration asks for: all pools and the controller's own, or
    only the pools in `only` (then nothing of the controller's). Raises AlarmsError."""
    controller = config.controller
    if not controller.cloudwatch.enabled:
        raise AlarmsError(
            "the alarms watch the metrics the controller publishes, and spec.cloudwatch."
            "enabled is false: enable it, or manage no alarms"
        )
    prefix = controller.alarms.name_prefix
    period = metric_period(controller.interval)
    resources: list[Resource] = []
    heartbeat = controller.alarms.heartbeat_missing
    if only is None and controller.alarms.enabled and heartbeat.enabled:
        resources.append(_heartbeat_alarm(controller, period))
    for pool in config.pools if only is None else only:
        spec = pool_alarms(controller, pool.spec)
        if spec.enabled:
            context = _Pool(
                pool, spec, prefix, controller.cloudwatch.namespace, period, controller.broker_kind
            )
            resources += _pool_alarms(context)
            resources += _fallback(context, controller)
    return tuple(sorted(resources, key=lambda r: (KIND_ORDER[r.kind], r.name)))


def _window(spec: AlarmSpec, default_period: int) -> tuple[int, str]:
    period = int(spec.period) if spec.period is not None else default_period
    if period * spec.evaluation_periods > 86400:
        raise AlarmsError(
            f"period {format_duration(period)} x evaluationPeriods {spec.evaluation_periods} "
            "is longer than the one day CloudWatch allows"
        )
    datapoints = spec.datapoints_to_alarm or spec.evaluation_periods
    return period, (
        f"{datapoints} of {spec.evaluation_periods} periods of {format_duration(period)}"
    )


def _alarm(
    name: str,
    description: str,
    spec: AlarmSpec,
    *,
    comparison: str,
    threshold: float,
    missing: str,
    actions: Sequence[str],
    ok_actions: Sequence[str],
    metric: Mapping[str, Any] | None = None,
    metrics: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": f"{description[: 1023 - len(MANAGED_NOTE)]} {MANAGED_NOTE}",
        "ActionsEnabled": True,
        "AlarmActions": list(actions),
        "OKActions": list(ok_actions),
        "InsufficientDataActions": [],
        "ComparisonOperator": comparison,
        "Threshold": threshold,
        "EvaluationPeriods": spec.evaluation_periods,
        "DatapointsToAlarm": spec.datapoints_to_alarm or spec.evaluation_periods,
        "TreatMissingData": missing,
        **(metric or {}),
    }
    if metrics:
        request["Metrics"] = list(metrics)
    return normalize_alarm(request)


def _stat(
    query_id: str,
    namespace: str,
    name: str,
    dims: Sequence[Mapping[str, str]],
    stat: str,
    period: int,
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": list(dims)},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _expression(query_id: str, expression: str, label: str) -> dict[str, Any]:
    return {"Id": query_id, "Expression": expression, "Label": label, "ReturnData": True}


def _number(value: float) -> str:
    """A number as metric math reads it: no exponent."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _heartbeat_alarm(controller: ControllerSpec, default_period: int) -> Resource:
    spec = controller.alarms.heartbeat_missing
    prefix = controller.alarms.name_prefix
    period, window = _window(spec, default_period)
    notify = list(controller.alarms.notify)
    body = _alarm(
        f"{prefix}/controller-heartbeat-missing",
        f"No controller_heartbeat in {controller.cloudwatch.namespace} for {window}: the "
        "controller is gone (or cannot publish); the fallback policies scale out on their own.",
        spec,
        comparison=LT,
        threshold=1.0,
        missing="breaching",
        actions=notify,
        ok_actions=notify if controller.alarms.notify_on_ok else [],
        metric={
            "Namespace": controller.cloudwatch.namespace,
            "MetricName": "controller_heartbeat",
            "Statistic": "SampleCount",
            "Dimensions": [],
            "Period": period,
        },
    )
    return Resource(
        Kind.ALARM, body["AlarmName"], None, "heartbeat-missing", body, alarm_tags(prefix, None)
    )


@dataclass(frozen=True)
class _Gauge:
    """An alerting alarm on one of the pool's metrics."""

    slug: str
    setting: Callable[[AlarmsSpec], AlarmSpec]
    metric: str
    statistic: str
    what: str
    comparison: str = GE
    missing: str = "missing"
    """TreatMissingData; counters are absent when unknown, so theirs is notBreaching."""
    default: Callable[[WorkerPoolSpec], float | None] = lambda pool: None
    """The threshold when none is given; None: no alarm."""


WORKER_GAUGES = (
    _Gauge("active-tasks-high", lambda a: a.active_tasks_high, "active_tasks", "Average",
           "tasks running"),
    _Gauge("reserved-tasks-high", lambda a: a.reserved_tasks_high, "reserved_tasks", "Average",
           "tasks prefetched by workers and not started (the queue is clogging)"),
    _Gauge("failed-tasks-high", lambda a: a.failed_tasks_high, "failed_tasks", "Sum",
           "tasks failed", missing="notBreaching"),
    _Gauge("retried-tasks-high", lambda a: a.retried_tasks_high, "retried_tasks", "Sum",
           "tasks retried", missing="notBreaching"),
    _Gauge("memory-high", lambda a: a.memory_high, "memory_usage", "Maximum",
           "megabytes, the largest worker's peak RSS"),
    _Gauge("too-few-workers", lambda a: a.too_few_workers, "worker_status", "Maximum",
           "workers answering, at most", comparison=LT,
           default=lambda pool: float(pool.min_capacity) or None),
)  # fmt: skip
"""From inspect and task events: not on SQS, which has no remote control."""
LATENCY_GAUGE = _Gauge(
    "queue-latency-high",
    lambda a: a.queue_latency_high,
    "queue_latency_seconds",
    "Maximum",
    "seconds the oldest waiting message has waited",
)
"""From message stamps: Redis only."""


def _pool_alarms(pool: _Pool) -> list[Resource]:
    spec, pool_spec = pool.spec, pool.pool.spec
    gauges = list(WORKER_GAUGES) if pool.broker != "sqs" else []
    if pool.broker == "redis":
        gauges.append(LATENCY_GAUGE)
    notify = list(spec.notify)
    ok = notify if spec.notify_on_ok else []
    resources = []
    for gauge in gauges:
        setting = gauge.setting(spec)
        threshold = setting.threshold
        if threshold is None:
            threshold = gauge.default(pool_spec)
        if not setting.enabled or threshold is None:
            continue
        period, window = _window(setting, pool.period)
        sign = "≥" if gauge.comparison == GE else "<"
        body = _alarm(
            pool.alarm_name(gauge.slug),
            f"Pool {pool.name}: {gauge.metric} ({gauge.statistic}) {sign} "
            f"{_number(threshold)} for {window}: {gauge.what}.",
            setting,
            comparison=gauge.comparison,
            threshold=threshold,
            missing=gauge.missing,
            actions=notify,
            ok_actions=ok,
            metric={
                "Namespace": pool.namespace,
                "MetricName": gauge.metric,
                "Statistic": gauge.statistic,
                "Dimensions": pool.dims,
                "Period": period,
            },
        )
        resources.append(_pool_alarm(pool, gauge.slug, body))
    behind = _not_keeping_up(pool, notify, ok)
    return resources + ([behind] if behind else [])


def _pool_alarm(pool: _Pool, slug: str, body: Mapping[str, Any], *triggers: PolicyRef) -> Resource:
    return Resource(
        Kind.ALARM,
        str(body["AlarmName"]),
        pool.name,
        slug,
        body,
        alarm_tags(pool.prefix, pool.name),
        triggers,
    )


def scale_out_point(pool: WorkerPoolSpec) -> tuple[str, float | None]:
    """The metric and the value at which the pool's first policy that scales out does: its
    scaleOut threshold or its target. No such policy: the first policy's metric, None."""
    for policy in pool.scaling_policies:
        if policy.scale_out is not None:
            return policy.metric.value, policy.scale_out.threshold
        if policy.target_tracking is not None:
            return policy.metric.value, policy.target_tracking.target_value
    return pool.scaling_policies[0].metric.value, None


def _not_keeping_up(pool: _Pool, notify: list[str], ok: list[str]) -> Resource | None:
    spec, pool_spec = pool.spec.not_keeping_up, pool.pool.spec
    metric, threshold = scale_out_point(pool_spec)
    if spec.threshold is not None:
        threshold = spec.threshold
    if not spec.enabled or threshold is None:
        return None
    period, window = _window(spec, pool.period)
    maximum = pool_spec.max_capacity
    # Below the threshold when the pool is at maxCapacity: more work than the pool may
    # hold is a capacity matter, not the controller falling behind.
    expression = f"IF(desired < {maximum}, value, {_number(threshold - 1)})"
    body = _alarm(
        pool.alarm_name("not-keeping-up"),
        f"Pool {pool.name}: {metric} ≥ {_number(threshold)} (its scale-out threshold) while "
        f"the controller's desired count stayed below maxCapacity {maximum}, for {window}: "
        "the controller is not keeping up.",
        spec,
        comparison=GE,
        threshold=threshold,
        missing="notBreaching",
        actions=notify,
        ok_actions=ok,
        metrics=[
            _stat("value", pool.namespace, metric, pool.dims, "Minimum", period),
            _stat("desired", pool.namespace, "desired_capacity", pool.dims, "Maximum", period),
            _expression("behind", expression, f"{metric} while below maxCapacity"),
        ],
    )
    return _pool_alarm(pool, "not-keeping-up", body)


# --- the fallback: Application Auto Scaling, scale-out only ----------------------------------


@dataclass(frozen=True)
class _Trigger:
    """A fallback policy and what its alarm watches."""

    slug: str
    spec: FallbackPolicySpec
    threshold: float
    queries: list[dict[str, Any]]
    why: str
    aggregation: str


def _fallback(pool: _Pool, controller: ControllerSpec) -> list[Resource]:
    pool_spec = pool.pool.spec
    if pool_spec.max_capacity <= pool_spec.min_capacity:
        return []  # nothing a policy could add
    target_id = resource_id(pool.pool)
    cluster, service = target_id.split("/")[1:]
    fallback = pool.spec.fallback
    notify = list(pool.spec.notify)
    ok = notify if pool.spec.notify_on_ok else []
    policies: list[_Trigger] = []

    cpu = fallback.cpu
    if cpu.enabled and cpu.threshold is not None:
        period, window = _window(cpu, pool.period)
        if period < controller.interval:
            raise AlarmsError(
                f"pool {pool.name}: alarms.fallback.cpu.period {format_duration(period)} is "
                f"shorter than the interval ({format_duration(controller.interval)}): a period "
                "without a pass would read as the controller gone"
            )
        gate = (
            f"CPUUtilization (AWS/ECS) of {cluster}/{service} ≥ {_number(cpu.threshold)}% while "
            f"no controller_heartbeat arrives, for {window}: the controller is gone and the "
            "workers are busy."
        )
        queries = [
            _stat("heartbeat", pool.namespace, "controller_heartbeat", [], "SampleCount", period),
            _stat(
                "cpu",
                "AWS/ECS",
                "CPUUtilization",
                [
                    {"Name": "ClusterName", "Value": cluster},
                    {"Name": "ServiceName", "Value": service},
                ],
                "Average",
                period,
            ),
            _expression(
                "gated", "IF(FILL(heartbeat, 0) < 1, cpu, 0)", "CPU while the controller is gone"
            ),
        ]
        policies.append(_Trigger("fallback-cpu", cpu, cpu.threshold, queries, gate, "Average"))

    depth = fallback.queue_depth
    threshold = depth.threshold
    scales_out_at = scale_out_point(pool_spec)[1]
    if threshold is None and scales_out_at is not None:
        threshold = scales_out_at * pool_spec.max_capacity
    if pool.broker == "sqs" and depth.enabled and threshold is not None:
        period, window = _window(depth, 60)  # AWS/SQS publishes once a minute
        names = [sqs_queue_name(q, controller.sqs_queue_name_prefix) for q in pool_spec.queues]
        queries = [
            _stat(
                f"queue{index}",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                [{"Name": "QueueName", "Value": name}],
                "Maximum",
                period,
            )
            for index, name in enumerate(names)
        ]
        total = " + ".join(f"FILL(queue{index}, 0)" for index in range(len(names)))
        queries.append(_expression("depth", total, "messages visible"))
        why = (
            f"Messages visible in SQS ({', '.join(names)}) ≥ {_number(threshold)} for {window}: "
            "more than the controller lets wait while it keeps up."
        )
        policies.append(_Trigger("fallback-queue-depth", depth, threshold, queries, why, "Maximum"))

    if not policies:
        return []
    target = normalize_target(
        {
            "ServiceNamespace": ECS_NAMESPACE,
            "ResourceId": target_id,
            "ScalableDimension": DESIRED_COUNT,
            "MinCapacity": pool_spec.min_capacity,
            "MaxCapacity": pool_spec.max_capacity,
            # No policy of this target may remove capacity, not even one added by hand,
            # nor a scale-out policy clamping to MaxCapacity a count set above it.
            "SuspendedState": {"DynamicScalingInSuspended": True},
        }
    )
    marker = {SCALABLE_TARGET: target_marker(pool.prefix, pool.name)}
    resources = [Resource(Kind.TARGET, target_id, pool.name, "target", target, marker)]
    for trigger in policies:
        step_policy = trigger.spec.step_policy(trigger.threshold)
        policy = _policy(pool, target_id, trigger.slug, step_policy, trigger.aggregation)
        resources.append(policy)
        body = _alarm(
            pool.alarm_name(f"{trigger.slug}-high"),
            f"Pool {pool.name} fallback: {trigger.why} Triggers the scale-out-only step "
            f"policy {policy.name}.",
            trigger.spec,
            comparison=GE,
            threshold=trigger.threshold,
            missing="notBreaching",  # no data is no reason to add workers
            actions=notify,
            ok_actions=ok,
            metrics=trigger.queries,
        )
        resources.append(_pool_alarm(pool, f"{trigger.slug}-high", body, policy.ref))
    return resources


def _policy(
    pool: _Pool, target_id: str, slug: str, policy: StepPolicy, aggregation: str
) -> Resource:
    name = pool.alarm_name(slug)
    steps = []
    for step in policy.ordered_steps:
        row: dict[str, Any] = {"ScalingAdjustment": step.scaling_adjustment}
        if step.metric_interval_lower_bound is not None:
            row["MetricIntervalLowerBound"] = step.metric_interval_lower_bound
        if step.metric_interval_upper_bound is not None:
            row["MetricIntervalUpperBound"] = step.metric_interval_upper_bound
        steps.append(row)
    body = normalize_policy(
        {
            "PolicyName": name,
            "ServiceNamespace": ECS_NAMESPACE,
            "ResourceId": target_id,
            "ScalableDimension": DESIRED_COUNT,
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": policy.adjustment_type.value,
                "Cooldown": int(policy.cooldown),
                "MetricAggregationType": aggregation,
                "StepAdjustments": steps,
                "MinAdjustmentMagnitude": policy.min_adjustment_magnitude,
            },
        }
    )
    return Resource(Kind.POLICY, name, pool.name, slug, body)


# --- the plan ------------------------------------------------------------------------------


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    op: Op
    resource: Resource
    """The wanted resource (create, update) or the one that goes (delete)."""
    fields: tuple[FieldChange, ...] = ()
    """What an update changes."""


@dataclass(frozen=True)
class Actual:
    """What exists, as the adapters read it."""

    resources: tuple[Resource, ...]
    """This controller's own."""
    policy_arns: Mapping[PolicyRef, str] = field(default_factory=dict)
    foreign: frozenset[tuple[str, str, str]] = frozenset()
    """Keys of resources that exist under names this controller uses but are not its own."""
    service_arns: Mapping[str, str] = field(default_factory=dict)
    """Target resource id → the ECS service's ARN, for the services of wanted targets."""

    def of_pools(self, pools: Iterable[str]) -> Actual:
        """Only what belongs to these pools: nothing else is compared, nor deleted."""
        names = set(pools)
        kept = tuple(resource for resource in self.resources if resource.pool in names)
        return Actual(kept, self.policy_arns, self.foreign, self.service_arns)


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    conflicts: tuple[Resource, ...]
    """Wanted resources whose names are taken by someone else's: nothing is applied."""
    unchanged: int

    def count(self, op: Op) -> int:
        return sum(change.op is op for change in self.changes)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.conflicts


def diff(wanted: Sequence[Resource], actual: Actual) -> Plan:
    """What to create, update and delete so that `actual` becomes `wanted`.

    Creates and updates come first, targets before policies before alarms; deletes after,
    in the reverse order (an alarm goes before the policy it triggers).
    """
    existing = {resource.key: resource for resource in actual.resources}
    wanted_keys = {resource.key for resource in wanted}
    conflicts = tuple(r for r in wanted if r.key in actual.foreign and r.key not in existing)
    taken = {resource.key for resource in conflicts}
    changes: list[Change] = []
    unchanged = 0
    for resource in wanted:
        if resource.key in taken:
            continue
        before = existing.get(resource.key)
        if before is None:
            changes.append(Change(Op.CREATE, resource))
            continue
        fields = field_changes(before, resource, actual.policy_arns)
        if fields:
            changes.append(Change(Op.UPDATE, resource, fields))
        else:
            unchanged += 1
    gone = [resource for resource in actual.resources if resource.key not in wanted_keys]
    gone.sort(key=lambda r: (-KIND_ORDER[r.kind], r.name))
    changes += [Change(Op.DELETE, resource) for resource in gone]
    return Plan(tuple(changes), conflicts, unchanged)


def wanted_body(resource: Resource, arns: Mapping[PolicyRef, str]) -> dict[str, Any]:
    """The request that makes `resource`, with the ARNs of the policies it triggers."""
    body = dict(resource.body)
    if resource.kind is Kind.ALARM:
        body["AlarmActions"] = resolved_actions(resource, arns)
    return body


def field_changes(
    before: Resource, after: Resource, arns: Mapping[PolicyRef, str]
) -> tuple[FieldChange, ...]:
    """Each field (nested ones as dotted paths) and owned tag that differs."""
    old, new = _flat(before.body), _flat(wanted_body(after, arns))
    changes = [
        FieldChange(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new), key=_path_order(new))
        if old.get(path) != new.get(path)
    ]
    changes += [
        FieldChange(f"Tags.{key}", before.tags.get(key), value)
        for key, value in sorted(after.tags.items())
        if before.tags.get(key) != value
    ]
    return tuple(changes)


def _path_order(new: Mapping[str, Any]) -> Any:
    order = {path: index for index, path in enumerate(new)}
    return lambda path: (order.get(path, len(order)), path)


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{path}.{key}" if path else str(key)))
        return flat
    if isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
        flat = {}
        for index, inner in enumerate(value):
            flat.update(_flat(inner, f"{path}[{index}]"))
        return flat
    return {path: value}
