"""The alarms and the fallback as the configuration asks for them, the plan against what
exists, and how both look (pure: no AWS)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

from celery_scaler.alarms.desired import (
    CONTROLLER,
    MANAGED_BY,
    POOL,
    UNKNOWN,
    Actual,
    AlarmsError,
    Kind,
    Op,
    PolicyRef,
    Resource,
    desired,
    diff,
    normalize_alarm,
    wanted_body,
)
from celery_scaler.alarms.formats import export_json, plan_json, plan_view, terraform
from celery_scaler.core.autoscaling import SCALABLE_TARGET
from celery_scaler.core.config import Config, parse_config
from celery_scaler.core.errors import ConfigError
from tests.helpers import DESIGN_SPEC

SNS = "arn:aws:sns:eu-west-1:123456789012:on-call"
PLAIN = SerializationOptions(strip_string_quotes=True)


def config(controller: dict[str, Any] | None = None, **pools: dict[str, Any]) -> Config:
    """A configuration: the Controller's spec, and pools by name (DESIGN's example pool
    with the given changes)."""
    documents = [{"apiVersion": "celery-scaler/v1", "kind": "Controller", "spec": controller or {}}]
    for name, changes in (pools or {"default": {}}).items():
        documents.append(
            {
                "apiVersion": "celery-scaler/v1",
                "kind": "WorkerPool",
                "metadata": {"name": name},
                "spec": {**DESIGN_SPEC, **changes},
            }
        )
    return parse_config(yaml.safe_dump_all(documents), "test.yaml", env={})


def by_name(resources: tuple[Resource, ...]) -> dict[str, Resource]:
    return {resource.name: resource for resource in resources}


# --------------------------------------------------------------------------- what is wanted


def test_a_redis_pool_gets_the_alarms_with_defaults_and_the_cpu_fallback() -> None:
    found = by_name(desired(config()))
    assert set(found) == {
        "service/prod/celery-worker",
        "celery-scaler/default/fallback-cpu",
        "celery-scaler/controller-heartbeat-missing",
        "celery-scaler/default/failed-tasks-high",
        "celery-scaler/default/retried-tasks-high",
        "celery-scaler/default/too-few-workers",
        "celery-scaler/default/not-keeping-up",
        "celery-scaler/default/fallback-cpu-high",
    }  # active, reserved, memory and latency have no threshold until given one
    failed = found["celery-scaler/default/failed-tasks-high"].body
    assert (failed["MetricName"], failed["Statistic"], failed["Period"]) == (
        "failed_tasks",
        "Sum",
        300,
    )
    assert failed["Dimensions"] == [{"Name": "Pool", "Value": "default"}]
    assert failed["Namespace"] == "CeleryMetrics"
    assert (failed["Threshold"], failed["TreatMissingData"]) == (10.0, "notBreaching")
    assert found["celery-scaler/default/failed-tasks-high"].tags == {
        MANAGED_BY: "celery-scaler",
        CONTROLLER: "celery-scaler",
        POOL: "default",
    }


def test_derived_thresholds_follow_the_pool() -> None:
    found = by_name(desired(config(default={"minCapacity": 3})))
    workers = found["celery-scaler/default/too-few-workers"].body
    assert (workers["ComparisonOperator"], workers["Threshold"]) == ("LessThanThreshold", 3.0)

    behind = found["celery-scaler/default/not-keeping-up"].body
    assert behind["Threshold"] == 10.0  # the scale-out threshold
    expression = next(q for q in behind["Metrics"] if "Expression" in q)
    # At maxCapacity the value falls below the threshold: being full is not being behind.
    assert expression["Expression"] == "IF(desired < 20, value, 9)"
    assert behind["EvaluationPeriods"] == behind["DatapointsToAlarm"] == 15

    heartbeat = found["celery-scaler/controller-heartbeat-missing"]
    assert heartbeat.pool is None
    assert POOL not in heartbeat.tags
    assert heartbeat.body["MetricName"] == "controller_heartbeat"
    assert heartbeat.body["Dimensions"] == []  # the controller publishes it without any
    assert (heartbeat.body["Statistic"], heartbeat.body["TreatMissingData"]) == (
        "SampleCount",
        "breaching",
    )
    assert (heartbeat.body["ComparisonOperator"], heartbeat.body["Threshold"]) == (
        "LessThanThreshold",
        1.0,
    )


def test_the_fallback_only_scales_out_and_is_triggered_by_its_alarm() -> None:
    found = by_name(desired(config()))
    target = found["service/prod/celery-worker"]
    assert target.body == {
        "ServiceNamespace": "ecs",
        "ResourceId": "service/prod/celery-worker",
        "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": 1,
        "MaxCapacity": 20,
        "SuspendedState": {
            "DynamicScalingInSuspended": True,
            "DynamicScalingOutSuspended": False,
            "ScheduledScalingSuspended": False,
        },
    }
    assert target.tags == {SCALABLE_TARGET: "celery-scaler/default"}
    policy = found["celery-scaler/default/fallback-cpu"].body
    assert policy["PolicyType"] == "StepScaling"
    assert policy["StepScalingPolicyConfiguration"] == {
        "AdjustmentType": "ChangeInCapacity",
        "Cooldown": 60,
        "MetricAggregationType": "Average",
        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
    }
    alarm = found["celery-scaler/default/fallback-cpu-high"]
    assert alarm.triggers == (
        PolicyRef("service/prod/celery-worker", "celery-scaler/default/fallback-cpu"),
    )
    queries = {q["Id"]: q for q in alarm.body["Metrics"]}
    assert queries["gated"]["Expression"] == "IF(FILL(heartbeat, 0) < 1, cpu, 0)"
    assert queries["cpu"]["MetricStat"]["Metric"] == {
        "Namespace": "AWS/ECS",
        "MetricName": "CPUUtilization",
        "Dimensions": [
            {"Name": "ClusterName", "Value": "prod"},
            {"Name": "ServiceName", "Value": "celery-worker"},
        ],
    }
    assert (alarm.body["Threshold"], alarm.body["TreatMissingData"]) == (80.0, "notBreaching")


def test_periods_follow_the_interval() -> None:
    found = by_name(desired(config({"interval": "90s"})))
    # Each period must hold at least one pass: 90 s rounds up to 2 minutes.
    assert found["celery-scaler/controller-heartbeat-missing"].body["Period"] == 120
    assert found["celery-scaler/default/too-few-workers"].body["Period"] == 120
    gate = found["celery-scaler/default/fallback-cpu-high"].body["Metrics"]
    assert {q["MetricStat"]["Period"] for q in gate if "MetricStat" in q} == {120}
    assert found["celery-scaler/default/failed-tasks-high"].body["Period"] == 300


def test_sqs_pools_fall_back_on_the_queues_own_depth_under_celerys_names() -> None:
    settings = config(
        {"broker": "sqs://", "sqs": {"queueNamePrefix": "prod-"}},
        default={"queues": ["celery", "high.priority"], "metric": "queue_depth"},
    )
    found = by_name(desired(settings))
    # No inspect on SQS: no worker alarms.
    assert "celery-scaler/default/too-few-workers" not in found
    assert "celery-scaler/default/failed-tasks-high" not in found
    alarm = found["celery-scaler/default/fallback-queue-depth-high"]
    names = [
        q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
        for q in alarm.body["Metrics"]
        if "MetricStat" in q
    ]
    assert names == ["prod-celery", "prod-high-priority"]
    total = next(q for q in alarm.body["Metrics"] if "Expression" in q)
    assert total["Expression"] == "FILL(queue0, 0) + FILL(queue1, 0)"
    assert alarm.body["Threshold"] == 200.0  # scaleOut.threshold x maxCapacity
    policy = found["celery-scaler/default/fallback-queue-depth"].body
    assert policy["StepScalingPolicyConfiguration"]["MetricAggregationType"] == "Maximum"


def test_pools_override_the_controllers_alarms_field_by_field() -> None:
    settings = config(
        {"alarms": {"notify": [SNS], "notifyOnOk": False, "memoryHigh": {"threshold": 900}}},
        quiet={"alarms": {"enabled": False}},
        big={
            "ecs": {"cluster": "prod", "service": "big"},
            "alarms": {
                "memoryHigh": {"evaluationPeriods": 2},
                "fallback": {"cpu": {"enabled": False}},
            },
        },
    )
    found = by_name(desired(settings))
    assert not [r for r in found.values() if r.pool == "quiet"]
    memory = found["celery-scaler/big/memory-high"].body
    assert (memory["Threshold"], memory["EvaluationPeriods"]) == (900.0, 2)
    assert memory["AlarmActions"] == [SNS]
    assert memory["OKActions"] == []
    assert not [r for r in found.values() if r.kind is Kind.TARGET]


def test_one_pool_leaves_out_the_controllers_own_alarm() -> None:
    settings = config(a={}, b={"ecs": {"cluster": "prod", "service": "b"}})
    only = desired(settings, [settings.pool("b")])
    assert {r.pool for r in only} == {"b"}


def test_no_fallback_for_a_pool_that_cannot_grow() -> None:
    found = desired(config(default={"minCapacity": 4, "maxCapacity": 4}))
    assert not [r for r in found if r.kind is not Kind.ALARM or "fallback" in r.name]


@pytest.mark.parametrize(
    ("controller", "pool", "message"),
    [
        ({"cloudwatch": {"enabled": False}}, {}, "spec.cloudwatch.enabled is false"),
        (
            {},
            {"alarms": {"notKeepingUp": {"period": "2h", "evaluationPeriods": 15}}},
            "longer than the one day CloudWatch allows",
        ),
        (
            {"interval": "5m"},
            {"alarms": {"fallback": {"cpu": {"period": "1m"}}}},
            "would read as the controller gone",
        ),
    ],
)
def test_what_cloudwatch_cannot_do_is_one_clear_error(
    controller: dict[str, Any], pool: dict[str, Any], message: str
) -> None:
    with pytest.raises(AlarmsError, match=message):
        desired(config(controller, default=pool))


def fallback_steps(kind: str, *steps: tuple[float, float | None, int]) -> dict[str, Any]:
    """`alarms` with the given (lower, upper, adjustment) steps for one fallback."""
    rows = [
        {"metricIntervalLowerBound": lower, "scalingAdjustment": adjustment}
        | ({} if upper is None else {"metricIntervalUpperBound": upper})
        for lower, upper, adjustment in steps
    ]
    return {"fallback": {kind: {"steps": rows}}}


@pytest.mark.parametrize(
    ("alarms", "message"),
    [
        (
            {"fallback": {"cpu": {"adjustmentType": "ExactCapacity"}}},
            "fallback.cpu.adjustmentType: ExactCapacity can set a count below",
        ),
        (fallback_steps("cpu", (0, None, -1)), "fallback.cpu.steps: the fallback only scales out"),
        (
            fallback_steps("queueDepth", (5, None, 1)),
            "the steps start at metricIntervalLowerBound 0",
        ),
        (
            fallback_steps("cpu", (0, 5, 1), (6, None, 2)),
            "fallback.cpu.steps: steps leave a gap between 5 and 6",
        ),
        ({"notify": ["on-call"]}, "alarms.notify: expected an ARN"),
        ({"memoryHigh": {"period": "45s"}}, "memoryHigh.period: CloudWatch takes 10s, 20s, 30s"),
        (
            {"memoryHigh": {"evaluationPeriods": 2, "datapointsToAlarm": 3}},
            "memoryHigh.datapointsToAlarm: 3 is more than evaluationPeriods (2)",
        ),
        ({"namePrefix": "x"}, "alarms.namePrefix: unknown field"),  # the Controller's only
    ],
)
def test_alarm_settings_are_checked_with_the_configuration(
    alarms: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(default={"alarms": alarms})


def test_a_pool_and_the_controller_can_be_wrong_only_together() -> None:
    with pytest.raises(ConfigError, match=r"spec.alarms \(over the Controller's\): notKeepingUp"):
        config(
            {"alarms": {"notKeepingUp": {"evaluationPeriods": 3}}},
            default={"alarms": {"notKeepingUp": {"datapointsToAlarm": 4}}},
        )


# --------------------------------------------------------------------------- the plan

ARN = "arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:1:resource/ecs/x:policyName/p"


def existing(resources: tuple[Resource, ...]) -> Actual:
    """What exists after a perfect apply of `resources`."""
    arns = {r.ref: ARN for r in resources if r.kind is Kind.POLICY}
    applied = tuple(dataclasses.replace(r, body=wanted_body(r, arns)) for r in resources)
    return Actual(applied, arns)


def test_nothing_exists_so_everything_is_created_targets_first() -> None:
    wanted = desired(config())
    plan = diff(wanted, Actual(()))
    assert [c.op for c in plan.changes] == [Op.CREATE] * len(wanted)
    kinds = [c.resource.kind for c in plan.changes]
    assert kinds == sorted(kinds, key=[Kind.TARGET, Kind.POLICY, Kind.ALARM].index)


def test_what_matches_is_left_alone() -> None:
    wanted = desired(config())
    plan = diff(wanted, existing(wanted))
    assert plan.empty
    assert plan.unchanged == len(wanted)


def test_drift_shows_field_by_field() -> None:
    wanted = desired(config())
    actual = existing(wanted)
    edited = []
    for resource in actual.resources:
        if resource.name.endswith("failed-tasks-high"):
            body = {**resource.body, "Threshold": 99.0, "Period": 60}
            resource = dataclasses.replace(resource, body=body, tags={**resource.tags, POOL: "x"})
        if resource.name.endswith("fallback-cpu-high"):
            resource = dataclasses.replace(resource, body={**resource.body, "AlarmActions": []})
        edited.append(resource)
    plan = diff(wanted, dataclasses.replace(actual, resources=tuple(edited)))
    changes = {c.resource.name: c for c in plan.changes}
    assert set(changes) == {
        "celery-scaler/default/failed-tasks-high",
        "celery-scaler/default/fallback-cpu-high",
    }
    failed = changes["celery-scaler/default/failed-tasks-high"]
    assert failed.op is Op.UPDATE
    assert {(f.path, f.before, f.after) for f in failed.fields} == {
        ("Period", 60, 300),
        ("Threshold", 99.0, 10.0),
        (f"Tags.{POOL}", "x", "default"),
    }
    cpu = changes["celery-scaler/default/fallback-cpu-high"]
    assert [(f.path, f.before, f.after) for f in cpu.fields] == [("AlarmActions", [], [ARN])]


def test_an_alarm_waits_for_its_policys_arn() -> None:
    wanted = desired(config())
    actual = existing(wanted)
    without_policy = tuple(r for r in actual.resources if r.kind is not Kind.POLICY)
    plan = diff(wanted, Actual(without_policy))
    cpu = next(c for c in plan.changes if c.resource.name.endswith("fallback-cpu-high"))
    assert cpu.fields[0].after == [UNKNOWN]


def test_what_is_no_longer_wanted_goes_alarms_first() -> None:
    settings = config(a={}, b={"ecs": {"cluster": "prod", "service": "b"}})
    actual = existing(desired(settings))
    plan = diff(desired(settings, [settings.pool("a")]), actual.of_pools(["a"]))
    assert plan.empty  # one pool's plan never touches another's

    plan = diff(desired(config(a={})), actual)
    gone = [(c.op, c.resource.kind, c.resource.pool) for c in plan.changes]
    assert gone == [
        *[(Op.DELETE, Kind.ALARM, "b")] * 5,
        (Op.DELETE, Kind.POLICY, "b"),
        (Op.DELETE, Kind.TARGET, "b"),
    ]


def test_someone_elses_resource_under_a_wanted_name_is_a_conflict() -> None:
    wanted = desired(config())
    target = next(r for r in wanted if r.kind is Kind.TARGET)
    plan = diff(wanted, Actual((), foreign=frozenset({target.key})))
    assert plan.conflicts == (target,)
    assert target.key not in {c.resource.key for c in plan.changes}
    assert not plan.empty


def test_described_alarms_compare_as_requests() -> None:
    wanted = next(r for r in desired(config()) if r.name.endswith("failed-tasks-high"))
    described = {
        **wanted.body,
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:x",
        "StateValue": "OK",
        "Metrics": [],
        "Threshold": 10,  # an int where the request had a float
    }
    del described["DatapointsToAlarm"]  # AWS omits it when it equals EvaluationPeriods
    assert normalize_alarm(described) == wanted.body
    with_unit = normalize_alarm({**described, "Unit": "Count"})
    assert with_unit["Unit"] == "Count"  # a field someone else set shows as drift


# --------------------------------------------------------------------------- rendering


def test_the_plan_for_people_and_for_machines() -> None:
    wanted = desired(config())
    actual = existing(wanted)
    failed = next(r for r in actual.resources if r.name.endswith("failed-tasks-high"))
    drifted = dataclasses.replace(failed, body={**failed.body, "Threshold": 99.0})
    resources = tuple(drifted if r is failed else r for r in actual.resources)
    plan = diff(wanted, dataclasses.replace(actual, resources=resources))
    text = plan_view(plan).plain
    assert "~ alarm celery-scaler/default/failed-tasks-high (pool default)" in text
    assert "    Threshold: 99 → 10" in text
    assert text.endswith("Plan: 0 to create, 1 to change, 0 to delete; 7 unchanged.")
    document = json.loads(json.dumps(plan_json(plan)))
    assert document["summary"] == {"create": 0, "update": 1, "delete": 0, "unchanged": 7}
    assert document["changes"][0]["fields"][-1] == {
        "path": "Threshold",
        "before": 99.0,
        "after": 10.0,
    }


def test_terraform_export_parses_and_references_the_policy() -> None:
    settings = config(
        {"broker": "sqs://", "alarms": {"notify": [SNS]}},
        default={"metric": "queue_depth", "alarms": {"memoryHigh": {"threshold": 5}}},
    )
    wanted = desired(settings)
    parsed = hcl2.loads(terraform(wanted), serialization_options=PLAIN)
    blocks = {
        (kind, name): body
        for resource in parsed["resource"]
        for kind, named in resource.items()
        for name, body in named.items()
    }
    assert ("aws_appautoscaling_target", "default") in blocks
    policy = blocks[("aws_appautoscaling_policy", "default__fallback-queue-depth")]
    assert "aws_appautoscaling_target.default.resource_id" in policy["resource_id"]
    alarm = blocks[("aws_cloudwatch_metric_alarm", "default__fallback-queue-depth-high")]
    assert alarm["threshold"] == 200
    reference = "aws_appautoscaling_policy.default__fallback-queue-depth.arn"
    assert any(reference in str(action) for action in alarm["alarm_actions"])
    assert SNS in str(alarm["alarm_actions"])
    heartbeat = blocks[("aws_cloudwatch_metric_alarm", "controller__heartbeat-missing")]
    assert heartbeat["treat_missing_data"] == "breaching"
    # Terraform's resources are Terraform's: no ownership tags for `alarms apply` to claim.
    assert MANAGED_BY not in str(blocks)


def test_terraform_strings_survive_hcl_escaping() -> None:
    from celery_scaler.alarms.formats import _hcl_string

    tricky = 'a "quoted" ${not_interpolated} %{nor} back\\slash\nline'
    parsed = hcl2.loads(f"x = {_hcl_string(tricky)}\n", serialization_options=PLAIN)["x"]
    # python-hcl2 leaves HCL's template escapes ($${, %%{) as written; Terraform does not.
    assert parsed.replace("$${", "${").replace("%%{", "%{") == tricky


def test_json_export_is_the_api_requests() -> None:
    exported = export_json(desired(config()))
    assert [t["ResourceId"] for t in exported["scalableTargets"]] == ["service/prod/celery-worker"]
    cpu = next(a for a in exported["alarms"] if a["AlarmName"].endswith("fallback-cpu-high"))
    assert cpu["ScalingPolicyActions"] == [
        {
            "ResourceId": "service/prod/celery-worker",
            "PolicyName": "celery-scaler/default/fallback-cpu",
        }
    ]
    assert {"Key": POOL, "Value": "default"} in cpu["Tags"]


def test_the_iam_policy_for_alarms_is_scoped_to_the_owned_names() -> None:
    from celery_scaler.adapters.permissions import Tool
    from celery_scaler.compose import aws_adapters
    from celery_scaler.iam import Where, policy

    settings = config({"alarms": {"namePrefix": "prod-scaler"}})
    here = Where("aws", "eu-west-1", "123456789012")
    without = policy(settings, aws_adapters(settings), here)
    assert "cloudwatch:PutMetricAlarm" not in json.dumps(without)
    statements = {
        s["Sid"]: s
        for s in policy(settings, aws_adapters(settings, [Tool.ALARMS]), here)["Statement"]
    }
    assert statements["ManagedAlarms"]["Resource"] == [
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:prod-scaler/*"
    ]
    assert "cloudwatch:PutMetricAlarm" in statements["ManagedAlarms"]["Action"]
    # A removed pool's service is found in the pools' clusters, and only there.
    assert statements["EcsClusterServiceStateTags"]["Resource"] == [
        "arn:aws:ecs:eu-west-1:123456789012:service/prod/*"
    ]
    # Scalable target writes only on ECS services' desired counts: never another service's
    # target (a DynamoDB table, an Aurora cluster) in the same account.
    assert not any(
        action.startswith("application-autoscaling:") and "Describe" not in action
        for action in statements["AnyResource"]["Action"]
    )
    targets = statements["EcsScalableTargets"]
    assert "application-autoscaling:RegisterScalableTarget" in targets["Action"]
    assert "application-autoscaling:PutScalingPolicy" in targets["Action"]
    assert targets["Resource"] == [
        "arn:aws:application-autoscaling:eu-west-1:123456789012:scalable-target/*"
    ]
    assert targets["Condition"] == {
        "StringEquals": {
            "application-autoscaling:service-namespace": "ecs",
            "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount",
        }
    }
    # The first RegisterScalableTarget in an account creates AAS's ECS service-linked role.
    role = statements["AutoScalingServiceRole"]
    assert role["Action"] == ["iam:CreateServiceLinkedRole"]
    assert role["Resource"] == [
        "arn:aws:iam::123456789012:role/aws-service-role/ecs.application-autoscaling.amazonaws.com"
        "/AWSServiceRoleForApplicationAutoScaling_ECSService"
    ]
    assert role["Condition"] == {
        "StringLike": {"iam:AWSServiceName": "ecs.application-autoscaling.amazonaws.com"}
    }


# --------------------------------------------------------------------------- target tracking


TRACKING_ONLY = {"scaleOut": None, "scaleIn": None, "targetTracking": {"targetValue": 25}}


def test_a_target_tracking_pool_keeps_the_step_fallback_and_exports_whole() -> None:
    # The controller's own policies are never exported: Application Auto Scaling gets the
    # scale-out-only fallback, a step policy, whatever the pool's policies are.
    settings = config(
        {"broker": "sqs://"},
        default={"metric": "queue_depth", **TRACKING_ONLY},
    )
    wanted = desired(settings)
    found = by_name(wanted)
    policies = [r.body for r in wanted if r.kind is Kind.POLICY]
    assert {p["PolicyType"] for p in policies} == {"StepScaling"}
    # Where the pool scales out: its target, for the derived thresholds.
    assert found["celery-scaler/default/not-keeping-up"].body["Threshold"] == 25.0
    assert found["celery-scaler/default/fallback-queue-depth-high"].body["Threshold"] == 500.0
    parsed = hcl2.loads(terraform(wanted), serialization_options=PLAIN)
    assert parsed["resource"]
    assert export_json(wanted)["scalingPolicies"]


def test_not_keeping_up_watches_the_first_policy_that_scales_out() -> None:
    burst = {
        "name": "burst",
        "metric": "queue_depth",
        "scaleOut": {
            "threshold": 100,
            "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 5}],
        },
    }
    drain_only = {
        "scaleOut": None,
        "scaleIn": DESIGN_SPEC["scaleIn"],
        "policies": [burst],
    }
    behind = by_name(desired(config(default=drain_only)))["celery-scaler/default/not-keeping-up"]
    metric = next(q for q in behind.body["Metrics"] if q["Id"] == "value")
    assert metric["MetricStat"]["Metric"]["MetricName"] == "queue_depth"
    assert behind.body["Threshold"] == 100.0
