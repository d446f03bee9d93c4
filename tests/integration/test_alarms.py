"""`alarms plan|apply|export` against the local AWS API: what apply creates, that a second
apply changes nothing, drift shown and repaired, a removed pool's resources deleted,
someone else's resources left alone, and the Terraform export naming the same things."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

from celery_scaler.alarms.desired import (
    CONTROLLER,
    MANAGED_BY,
    POOL,
    Kind,
    Op,
    Plan,
)
from celery_scaler.alarms.sync import apply, plan
from celery_scaler.compose import build_alarm_stores
from celery_scaler.core.autoscaling import SCALABLE_TARGET
from celery_scaler.core.config import Config, parse_config
from celery_scaler.local.aws_api import LocalAws
from tests.helpers import DESIGN_SPEC, run

pytestmark = pytest.mark.integration

SNS = "arn:aws:sns:us-east-1:123456789012:on-call"
PLAIN = SerializationOptions(strip_string_quotes=True)


def documents(prefix: str, cluster: str, pools: list[str], **controller: Any) -> str:
    """A configuration: DESIGN's example pool once per name, service = name."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "celery-scaler/v1",
            "kind": "Controller",
            "spec": {"alarms": {"namePrefix": prefix, "notify": [SNS]}, **controller},
        }
    ]
    for name in pools:
        spec = {**DESIGN_SPEC, "ecs": {"cluster": cluster, "service": name}}
        docs.append(
            {
                "apiVersion": "celery-scaler/v1",
                "kind": "WorkerPool",
                "metadata": {"name": name},
                "spec": {**spec, "alarms": {"memoryHigh": {"threshold": 900}}},
            }
        )
    return yaml.safe_dump_all(docs)


def settings(text: str) -> Config:
    return parse_config(text, "test.yaml", env={})


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def plan_now(config: Config, only: list[str] | None = None) -> Plan:
    chosen = [config.pool(name) for name in only] if only else None
    return plan(config, chosen, *build_alarm_stores(config))[2]


def apply_now(config: Config) -> list[str]:
    stores = build_alarm_stores(config)
    wanted, actual, planned = plan(config, None, *stores)
    done: list[str] = []
    apply(planned, wanted, actual, *stores, lambda change: done.append(change.resource.name))
    return done


def alarms(aws: LocalAws, prefix: str) -> dict[str, dict[str, Any]]:
    cloudwatch = aws.client("cloudwatch")
    found = cloudwatch.describe_alarms(AlarmNamePrefix=f"{prefix}/")["MetricAlarms"]
    for alarm in found:
        tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        alarm["Tags"] = {tag["Key"]: tag["Value"] for tag in tags}
    return {alarm["AlarmName"]: alarm for alarm in found}


def target(aws: LocalAws, cluster: str, service: str) -> dict[str, Any] | None:
    found = aws.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[f"service/{cluster}/{service}"]
    )["ScalableTargets"]
    return found[0] if found else None


def policies(aws: LocalAws, cluster: str, service: str) -> dict[str, dict[str, Any]]:
    found = aws.client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=f"service/{cluster}/{service}"
    )["ScalingPolicies"]
    return {policy["PolicyName"]: policy for policy in found}


def service_tags(aws: LocalAws, cluster: str, service: str) -> dict[str, str]:
    (described,) = aws.client("ecs").describe_services(
        cluster=cluster, services=[service], include=["TAGS"]
    )["services"]
    return {tag["key"]: tag["value"] for tag in described.get("tags", [])}


def test_apply_creates_everything_once_and_a_second_apply_changes_nothing(
    aws: LocalAws, unique: str, tmp_path: Path
) -> None:
    prefix, cluster = f"cs-{unique}", f"alarms-{unique}"
    aws.create_service(cluster, "default", 2)
    path = write(tmp_path, documents(prefix, cluster, ["default"]))

    pending = run("alarms", "plan", "--config", path, "--detailed-exitcode", "--output", "json")
    assert pending.returncode == 2, pending.stderr
    summary = json.loads(pending.stdout)["summary"]
    assert summary == {"create": 9, "update": 0, "delete": 0, "unchanged": 0}

    applied = run("alarms", "apply", "--config", path)
    assert applied.returncode == 0, applied.stderr
    assert "Applied 9 change(s)." in applied.stdout

    found = alarms(aws, prefix)
    slugs = [
        "failed-tasks-high",
        "retried-tasks-high",
        "memory-high",
        "too-few-workers",
        "not-keeping-up",
        "fallback-cpu-high",
    ]  # not active, reserved nor latency: no threshold given
    assert set(found) == {
        f"{prefix}/controller-heartbeat-missing",
        *(f"{prefix}/default/{slug}" for slug in slugs),
    }
    memory = found[f"{prefix}/default/memory-high"]
    assert (memory["Threshold"], memory["MetricName"], memory["Statistic"]) == (
        900.0,
        "memory_usage",
        "Maximum",
    )
    assert memory["Tags"] == {MANAGED_BY: "celery-scaler", CONTROLLER: prefix, POOL: "default"}
    assert memory["AlarmActions"] == [SNS]

    registered = target(aws, cluster, "default")
    assert registered is not None
    assert (registered["MinCapacity"], registered["MaxCapacity"]) == (1, 20)
    assert registered["SuspendedState"]["DynamicScalingInSuspended"] is True
    (policy,) = policies(aws, cluster, "default").values()
    assert policy["PolicyName"] == f"{prefix}/default/fallback-cpu"
    steps = policy["StepScalingPolicyConfiguration"]["StepAdjustments"]
    assert all(step["ScalingAdjustment"] > 0 for step in steps)
    trigger = found[f"{prefix}/default/fallback-cpu-high"]
    assert sorted(trigger["AlarmActions"]) == sorted([SNS, policy["PolicyARN"]])
    assert service_tags(aws, cluster, "default")[SCALABLE_TARGET] == f"{prefix}/default"

    again = run("alarms", "plan", "--config", path, "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == "No changes: 9 resource(s) match the configuration."


def test_drift_shows_in_the_plan_and_apply_repairs_it(aws: LocalAws, unique: str) -> None:
    prefix, cluster = f"cs-{unique}", f"alarms-{unique}"
    aws.create_service(cluster, "default", 2)
    config = settings(documents(prefix, cluster, ["default"]))
    apply_now(config)

    # Someone edits what the controller owns: an alarm's threshold, period and pool tag,
    # the target's maximum, the policy's steps (to scale in), and adds a policy of theirs.
    cloudwatch = aws.client("cloudwatch")
    name = f"{prefix}/default/failed-tasks-high"
    alarm = alarms(aws, prefix)[name]
    cloudwatch.put_metric_alarm(
        **{
            key: alarm[key]
            for key in (
                "AlarmName",
                "AlarmDescription",
                "AlarmActions",
                "OKActions",
                "ComparisonOperator",
                "EvaluationPeriods",
                "DatapointsToAlarm",
                "TreatMissingData",
                "Namespace",
                "MetricName",
                "Statistic",
                "Dimensions",
            )
        },
        Threshold=500.0,
        Period=60,
    )
    cloudwatch.tag_resource(ResourceARN=alarm["AlarmArn"], Tags=[{"Key": POOL, "Value": "x"}])
    autoscaling = aws.client("application-autoscaling")
    resource = {
        "ServiceNamespace": "ecs",
        "ResourceId": f"service/{cluster}/default",
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    autoscaling.register_scalable_target(**resource, MinCapacity=1, MaxCapacity=99)
    scale_in = {
        "AdjustmentType": "ChangeInCapacity",
        "Cooldown": 60,
        "StepAdjustments": [{"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": -1}],
    }
    autoscaling.put_scaling_policy(
        **resource,
        PolicyName=f"{prefix}/default/fallback-cpu",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration=scale_in,
    )
    autoscaling.put_scaling_policy(
        **resource,
        PolicyName="by-hand-scale-in",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration=scale_in,
    )

    drift = plan_now(config)
    changes = {(c.op, c.resource.name): c for c in drift.changes}
    fields = {f.path: (f.before, f.after) for f in changes[Op.UPDATE, name].fields}
    assert fields["Threshold"] == (500.0, 10.0)
    assert fields["Period"] == (60, 300)
    assert fields[f"Tags.{POOL}"] == ("x", "default")
    target_fields = {
        f.path: (f.before, f.after) for f in changes[Op.UPDATE, f"service/{cluster}/default"].fields
    }
    assert target_fields == {"MaxCapacity": (99, 20)}
    policy_change = changes[Op.UPDATE, f"{prefix}/default/fallback-cpu"]
    assert any("ScalingAdjustment" in f.path for f in policy_change.fields)
    assert (Op.DELETE, "by-hand-scale-in") in changes  # a managed target has no scale-in

    apply_now(config)
    assert plan_now(config).empty
    assert alarms(aws, prefix)[name]["Threshold"] == 10.0
    assert alarms(aws, prefix)[name]["Tags"][POOL] == "default"
    assert set(policies(aws, cluster, "default")) == {f"{prefix}/default/fallback-cpu"}
    (policy,) = policies(aws, cluster, "default").values()
    steps = policy["StepScalingPolicyConfiguration"]["StepAdjustments"]
    assert [step["ScalingAdjustment"] for step in steps] == [1]
    # The policy was written again: its alarm triggers it by its ARN as it is now.
    trigger = alarms(aws, prefix)[f"{prefix}/default/fallback-cpu-high"]
    assert policy["PolicyARN"] in trigger["AlarmActions"]


def test_a_removed_pools_resources_are_deleted_and_nothing_else(aws: LocalAws, unique: str) -> None:
    prefix, cluster = f"cs-{unique}", f"alarms-{unique}"
    for service in ("a", "b"):
        aws.create_service(cluster, service, 1)
    both = settings(documents(prefix, cluster, ["a", "b"]))
    apply_now(both)
    # An alarm under the prefix that is not the controller's (no ownership tags).
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{prefix}/b/by-hand",
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
        Threshold=1.0,
        Namespace="CeleryMetrics",
        MetricName="queue_depth",
        Statistic="Maximum",
        Period=60,
    )

    only_a = settings(documents(prefix, cluster, ["a"]))
    assert plan_now(only_a, ["a"]).empty  # one pool's plan leaves the others alone
    removal = plan_now(only_a)
    gone = {(c.resource.kind, c.resource.name) for c in removal.changes}
    assert {c.op for c in removal.changes} == {Op.DELETE}
    assert (Kind.TARGET, f"service/{cluster}/b") in gone
    assert (Kind.POLICY, f"{prefix}/b/fallback-cpu") in gone
    assert (Kind.ALARM, f"{prefix}/b/memory-high") in gone
    assert (Kind.ALARM, f"{prefix}/b/by-hand") not in gone

    apply_now(only_a)
    left = alarms(aws, prefix)
    assert [name for name in left if name.startswith(f"{prefix}/b/")] == [f"{prefix}/b/by-hand"]
    assert any(name.startswith(f"{prefix}/a/") for name in left)
    assert target(aws, cluster, "b") is None
    assert target(aws, cluster, "a") is not None
    assert SCALABLE_TARGET not in service_tags(aws, cluster, "b")
    assert plan_now(only_a).empty


def test_someone_elses_target_is_a_conflict_and_nothing_is_applied(
    aws: LocalAws, unique: str, tmp_path: Path
) -> None:
    prefix, cluster = f"cs-{unique}", f"alarms-{unique}"
    aws.create_service(cluster, "default", 1)
    # The original setup's scalable target, registered by hand-written Terraform.
    aws.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/{cluster}/default",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=5,
    )
    path = write(tmp_path, documents(prefix, cluster, ["default"]))
    for command in ("plan", "apply"):
        result = run("alarms", command, "--config", path)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.startswith(
            f"error: scalable-target service/{cluster}/default exists and is not this controller's"
        )
        assert "Traceback" not in result.stderr
    assert alarms(aws, prefix) == {}
    untouched = target(aws, cluster, "default")
    assert untouched is not None
    assert untouched["MaxCapacity"] == 5


def test_user_errors_are_one_line(aws: LocalAws, unique: str, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        documents(f"cs-{unique}", f"alarms-{unique}", ["default"], cloudwatch={"enabled": False}),
    )
    result = run("alarms", "plan", "--config", path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: the alarms watch the metrics the controller publishes")
    assert result.stderr.count("\n") == 1
    # With --detailed-exitcode 2 means "changes": an error is 1, as with terraform.
    missing = run("alarms", "plan", "--config", str(tmp_path / "none.yaml"), "--detailed-exitcode")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: configuration file")


def test_the_terraform_export_names_what_apply_creates(
    aws: LocalAws, unique: str, tmp_path: Path
) -> None:
    prefix, cluster = f"cs-{unique}", f"alarms-{unique}"
    aws.create_service(cluster, "default", 1)
    text = documents(prefix, cluster, ["default"], broker="sqs://", sqs={"queueNamePrefix": "p-"})
    text = text.replace("metric: backlog_per_task", "metric: queue_depth")
    config = settings(text)
    path = write(tmp_path, text)
    exported = run("alarms", "export", "--config", path, "--format", "terraform")
    assert exported.returncode == 0, exported.stderr
    resources: dict[str, dict[str, Any]] = {}
    for block in hcl2.loads(exported.stdout, serialization_options=PLAIN)["resource"]:
        for kind, named in block.items():
            for body in named.values():
                resources.setdefault(kind, {}).update(
                    {body.get("alarm_name") or body.get("name") or body["resource_id"]: body}
                )

    apply_now(config)
    created = alarms(aws, prefix)
    assert set(resources["aws_cloudwatch_metric_alarm"]) == set(created)
    for name, body in resources["aws_cloudwatch_metric_alarm"].items():
        assert body["threshold"] == created[name]["Threshold"], name
        assert body["comparison_operator"] == created[name]["ComparisonOperator"], name
        assert body["evaluation_periods"] == created[name]["EvaluationPeriods"], name
    assert f"{prefix}/default/fallback-queue-depth-high" in created
    assert set(resources["aws_appautoscaling_policy"]) == set(policies(aws, cluster, "default"))
    registered = target(aws, cluster, "default")
    assert registered is not None
    (terraform_target,) = resources["aws_appautoscaling_target"].values()
    assert terraform_target["resource_id"] == registered["ResourceId"]
    assert terraform_target["max_capacity"] == registered["MaxCapacity"]

    as_json = run("alarms", "export", "--config", path, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    requests = json.loads(as_json.stdout)
    assert {a["AlarmName"]: a["Threshold"] for a in requests["alarms"]} == {
        name: alarm["Threshold"] for name, alarm in created.items()
    }
