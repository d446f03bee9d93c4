"""`celery-scaler config import --terraform`: an Application Auto Scaling setup written in
Terraform, as WorkerPool documents (pure: cli.py reads the files with python-hcl2 and
hands over what it parsed).

What is read, per `aws_appautoscaling_target` of an ECS service's desired count:

- the cluster and service from `resource_id` (`service/CLUSTER/SERVICE`), min and max;
- each `aws_appautoscaling_policy` on it. A StepScaling policy is joined to the
  `aws_cloudwatch_metric_alarm` whose `alarm_actions` name the policy's `.arn`: the alarm
  gives the metric, statistic, threshold and direction (a `GreaterThan…` alarm scales
  out, a `LessThan…` one in), the policy its steps, adjustment type and cooldown. A
  TargetTrackingScaling policy becomes `targetTracking` where the configuration has it,
  else a commented block (and, with no step policy beside it, steps that approximate it).

Values are evaluated as far as the files allow: literals, `var.NAME` (from `--var` or the
variable's default), `local.NAME`, and attributes written in the files' own resources
(`aws_appautoscaling_target.x.resource_id`, `aws_ecs_service.x.name`). Anything else (a
data source, a function call, a computed attribute) is an error naming the `--var` that
gives it a value: `--var` also takes a whole reference,
`--var 'data.aws_ecs_cluster.c.cluster_name=prod'`.

The output keeps what cannot be carried over as YAML comments: a metric the controller
cannot read (ECS `CPUUtilization`: the steps are kept and must be retuned), a metric that
cannot see the backlog (`active_tasks`: `backlog_per_task` is suggested), what differs
between the alarm's evaluation and the controller's window.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from celery_scaler.core.autoscaling import DESIRED_COUNT, ECS_NAMESPACE
from celery_scaler.core.config import WorkerPoolSpec, format_duration
from celery_scaler.core.metrics import Metric

TARGET = "aws_appautoscaling_target"
POLICY = "aws_appautoscaling_policy"
ALARM = "aws_cloudwatch_metric_alarm"
SCHEDULED = "aws_appautoscaling_scheduled_action"

SEES_BACKLOG = frozenset(
    {Metric.QUEUE_DEPTH, Metric.BACKLOG_PER_TASK, Metric.QUEUE_LATENCY_SECONDS}
)
"""Metrics that grow with the messages waiting, not only with the work being done."""
STATISTICS = frozenset({"Average", "Minimum", "Maximum"})
OUT_OPERATORS = frozenset({"GreaterThanOrEqualToThreshold", "GreaterThanThreshold"})
IN_OPERATORS = frozenset({"LessThanOrEqualToThreshold", "LessThanThreshold"})
SCALE_IN_BAND = 0.9
"""An approximated target tracking policy scales in below this share of its target: a band
between the two thresholds, so the pool does not go up and down around the target."""
COUNTERPARTS = {
    "ApproximateNumberOfMessagesVisible": Metric.QUEUE_DEPTH,
    "ApproximateNumberOfMessages": Metric.QUEUE_DEPTH,
}
"""Metrics of other namespaces whose counterpart the controller reads (a suggestion only)."""

WIDTH = 96


class TerraformImportError(Exception):
    """The files cannot be translated; the message names the resource, the field and, for a
    value that cannot be evaluated, the `--var` to pass."""


_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
_POLICY_ARN = re.compile(rf"\b{POLICY}\.([A-Za-z_][\w-]*)\.arn\b")
_REFERENCE = re.compile(r"^([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_RESOURCE_ID = re.compile(r"^service/([^/]+)/([^/]+)$")


def parse_vars(pairs: Iterable[str]) -> dict[str, str]:
    """`NAME=VALUE` options as a mapping; a NAME is a variable or a whole reference."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise TerraformImportError(f"--var {pair!r}: expected NAME=VALUE")
        found[name.strip()] = value
    return found


# --- the module: resources, variables, locals, and evaluating values --------------------


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    body: Mapping[str, Any]

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"


_UNSET = object()


class Module:
    """The resources, variables and locals of one or more parsed files (python-hcl2's
    default output: string literals keep their quotes, expressions are `${…}`)."""

    def __init__(self, parsed: Sequence[Mapping[str, Any]], given: Mapping[str, str]) -> None:
        self.resources: dict[tuple[str, str], Resource] = {}
        self.variables: dict[str, Any] = {}
        self.locals: dict[str, Any] = {}
        self.given = dict(given)
        self.defaults_used: dict[str, Any] = {}
        for document in parsed:
            for group in document.get("resource", []):
                for kind, named in group.items():
                    for name, body in named.items():
                        resource = Resource(_unquote(kind), _unquote(name), body)
                        self.resources[(resource.kind, resource.name)] = resource
            for group in document.get("variable", []):
                for name, body in group.items():
                    self.variables[_unquote(name)] = body.get("default", _UNSET)
            for group in document.get("locals", []):
                self.locals.update({k: v for k, v in group.items() if k != "__is_block__"})

    def of_kind(self, kind: str) -> list[Resource]:
        return [resource for (k, _), resource in self.resources.items() if k == kind]

    def value(self, raw: Any, where: str, seen: frozenset[str] = frozenset()) -> Any:
        """`raw` as python-hcl2 gives it, evaluated; raises TerraformImportError."""
        if raw is None or isinstance(raw, bool | int | float):
            return raw
        if isinstance(raw, list):
            return [self.value(item, where, seen) for item in raw]
        if isinstance(raw, dict):
            return {
                _unquote(k): self.value(v, where, seen)
                for k, v in raw.items()
                if k != "__is_block__"
            }
        text = str(raw)
        if len(text) >= 2 and text[0] == text[-1] == '"':
            inner = text[1:-1]
            whole = _INTERPOLATION.fullmatch(inner)
            if whole is not None:
                return self._expression(whole.group(1).strip(), where, seen)
            parts = _INTERPOLATION.sub(
                lambda m: _text(self._expression(m.group(1).strip(), where, seen)), inner
            )
            return parts.replace('\\"', '"').replace("\\\\", "\\")
        if text.startswith("${") and text.endswith("}"):
            return self._expression(text[2:-1].strip(), where, seen)
        raise TerraformImportError(f"{where}: cannot read {text!r}")

    def _expression(self, text: str, where: str, seen: frozenset[str]) -> Any:
        if text in self.given:
            return self.given[text]
        if _NUMBER.match(text):
            return float(text)
        if text in seen:
            raise TerraformImportError(f"{where}: {text} refers to itself")
        seen = seen | {text}
        head, _, rest = text.partition(".")
        if head == "var" and re.fullmatch(r"[A-Za-z_][\w-]*", rest):
            if rest in self.given:
                return self.given[rest]
            default = self.variables.get(rest, _UNSET)
            if default is _UNSET:
                raise TerraformImportError(
                    f"{where}: var.{rest} has no value in the files: pass --var {rest}=VALUE"
                )
            value = self.value(default, f"variable {rest!r}", seen)
            self.defaults_used[rest] = value
            return value
        if head == "local" and rest in self.locals:
            return self.value(self.locals[rest], f"local.{rest}", seen)
        reference = _REFERENCE.match(text)
        if reference is not None:
            kind, name, attribute = reference.groups()
            resource = self.resources.get((kind, name))
            if resource is not None and attribute in resource.body:
                return self.value(resource.body[attribute], f"{kind}.{name}", seen)
        raise TerraformImportError(
            f"{where}: cannot evaluate {text} (only literals, var., local. and attributes "
            f"written in the files are read): pass --var '{text}=VALUE'"
        )


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TerraformImportError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise TerraformImportError(f"{where}: {value!r} is not a finite number")
    return number


def _integer(value: Any, where: str) -> int:
    number = _number(value, where)
    if not number.is_integer():
        raise TerraformImportError(f"{where}: {value!r} is not a whole number")
    return int(number)


def _block(body: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The first nested block `name` (python-hcl2 gives blocks as lists of mappings)."""
    found = body.get(name)
    if isinstance(found, list) and found and isinstance(found[0], Mapping):
        return found[0]
    return found if isinstance(found, Mapping) else None


def _blocks(body: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    found = body.get(name) or []
    return [item for item in found if isinstance(item, Mapping)] if isinstance(found, list) else []


# --- what one target becomes ------------------------------------------------------------------


@dataclass
class _Rule:
    """One AWS scaling policy, translated: a `scaleOut`, `scaleIn` or `targetTracking`."""

    key: str
    name: str
    """The AWS policy's name (its `name`), for a policy entry of its own."""
    source: str
    """`aws_appautoscaling_policy.x`, and the alarm that triggers it."""
    spec: dict[str, Any]
    read: str
    """What its alarm (or target tracking) reads, as AWS names it."""
    metric: str | None = None
    """The controller metric that is, if any."""
    statistic: str | None = None
    window: float | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class _Group:
    """Rules on one metric: one of the controller's scaling policies (its own, or an entry
    of `policies`), as AWS's separate scale-out and scale-in policies pair up."""

    rules: dict[str, _Rule] = field(default_factory=dict)
    name: str = ""

    @property
    def first(self) -> _Rule:
        return next(iter(self.rules.values()))

    @property
    def metric(self) -> str | None:
        return self.first.metric

    def takes(self, rule: _Rule) -> bool:
        tracking = "targetTracking" in self.rules or rule.key == "targetTracking"
        return (
            not tracking
            and rule.key not in self.rules
            and (rule.metric or rule.read) == (self.metric or self.first.read)
        )


@dataclass
class _Pool:
    name: str
    cluster: str
    service: str
    min_capacity: int
    max_capacity: int
    header: list[str] = field(default_factory=list)
    groups: list[_Group] = field(default_factory=list)


def import_terraform(
    parsed: Sequence[Mapping[str, Any]], given: Mapping[str, str], source: str
) -> str:
    """WorkerPool documents (multi-document YAML, with comments) for the setup in `parsed`,
    the files python-hcl2 read; `source` names them in the header. Raises
    TerraformImportError when there is nothing to import or a value cannot be evaluated."""
    module = Module(parsed, given)
    pools = [_pool(module, target) for target in _ecs_targets(module)]
    if not pools:
        raise TerraformImportError(
            f"{source}: no {TARGET} of an ECS service's desired count "
            f"(service_namespace = {ECS_NAMESPACE!r}, scalable_dimension = {DESIRED_COUNT!r})"
        )
    _unique(pools, lambda pool: pool.name, _rename_pool)
    header = [
        f"Imported from {source} by `celery-scaler config import`. Check each note, set",
        "`queues`, add a Controller document (broker, interval) and run `celery-scaler config",
        "validate`; then `celery-scaler takeover --pool <name>` hands the service over.",
    ]
    if module.defaults_used:
        used = ", ".join(f"var.{k} = {_text(v)}" for k, v in sorted(module.defaults_used.items()))
        header.append(f"Variables read from their defaults: {used}.")
    scheduled = module.of_kind(SCHEDULED)
    if scheduled:
        names = ", ".join(r.address for r in scheduled)
        header.append(f"Not imported: {names} (the controller has no schedule of its own).")
    return _comment(header, 0) + "".join(f"---\n{_render(pool)}" for pool in pools)


def _ecs_targets(module: Module) -> list[Resource]:
    found = []
    for target in module.of_kind(TARGET):
        where = target.address
        namespace = module.value(target.body.get("service_namespace"), where)
        dimension = module.value(target.body.get("scalable_dimension"), where)
        if namespace == ECS_NAMESPACE and dimension == DESIRED_COUNT:
            _no_repetition(target)
            found.append(target)
    return found


def _no_repetition(resource: Resource) -> None:
    for meta in ("count", "for_each"):
        if meta in resource.body:
            raise TerraformImportError(
                f"{resource.address}: {meta} makes several resources of one block: write "
                "its WorkerPool documents by hand, or import a file with one block each"
            )


def _pool(module: Module, target: Resource) -> _Pool:
    where = target.address
    rid = module.value(target.body.get("resource_id"), f"{where}: resource_id")
    match = _RESOURCE_ID.match(str(rid))
    if match is None:
        raise TerraformImportError(f"{where}: resource_id {rid!r} is not service/CLUSTER/SERVICE")
    cluster, service = match.groups()
    pool = _Pool(
        name=_name(service, "pool"),
        cluster=cluster,
        service=service,
        min_capacity=_integer(module.value(target.body.get("min_capacity"), where), where),
        max_capacity=_integer(module.value(target.body.get("max_capacity"), where), where),
        header=[f"From {where} ({rid})."],
    )
    alarms = _alarms_by_policy(module)
    for policy in module.of_kind(POLICY):
        if module.value(policy.body.get("resource_id"), f"{policy.address}: resource_id") != rid:
            continue
        _no_repetition(policy)
        kind = module.value(policy.body.get("policy_type", '"StepScaling"'), policy.address)
        if kind == "StepScaling":
            rule = _step_policy(module, policy, alarms.get(policy.name, []))
        elif kind == "TargetTrackingScaling":
            rule = _target_tracking(module, policy)
        else:
            pool.header.append(f"Not imported: {policy.address} ({kind}).")
            continue
        group = next((g for g in pool.groups if g.takes(rule)), None)
        if group is None:
            group = _Group(name=_name(rule.name, "policy"))
            pool.groups.append(group)
        group.rules[rule.key] = rule
    if not pool.groups:
        raise TerraformImportError(
            f"{where}: no {POLICY} on it that could be imported: nothing scales this service"
        )
    # The pool's own policy is the first the controller can run as it is; the others are
    # entries of `policies` (or, where the configuration cannot hold them, comments).
    pool.groups.sort(key=lambda group: not _live(group))
    _unique(pool.groups[1:], lambda group: group.name, _rename_group)
    for group in pool.groups:
        _group_notes(group)
    return pool


def _name(text: str, fallback: str) -> str:
    """A WorkerPool or policy name (a DNS label) made from an AWS name."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = name[:63].strip("-") or fallback
    return f"{name}-policy" if name == "default" else name


def _unique(items: Sequence[Any], name: Any, rename: Any) -> None:
    seen: dict[str, int] = {}
    for item in items:
        count = seen.get(name(item), 0)
        seen[name(item)] = count + 1
        if count:
            rename(item, f"{name(item)[:60]}-{count + 1}")


def _rename_pool(pool: _Pool, name: str) -> None:
    pool.name = name


def _rename_group(group: _Group, name: str) -> None:
    group.name = name


def _alarms_by_policy(module: Module) -> dict[str, list[Resource]]:
    """Policy name → the alarms whose `alarm_actions` name its `.arn` (read, not evaluated:
    a policy's ARN exists only once AWS made it)."""
    found: dict[str, list[Resource]] = {}
    for alarm in module.of_kind(ALARM):
        actions = alarm.body.get("alarm_actions") or []
        for action in actions if isinstance(actions, list) else [actions]:
            for name in _POLICY_ARN.findall(str(action)):
                found.setdefault(name, []).append(alarm)
    return found


def _policy_name(module: Module, policy: Resource) -> str:
    name = module.value(policy.body.get("name"), f"{policy.address}: name")
    return str(name) if name not in (None, "") else policy.name


def _step_policy(module: Module, policy: Resource, alarms: Sequence[Resource]) -> _Rule:
    where = policy.address
    if not alarms:
        raise TerraformImportError(
            f"{where}: no {ALARM} has {where}.arn in its alarm_actions, so its threshold and "
            "metric are unknown (pass the file that has the alarm with another --terraform)"
        )
    alarm = alarms[0]
    at, body = alarm.address, alarm.body
    source = f"{where} (triggered by {at})"
    comments = [f"From {source}."]
    if len(alarms) > 1:
        others = ", ".join(a.address for a in alarms[1:])
        comments.append(f"{others} also trigger it; only {at} was read.")
    operator = module.value(body.get("comparison_operator"), f"{at}: comparison_operator")
    if operator in OUT_OPERATORS:
        key = "scaleOut"
    elif operator in IN_OPERATORS:
        key = "scaleIn"
    else:
        raise TerraformImportError(
            f"{at}: comparison_operator {operator!r}: only an alarm above or below a fixed "
            "threshold can be a step policy's"
        )
    if operator in ("GreaterThanThreshold", "LessThanThreshold"):
        sign, ours = (">", "≥") if key == "scaleOut" else ("<", "≤")
        comments.append(f"The alarm fired at {sign} threshold; the controller's {key} at {ours}.")
    threshold = _number(module.value(body.get("threshold"), f"{at}: threshold"), at)
    config = _block(policy.body, "step_scaling_policy_configuration")
    if config is None:
        raise TerraformImportError(f"{where}: no step_scaling_policy_configuration")
    spec: dict[str, Any] = {"threshold": _clean(threshold)}
    adjustment = module.value(config.get("adjustment_type"), f"{where}: adjustment_type")
    if adjustment is not None:
        spec["adjustmentType"] = adjustment
    magnitude = module.value(config.get("min_adjustment_magnitude"), where)
    if magnitude not in (None, ""):
        if adjustment == "PercentChangeInCapacity":
            spec["minAdjustmentMagnitude"] = _integer(
                magnitude, f"{where}: min_adjustment_magnitude"
            )
        else:
            comments.append("min_adjustment_magnitude applies to PercentChangeInCapacity only.")
    cooldown = module.value(config.get("cooldown"), f"{where}: cooldown")
    if cooldown not in (None, ""):
        spec["cooldown"] = format_duration(_number(cooldown, f"{where}: cooldown"))
    spec["steps"] = [_step(module, step, where) for step in _blocks(config, "step_adjustment")]
    if not spec["steps"]:
        raise TerraformImportError(f"{where}: no step_adjustment")
    rule = _Rule(key, _policy_name(module, policy), source, spec, "", comments=comments)
    _read_alarm_metric(module, alarm, rule)
    return rule


def _step(module: Module, step: Mapping[str, Any], where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field_name, key in (
        ("metric_interval_lower_bound", "metricIntervalLowerBound"),
        ("metric_interval_upper_bound", "metricIntervalUpperBound"),
    ):
        # The provider types the bounds as strings, "" for none; people write numbers too.
        value = module.value(step.get(field_name), f"{where}: {field_name}")
        if value not in (None, ""):
            row[key] = _clean(_number(value, f"{where}: {field_name}"))
    adjustment = module.value(step.get("scaling_adjustment"), f"{where}: scaling_adjustment")
    row["scalingAdjustment"] = _integer(adjustment, f"{where}: scaling_adjustment")
    return row


def _read_alarm_metric(module: Module, alarm: Resource, rule: _Rule) -> None:
    """The controller metric, statistic and window the alarm stands for, or why not."""
    at, body = alarm.address, alarm.body
    if body.get("metric_query"):
        rule.read = f"metric math ({at})"
        return
    name = str(module.value(body.get("metric_name"), f"{at}: metric_name"))
    namespace = module.value(body.get("namespace"), f"{at}: namespace")
    rule.read = f"{name} ({namespace})"
    rule.metric = _controller_metric(name)
    if rule.metric is None:
        return
    if rule.metric != name:
        rule.comments.append(f"{at} reads {rule.read}, taken as {rule.metric}.")
    statistic = module.value(body.get("statistic"), f"{at}: statistic")
    if body.get("extended_statistic") is not None or statistic not in STATISTICS:
        shown = statistic or module.value(body.get("extended_statistic"), at)
        rule.comments.append(f"{at}'s statistic {shown} is not one the controller has: Average.")
    else:
        rule.statistic = str(statistic)
    period = _number(module.value(body.get("period"), f"{at}: period"), f"{at}: period")
    periods = _integer(
        module.value(body.get("evaluation_periods"), f"{at}: evaluation_periods"), at
    )
    rule.window = period * periods
    datapoints = module.value(body.get("datapoints_to_alarm"), at)
    if datapoints not in (None, "") and _integer(datapoints, at) < periods:
        rule.comments.append(
            f"{at} fired on {_integer(datapoints, at)} of {periods} periods; the controller's "
            "window takes the statistic over all of them."
        )


def _controller_metric(name: str) -> str | None:
    """The controller metric of that name: exactly, or written in CamelCase (ActiveTasks)."""
    names = {metric.value for metric in Metric}
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return next((candidate for candidate in (name, snake) if candidate in names), None)


def _target_tracking(module: Module, policy: Resource) -> _Rule:
    where = policy.address
    config = _block(policy.body, "target_tracking_scaling_policy_configuration")
    if config is None:
        raise TerraformImportError(f"{where}: no target_tracking_scaling_policy_configuration")
    target = _number(module.value(config.get("target_value"), where), f"{where}: target_value")
    spec: dict[str, Any] = {"targetValue": _clean(target)}
    for field_name, key in (
        ("scale_out_cooldown", "scaleOutCooldown"),
        ("scale_in_cooldown", "scaleInCooldown"),
    ):
        value = module.value(config.get(field_name), f"{where}: {field_name}")
        if value not in (None, ""):
            spec[key] = format_duration(_number(value, f"{where}: {field_name}"))
    disable = module.value(config.get("disable_scale_in"), f"{where}: disable_scale_in")
    spec["disableScaleIn"] = disable in (True, "true")
    rule = _Rule(
        "targetTracking",
        _policy_name(module, policy),
        f"{where} (TargetTrackingScaling)",
        spec,
        "",
        comments=[f"From {where} (TargetTrackingScaling)."],
    )
    predefined = _block(config, "predefined_metric_specification")
    custom = _block(config, "customized_metric_specification")
    if predefined is not None:
        rule.read = str(module.value(predefined.get("predefined_metric_type"), where))
    elif custom is not None and custom.get("metric_name") is not None:
        name = str(module.value(custom.get("metric_name"), f"{where}: metric_name"))
        namespace = module.value(custom.get("namespace"), f"{where}: namespace")
        rule.read, rule.metric = f"{name} ({namespace})", _controller_metric(name)
        statistic = module.value(custom.get("statistic"), f"{where}: statistic")
        if rule.metric is not None and statistic in STATISTICS:
            rule.statistic = str(statistic)
    else:
        rule.read = "a metric this import does not read (metrics { … })"
    return rule


def _clean(number: float) -> float | int:
    return int(number) if float(number).is_integer() else number


def has_target_tracking() -> bool:
    """Whether this controller's WorkerPool takes `targetTracking` and `policies`."""
    fields = WorkerPoolSpec.model_fields
    return "target_tracking" in fields and "policies" in fields


def _live(group: _Group) -> bool:
    """Whether the configuration can hold the group as it is."""
    return group.metric is not None and (
        "targetTracking" not in group.rules or has_target_tracking()
    )


def _group_notes(group: _Group) -> None:
    """Notes on what of the rules the group cannot keep as AWS had it."""
    first = group.first
    for rule in group.rules.values():
        if rule is first:
            continue
        if rule.statistic is not None and rule.statistic != first.statistic:
            rule.comments.append(
                f"Its alarm's statistic was {rule.statistic}; a policy has one: {first.statistic}."
            )
        if rule.window is not None and rule.window != first.window:
            rule.comments.append(
                f"Its alarm looked at {format_duration(rule.window)}; a policy has one window: "
                f"{format_duration(first.window or 0)}."
            )


# --- rendering: YAML with comments where a person has to look ---------------------------------


def _render(pool: _Pool) -> str:
    out = _comment(pool.header, 0)
    out += "apiVersion: celery-scaler/v1\nkind: WorkerPool\n"
    out += f"metadata:\n  name: {_scalar(pool.name)}\nspec:\n"
    out += f"  ecs:\n    cluster: {_scalar(pool.cluster)}\n    service: {_scalar(pool.service)}\n"
    out += _comment(["Not in Terraform: the Celery queues these workers consume."], 2)
    out += "  queues: [celery]\n"
    out += f"  minCapacity: {pool.min_capacity}\n  maxCapacity: {pool.max_capacity}\n"
    own, *others = pool.groups
    out += _own(own)
    if not others:
        return out
    # Entries the configuration cannot hold stay in the list as comments; with none it can,
    # the list itself is commented out too.
    live = any(_live(group) for group in others)
    out += "  policies:\n" if live else "  # policies:\n"
    for group in others:
        if _live(group):
            lines = _group_lines(group)
            out += f"    - name: {_scalar(group.name)}\n"
            out += "".join(f"      {line}\n" for line in lines)
        else:
            out += _commented_out(group)
    return out


def _own(group: _Group) -> str:
    """The pool's own policy: as it is where it can be; else with what keeps it valid."""
    if _live(group):
        return "".join(f"  {line}\n" for line in _group_lines(group))
    out = ""
    if group.metric is None:
        out += _comment(
            [
                f"{group.first.read} cannot be a controller metric, so the pool scales on the "
                "default, backlog_per_task: the thresholds and steps below are kept as they "
                "were, in the old metric's units, and must be retuned for it."
            ],
            2,
        )
    else:
        out += _group_metric(group, 2)
    tracking = group.rules.get("targetTracking")
    if tracking is not None and not has_target_tracking():
        # The configuration cannot hold target tracking yet: steps that keep the metric
        # near its target stand in, and the policy stays beside them, commented out.
        for rule in _approximated(tracking).values():
            out += _rule_lines(rule, 2)
        note = "targetTracking is not in this controller's configuration yet: kept, commented out."
        out += _comment([note], 2) + f"  # targetTracking: {_flow(tracking.spec)}\n"
        return out
    for rule in group.rules.values():
        out += _rule_lines(rule, 2)
    return out


def _group_metric(group: _Group, indent: int) -> str:
    pad = " " * indent
    first = group.first
    out = _comment(_backlog_note(group.metric), indent) + f"{pad}metric: {group.metric}\n"
    if first.statistic is not None:
        out += f"{pad}statistic: {first.statistic}\n"
    if first.window is not None:
        out += f"{pad}window: {format_duration(first.window)}\n"
    return out


def _group_lines(group: _Group) -> list[str]:
    """The group as YAML lines without indentation (comments included)."""
    text = _group_metric(group, 0) + "".join(_rule_lines(r, 0) for r in group.rules.values())
    return text.splitlines()


def _commented_out(group: _Group) -> str:
    """A group the configuration cannot hold, as the `policies` entry it would be."""
    if group.metric is None:
        why = f"{group.first.read} cannot be a controller metric"
        rules = "".join(_rule_lines(rule, 0) for rule in group.rules.values())
        lines = ["metric: <a controller metric; retune what follows for it>", *rules.splitlines()]
    else:
        why = "this controller's configuration cannot hold target tracking yet"
        lines = _group_lines(group)
    note = _comment([f"Not imported: {why}; kept as the entry it would be, commented out."], 4)
    return note + f"    # - name: {group.name}\n" + "".join(f"    #   {line}\n" for line in lines)


def _backlog_note(metric: str | None) -> list[str]:
    if metric is None or metric in SEES_BACKLOG:
        return []
    return [
        f"{metric} cannot see the backlog: tasks waiting in the queue do not move it, so a pool "
        "that is full looks the same with 0 or 10,000 messages waiting. Consider metric: "
        "backlog_per_task (messages waiting plus tasks running, per ECS task), with thresholds "
        "retuned to it."
    ]


def _approximated(tracking: _Rule) -> dict[str, _Rule]:
    """Step policies that hold the metric near the target, where targetTracking is missing."""
    spec = tracking.spec
    target = float(spec["targetValue"])
    note = (
        f"Approximates {tracking.source}, target {_text(target)}, one task at a time: out at "
        f"the target, in below {SCALE_IN_BAND:.0%} of it."
    )
    out: dict[str, Any] = {
        "threshold": _clean(target),
        "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
    }
    if "scaleOutCooldown" in spec:
        out["cooldown"] = spec["scaleOutCooldown"]
    rules = {
        "scaleOut": _Rule("scaleOut", tracking.name, tracking.source, out, "", comments=[note])
    }
    if not spec["disableScaleIn"]:
        below: dict[str, Any] = {
            "threshold": _clean(round(target * SCALE_IN_BAND, 6)),
            "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
        }
        if "scaleInCooldown" in spec:
            below["cooldown"] = spec["scaleInCooldown"]
        rules["scaleIn"] = _Rule("scaleIn", tracking.name, tracking.source, below, "")
    return rules


def _rule_lines(rule: _Rule, indent: int) -> str:
    pad = " " * indent
    if rule.key == "targetTracking":
        return _comment(rule.comments, indent) + f"{pad}targetTracking: {_flow(rule.spec)}\n"
    out = f"{pad}{rule.key}:\n" + _comment(rule.comments, indent + 2)
    for name in ("threshold", "adjustmentType", "minAdjustmentMagnitude", "cooldown"):
        if name in rule.spec:
            out += f"{pad}  {name}: {_scalar(rule.spec[name])}\n"
    out += f"{pad}  steps:\n"
    out += "".join(f"{pad}    - {_flow(step)}\n" for step in rule.spec["steps"])
    return out


def _flow(mapping: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in mapping.items()) + "}"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _text(value)
    text = str(value)
    # Plain when YAML reads it back as the same string; JSON's quoting is YAML's too.
    plain = re.fullmatch(r"[A-Za-z0-9_./@:-]+", text) is not None and not text.endswith(":")
    return text if plain and yaml.safe_load(text) == text else json.dumps(text, ensure_ascii=False)


def _comment(lines: Sequence[str], indent: int) -> str:
    pad = " " * indent + "# "
    return "".join(
        "".join(
            f"{wrapped}\n"
            for wrapped in textwrap.wrap(
                line, WIDTH, initial_indent=pad, subsequent_indent=pad, break_on_hyphens=False
            )
        )
        for line in lines
    )
