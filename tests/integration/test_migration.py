"""Coming from an existing AWS set-up, through the command, against the local AWS API and
Redis: an Application Auto Scaling target with a step policy and its alarm, registered as
Terraform would, is a conflict (the pool holds, `Conflict` names the policy, exit 1);
`takeover` changes nothing without --apply, suspends that dynamic scaling with it (after
which a pass has no conflict) and `--undo --apply` restores it; the controller's own
fallback is no conflict; and `config import --terraform` turns a typical set-up into
documents `config validate` accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from celery_scaler.core.autoscaling import TAKEOVER
from celery_scaler.local.aws_api import LocalAws
from tests.helpers import (
    TERRAFORM_STEP_SETUP,
    desired_count,
    json_lines,
    pool_config,
    publish,
    run,
    write,
)

pytestmark = pytest.mark.integration

DESIRED = "ecs:service:DesiredCount"


def register_step_scaling(aws: LocalAws, cluster: str) -> str:
    """The original set-up, as Terraform's aws_appautoscaling_target and _policy and an
    aws_cloudwatch_metric_alarm with alarm_actions = [the policy's arn] make it."""
    rid = f"service/{cluster}/workers"
    autoscaling = aws.client("application-autoscaling")
    autoscaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=rid,
        ScalableDimension=DESIRED,
        MinCapacity=1,
        MaxCapacity=10,
    )
    arn = autoscaling.put_scaling_policy(
        PolicyName="workers-scale-out",
        ServiceNamespace="ecs",
        ResourceId=rid,
        ScalableDimension=DESIRED,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "Cooldown": 60,
            "MetricAggregationType": "Average",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        },
    )["PolicyARN"]
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName=f"{cluster}-workers-busy",
        Namespace="CeleryMetrics",
        MetricName="active_tasks",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=2,
        Threshold=10.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[arn],
    )
    return rid


def target(aws: LocalAws, rid: str) -> dict[str, Any]:
    (found,) = aws.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[rid]
    )["ScalableTargets"]
    return dict(found)


def suspended(aws: LocalAws, rid: str) -> tuple[bool, bool]:
    state = target(aws, rid).get("SuspendedState") or {}
    return (
        bool(state.get("DynamicScalingInSuspended")),
        bool(state.get("DynamicScalingOutSuspended")),
    )


def service_tags(aws: LocalAws, cluster: str) -> dict[str, str]:
    (service,) = aws.client("ecs").describe_services(
        cluster=cluster, services=["workers"], include=["TAGS"]
    )["services"]
    return {tag["key"]: tag["value"] for tag in service.get("tags", [])}


def test_a_foreign_autoscaler_holds_the_pool_until_taken_over_and_undo_restores_it(
    tmp_path: Path, aws: LocalAws, redis_url: str, queue: str, unique: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    rid = register_step_scaling(aws, cluster)
    publish(redis_url, queue, 40)  # queue_depth 40 ≥ 5: the pool would scale out
    path = str(write(tmp_path, pool_config(redis_url, cluster, queue)))

    held = run("reconcile", "--once", "-o", "json", "--config", path)
    assert held.returncode == 1, held.stderr
    (line,) = json_lines(held.stdout)
    assert (line["action"], line["current"], line["desired"], line["applied"]) == (
        "hold",
        2,
        2,
        False,
    )
    assert "Conflict" in line["conditions"]
    assert "'workers-scale-out' (StepScaling)" in str(line["error"])
    assert f"another autoscaler drives {rid}" in str(line["reason"])
    assert desired_count(aws, cluster) == 2
    status = json_lines(run("status", "-o", "json", "--config", path).stdout)
    assert status[0]["conditions"]["Conflict"] is True  # type: ignore[index]

    dry = run("takeover", "--pool", "p", "--config", path)
    assert dry.returncode == 0, dry.stderr
    assert f"{rid}: scaling policy workers-scale-out (StepScaling" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout
    assert (
        f"--resource-id {rid} --scalable-dimension {DESIRED} --suspended-state "
        "DynamicScalingInSuspended=false,DynamicScalingOutSuspended=false,"
        "ScheduledScalingSuspended=false"
    ) in dry.stdout.replace("\n", " ")
    assert suspended(aws, rid) == (False, False)
    assert TAKEOVER not in service_tags(aws, cluster)

    applied = run("takeover", "--pool", "p", "--apply", "--config", path)
    assert applied.returncode == 0, applied.stderr
    assert "dry run" not in applied.stdout
    assert suspended(aws, rid) == (True, True)
    assert service_tags(aws, cluster)[TAKEOVER].startswith("in=false out=false at=")
    # The policy and its alarm stay: the alarm keeps alerting, and undo has them back.
    policies = aws.client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=rid
    )["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == ["workers-scale-out"]
    assert (target(aws, rid)["MinCapacity"], target(aws, rid)["MaxCapacity"]) == (1, 10)
    again = run("takeover", "--pool", "p", "--apply", "--config", path)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout

    taken = run("reconcile", "--once", "-o", "json", "--config", path)
    assert taken.returncode == 0, taken.stderr
    (line,) = json_lines(taken.stdout)
    assert (line["action"], line["applied"], line["error"]) == ("scale_out", True, None)
    assert "Conflict" not in line["conditions"]
    assert "Conflict cleared" in line["events"]

    undo = run("takeover", "--pool", "p", "--undo", "--apply", "--config", path)
    assert undo.returncode == 0, undo.stderr
    assert suspended(aws, rid) == (False, False)
    assert TAKEOVER not in service_tags(aws, cluster)
    back = run("reconcile", "--once", "-o", "json", "--config", path)
    assert back.returncode == 1
    assert "Conflict" in json_lines(back.stdout)[0]["conditions"]  # type: ignore[operator]


def test_the_controllers_own_fallback_is_no_conflict(
    tmp_path: Path, aws: LocalAws, redis_url: str, queue: str, unique: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    path = str(write(tmp_path, pool_config(redis_url, cluster, queue)))
    assert run("alarms", "apply", "--config", path).returncode == 0
    assert suspended(aws, f"service/{cluster}/workers") == (True, False)  # scale-out only
    result = run("reconcile", "--once", "-o", "json", "--config", path)
    assert result.returncode == 0, result.stderr
    (line,) = json_lines(result.stdout)
    assert "Conflict" not in line["conditions"]
    nothing = run("takeover", "--pool", "p", "--config", path)
    assert "this controller's own fallback" in nothing.stdout


def test_takeover_exit_codes(tmp_path: Path, aws: LocalAws, redis_url: str) -> None:
    path = str(write(tmp_path, pool_config(redis_url, "c", "q")))
    unknown = run("takeover", "--pool", "nope", "--config", path)
    assert unknown.returncode == 2
    assert "no WorkerPool named 'nope'" in unknown.stderr
    # Nothing answers on port 1: an AWS error, one line, exit 1.
    down = run("takeover", "--config", path, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert down.returncode == 1
    assert down.stderr.startswith("error: ")
    assert "Traceback" not in down.stderr


def test_a_typical_terraform_setup_imports_as_documents_config_validate_accepts(
    tmp_path: Path,
) -> None:
    setup = tmp_path / "autoscaling.tf"
    setup.write_text(TERRAFORM_STEP_SETUP, encoding="utf-8")
    missing = run("config", "import", "--terraform", str(setup))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: aws_appautoscaling_target.worker: resource_id: var.cluster has no value in "
        "the files: pass --var cluster=VALUE"
    )
    result = run("config", "import", "--terraform", str(setup), "--var", "cluster=prod")
    assert result.returncode == 0, result.stderr
    assert "metric: active_tasks\n" in result.stdout
    assert "Consider metric:" in result.stdout  # active_tasks cannot see the backlog
    path = write(tmp_path, result.stdout)
    checked = run("config", "validate", "--config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "1 pool(s): celery-worker" in checked.stdout
    broken = tmp_path / "broken.tf"
    broken.write_text('resource "aws_appautoscaling_target" "t" {\n  min_capacity =\n}\n')
    bad = run("config", "import", "--terraform", str(broken))
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"error: {broken}: not HCL that Terraform reads: ")
