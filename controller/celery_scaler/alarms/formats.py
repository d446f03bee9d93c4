"""How alarm plans and exports look (pure): a table for people, JSON for machines, and the
same resources as Terraform HCL for people who manage infrastructure there."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from celery_scaler.alarms.desired import (
    CONTROLLER,
    MANAGED_BY,
    MANAGED_NOTE,
    Change,
    Kind,
    Op,
    Plan,
    PolicyRef,
    Resource,
)

SYMBOL = {Op.CREATE: ("+", "green"), Op.UPDATE: ("~", "yellow"), Op.DELETE: ("-", "red")}


# --- plans ---------------------------------------------------------------------------------


def _show(value: Any, limit: int = 0) -> str:
    """A field's value for people; `limit` shortens long text."""
    text = _text(value)
    return text[: limit - 1] + "…" if limit and len(text) > limit else text


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def describe_change(change: Change) -> str:
    """`+ alarm celery-scaler/default/memory-high (pool default)`, for progress lines."""
    resource = change.resource
    owner = f" (pool {resource.pool})" if resource.pool else ""
    return f"{SYMBOL[change.op][0]} {resource.kind.value} {resource.name}{owner}"


def conflict_message(resource: Resource) -> str:
    return (
        f"{resource.kind.value} {resource.name} exists and is not this controller's "
        "(no ownership tag): delete it, import it by hand, or choose another "
        "alarms.namePrefix; nothing is applied until then"
    )


def summary(plan: Plan) -> str:
    if not plan.changes:
        return f"No changes: {plan.unchanged} resource(s) match the configuration."
    return (
        f"Plan: {plan.count(Op.CREATE)} to create, {plan.count(Op.UPDATE)} to change, "
        f"{plan.count(Op.DELETE)} to delete; {plan.unchanged} unchanged."
    )


def plan_view(plan: Plan) -> Text:
    """A line per change, each field an update changes under it, then the summary."""
    text = Text()
    for change in plan.changes:
        symbol, style = SYMBOL[change.op]
        text.append(symbol, style=style)
        text.append(describe_change(change)[1:] + "\n")
        for item in change.fields:
            before, after = _show(item.before, 60), _show(item.after, 60)
            text.append(f"    {item.path}: {before} → {after}\n")
    text.append(summary(plan))
    return text


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "changes": [
            {
                "op": change.op.value,
                "kind": change.resource.kind.value,
                "name": change.resource.name,
                "pool": change.resource.pool,
                "fields": [
                    {"path": item.path, "before": item.before, "after": item.after}
                    for item in change.fields
                ],
            }
            for change in plan.changes
        ],
        "conflicts": [
            {"kind": r.kind.value, "name": r.name, "pool": r.pool, "message": conflict_message(r)}
            for r in plan.conflicts
        ],
        "summary": {
            "create": plan.count(Op.CREATE),
            "update": plan.count(Op.UPDATE),
            "delete": plan.count(Op.DELETE),
            "unchanged": plan.unchanged,
        },
    }


# --- export: JSON ------------------------------------------------------------------------


def _request_tags(resource: Resource) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(resource.tags.items())]


def export_json(resources: Sequence[Resource]) -> dict[str, Any]:
    """The API requests that make the resources; an alarm's `ScalingPolicyActions` are
    the policies whose ARNs join its AlarmActions once they exist."""
    exported: dict[str, Any] = {"scalableTargets": [], "scalingPolicies": [], "alarms": []}
    for resource in resources:
        if resource.kind is Kind.TARGET:
            exported["scalableTargets"].append(dict(resource.body))
        elif resource.kind is Kind.POLICY:
            exported["scalingPolicies"].append(dict(resource.body))
        else:
            exported["alarms"].append(
                {
                    **resource.body,
                    "Tags": _request_tags(resource),
                    "ScalingPolicyActions": [
                        {"ResourceId": ref.resource_id, "PolicyName": ref.name}
                        for ref in resource.triggers
                    ],
                }
            )
    return exported


# --- export: Terraform ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """HCL written as is: a reference such as `aws_appautoscaling_policy.x.arn`."""

    text: str


@dataclass(frozen=True)
class Block:
    type: str
    labels: tuple[str, ...] = ()
    body: list[tuple[str, Any] | Block] = field(default_factory=list)


@dataclass(frozen=True)
class _Line:
    lead: str
    """The indentation and what comes before `=`, or the whole line when it has none to align."""
    assign: str | None = None
    """`= value` of an attribute written on one line."""


def _hcl_string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("${", "$${")
        .replace("%{", "%%{")
    )
    return f'"{escaped}"'


def _hcl_value(value: Any) -> str:
    """A value on one line (a non-empty map takes several: see `_attribute`)."""
    if isinstance(value, Expression):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return _hcl_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_hcl_value(item) for item in value) + "]"
    if isinstance(value, Mapping) and not value:
        return "{}"
    raise TypeError(f"no one-line HCL for {value!r}")


def _attribute(name: str, value: Any, indent: str) -> list[_Line]:
    if isinstance(value, Mapping) and value:
        inner = indent + "  "
        entries = [
            line
            for key, item in value.items()
            for line in _attribute(_hcl_string(str(key)), item, inner)
        ]
        return [_Line(f"{indent}{name} = {{"), *entries, _Line(f"{indent}}}")]
    return [_Line(f"{indent}{name}", f"= {_hcl_value(value)}")]


def _block_lines(block: Block, indent: str = "") -> list[_Line]:
    inner = indent + "  "
    header = " ".join([block.type, *(_hcl_string(label) for label in block.labels)])
    lines = [_Line(f"{indent}{header} {{")]
    for item in block.body:
        lines += _block_lines(item, inner) if isinstance(item, Block) else _attribute(*item, inner)
    return [*lines, _Line(f"{indent}}}")]


def _aligned(lines: Sequence[_Line]) -> str:
    """The lines as `terraform fmt` leaves them (hclwrite's formatCells): the `=` of each run
    of consecutive one-line attributes in one column, one space after the longest name. Any
    other line ends a run: a block's opening or closing brace, the first line of a value
    that spans several (`tags = {`, spaced as written), a blank line. Widths count
    characters, as hclwrite does, so a non-ASCII map key aligns as Terraform aligns it."""
    out: list[str] = []
    run: list[_Line] = []

    def close_run() -> None:
        width = max((len(line.lead) for line in run), default=0)
        out.extend(f"{line.lead.ljust(width)} {line.assign}" for line in run)
        run.clear()

    for line in lines:
        if line.assign is None:
            close_run()
            out.append(line.lead)
        else:
            run.append(line)
    close_run()
    return "\n".join(out)


def terraform_name(resource: Resource) -> str:
    """The resource's name in Terraform: `<pool>__<slug>`, `-` kept (Terraform allows it)."""
    owner = resource.pool or "controller"
    name = owner if resource.kind is Kind.TARGET else f"{owner}__{resource.slug}"
    return name.replace("/", "_") if name[0].isalpha() else f"_{name.replace('/', '_')}"


TERRAFORM_NOTE = "Exported by `celery-scaler alarms export`."


def _tf_tags(resource: Resource) -> dict[str, str]:
    # Without the ownership tags: what Terraform manages, `alarms apply` leaves alone.
    return {k: v for k, v in sorted(resource.tags.items()) if k not in (MANAGED_BY, CONTROLLER)}


def _tf_target(resource: Resource) -> Block:
    body = resource.body
    suspended = body["SuspendedState"]
    return Block(
        "resource",
        ("aws_appautoscaling_target", terraform_name(resource)),
        [
            ("service_namespace", body["ServiceNamespace"]),
            ("resource_id", body["ResourceId"]),
            ("scalable_dimension", body["ScalableDimension"]),
            ("min_capacity", body["MinCapacity"]),
            ("max_capacity", body["MaxCapacity"]),
            Block(
                "suspended_state",
                body=[
                    ("dynamic_scaling_in_suspended", suspended["DynamicScalingInSuspended"]),
                    ("dynamic_scaling_out_suspended", suspended["DynamicScalingOutSuspended"]),
                    ("scheduled_scaling_suspended", suspended["ScheduledScalingSuspended"]),
                ],
            ),
        ],
    )


def _tf_policy(resource: Resource, target: str) -> Block:
    config = resource.body["StepScalingPolicyConfiguration"]
    steps: list[tuple[str, Any] | Block] = [
        ("adjustment_type", config["AdjustmentType"]),
        ("cooldown", config["Cooldown"]),
        ("metric_aggregation_type", config["MetricAggregationType"]),
    ]
    if "MinAdjustmentMagnitude" in config:
        steps.append(("min_adjustment_magnitude", config["MinAdjustmentMagnitude"]))
    for step in config["StepAdjustments"]:
        row: list[tuple[str, Any] | Block] = []
        if "MetricIntervalLowerBound" in step:
            row.append(("metric_interval_lower_bound", step["MetricIntervalLowerBound"]))
        if "MetricIntervalUpperBound" in step:
            row.append(("metric_interval_upper_bound", step["MetricIntervalUpperBound"]))
        row.append(("scaling_adjustment", step["ScalingAdjustment"]))
        steps.append(Block("step_adjustment", body=row))
    reference = f"aws_appautoscaling_target.{target}"
    return Block(
        "resource",
        ("aws_appautoscaling_policy", terraform_name(resource)),
        [
            ("name", resource.name),
            ("policy_type", resource.body["PolicyType"]),
            ("service_namespace", Expression(f"{reference}.service_namespace")),
            ("resource_id", Expression(f"{reference}.resource_id")),
            ("scalable_dimension", Expression(f"{reference}.scalable_dimension")),
            Block("step_scaling_policy_configuration", body=steps),
        ],
    )


def _dimensions(dimensions: Sequence[Mapping[str, str]]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in dimensions}


def _tf_alarm(resource: Resource, policies: Mapping[PolicyRef, str]) -> Block:
    body = resource.body
    actions: list[Any] = [
        *body["AlarmActions"],
        *(
            Expression(f"aws_appautoscaling_policy.{policies[ref]}.arn")
            for ref in resource.triggers
        ),
    ]
    items: list[tuple[str, Any] | Block] = [
        ("alarm_name", body["AlarmName"]),
        ("alarm_description", body["AlarmDescription"].replace(MANAGED_NOTE, TERRAFORM_NOTE)),
        ("comparison_operator", body["ComparisonOperator"]),
        ("threshold", body["Threshold"]),
        ("evaluation_periods", body["EvaluationPeriods"]),
        ("datapoints_to_alarm", body["DatapointsToAlarm"]),
        ("treat_missing_data", body["TreatMissingData"]),
        ("actions_enabled", body["ActionsEnabled"]),
        ("alarm_actions", actions),
        ("ok_actions", body["OKActions"]),
    ]
    if "Metrics" in body:
        for query in body["Metrics"]:
            if "Expression" in query:
                rows: list[tuple[str, Any] | Block] = [
                    ("id", query["Id"]),
                    ("expression", query["Expression"]),
                    ("label", query["Label"]),
                    ("return_data", query["ReturnData"]),
                ]
            else:
                stat = query["MetricStat"]
                metric: list[tuple[str, Any] | Block] = [
                    ("namespace", stat["Metric"]["Namespace"]),
                    ("metric_name", stat["Metric"]["MetricName"]),
                    ("period", stat["Period"]),
                    ("stat", stat["Stat"]),
                ]
                if stat["Metric"]["Dimensions"]:
                    metric.append(("dimensions", _dimensions(stat["Metric"]["Dimensions"])))
                rows = [
                    ("id", query["Id"]),
                    ("return_data", query["ReturnData"]),
                    Block("metric", body=metric),
                ]
            items.append(Block("metric_query", body=rows))
    else:
        items += [
            ("namespace", body["Namespace"]),
            ("metric_name", body["MetricName"]),
            ("statistic", body["Statistic"]),
            ("period", body["Period"]),
        ]
        if body["Dimensions"]:
            items.append(("dimensions", _dimensions(body["Dimensions"])))
    items.append(("tags", _tf_tags(resource)))
    return Block("resource", ("aws_cloudwatch_metric_alarm", terraform_name(resource)), items)


def terraform(resources: Sequence[Resource]) -> str:
    """The resources as Terraform (hashicorp/aws): targets, policies, alarms."""
    targets = {r.name: terraform_name(r) for r in resources if r.kind is Kind.TARGET}
    policies = {r.ref: terraform_name(r) for r in resources if r.kind is Kind.POLICY}
    blocks = []
    for resource in resources:
        if resource.kind is Kind.TARGET:
            blocks.append(_tf_target(resource))
        elif resource.kind is Kind.POLICY:
            blocks.append(_tf_policy(resource, targets[str(resource.body["ResourceId"])]))
        else:
            blocks.append(_tf_alarm(resource, policies))
    header = (
        "# Generated by `celery-scaler alarms export --format terraform`: the alarms and the\n"
        "# scale-out-only fallback of the configuration. Resources managed here are not\n"
        "# celery-scaler's: `alarms apply` leaves them alone.\n"
    )
    return header + "\n" + "\n\n".join(_aligned(_block_lines(block)) for block in blocks) + "\n"
