"""`config import --terraform`: Terraform's Application Auto Scaling set-ups as WorkerPool
documents (analysis/terraform_import.py, pure; the files parsed with python-hcl2 as the
command parses them). Every document produced is one `config validate` accepts. The
command itself: tests/integration/test_migration.py."""

from __future__ import annotations

import hcl2
import pytest

from celery_scaler.analysis.terraform_import import (
    TerraformImportError,
    has_target_tracking,
    import_terraform,
    parse_vars,
)
from celery_scaler.core.config import Config, parse_config
from tests.helpers import TERRAFORM_STEP_SETUP


def imported(*texts: str, **given: str) -> str:
    return import_terraform([hcl2.loads(text) for text in texts], given, "setup.tf")


def valid(text: str) -> Config:
    return parse_config(text, "imported.yaml", env={})


def test_a_typical_step_scaling_setup() -> None:
    text = imported(TERRAFORM_STEP_SETUP, cluster="prod")
    assert text == (
        "# Imported from setup.tf by `celery-scaler config import`. Check each note, set\n"
        "# `queues`, add a Controller document (broker, interval) and run `celery-scaler config\n"
        "# validate`; then `celery-scaler takeover --pool <name>` hands the service over.\n"
        "# Variables read from their defaults: var.service = celery-worker.\n"
        "---\n"
        "# From aws_appautoscaling_target.worker (service/prod/celery-worker).\n"
        "apiVersion: celery-scaler/v1\n"
        "kind: WorkerPool\n"
        "metadata:\n"
        "  name: celery-worker\n"
        "spec:\n"
        "  ecs:\n"
        "    cluster: prod\n"
        "    service: celery-worker\n"
        "  # Not in Terraform: the Celery queues these workers consume.\n"
        "  queues: [celery]\n"
        "  minCapacity: 2\n"
        "  maxCapacity: 30\n"
        "  # active_tasks cannot see the backlog: tasks waiting in the queue do not move it, so a"
        " pool that\n"
        "  # is full looks the same with 0 or 10,000 messages waiting. Consider metric:"
        " backlog_per_task\n"
        "  # (messages waiting plus tasks running, per ECS task), with thresholds retuned to"
        " it.\n"
        "  metric: active_tasks\n"
        "  statistic: Average\n"
        "  window: 2m\n"
        "  scaleOut:\n"
        "    # From aws_appautoscaling_policy.scale_out (triggered by"
        " aws_cloudwatch_metric_alarm.busy).\n"
        "    threshold: 10\n"
        "    adjustmentType: ChangeInCapacity\n"
        "    cooldown: 1m\n"
        "    steps:\n"
        "      - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 20,"
        " scalingAdjustment: 1}\n"
        "      - {metricIntervalLowerBound: 20, scalingAdjustment: 3}\n"
        "  scaleIn:\n"
        "    # From aws_appautoscaling_policy.scale_in (triggered by"
        " aws_cloudwatch_metric_alarm.idle).\n"
        "    threshold: 2\n"
        "    adjustmentType: ChangeInCapacity\n"
        "    cooldown: 5m\n"
        "    steps:\n"
        "      - {metricIntervalUpperBound: 0, scalingAdjustment: -1}\n"
    )
    (pool,) = valid(text).pools
    spec = pool.spec
    assert (spec.ecs.cluster, spec.ecs.service, spec.min_capacity, spec.max_capacity) == (
        "prod",
        "celery-worker",
        2,
        30,
    )
    assert (spec.metric.value, spec.window) == ("active_tasks", 120.0)
    assert spec.scale_out is not None
    assert spec.scale_in is not None
    assert (spec.scale_out.threshold, spec.scale_out.cooldown) == (10.0, 60.0)
    assert [s.scaling_adjustment for s in spec.scale_out.steps] == [1, 3]
    assert (spec.scale_in.threshold, spec.scale_in.cooldown) == (2.0, 300.0)


def test_a_value_that_cannot_be_evaluated_names_the_var_to_pass() -> None:
    with pytest.raises(TerraformImportError) as missing:
        imported(TERRAFORM_STEP_SETUP)
    assert str(missing.value) == (
        "aws_appautoscaling_target.worker: resource_id: var.cluster has no value in the "
        "files: pass --var cluster=VALUE"
    )
    data = TERRAFORM_STEP_SETUP.replace(
        '"service/${var.cluster}/${var.service}"',
        '"service/${data.aws_ecs_cluster.main.cluster_name}/${local.service}"',
    )
    with pytest.raises(
        TerraformImportError, match=r"pass --var 'data\.aws_ecs_cluster\.main\.cluster_name=VALUE'"
    ):
        imported(data)
    given = {"data.aws_ecs_cluster.main.cluster_name": "batch", "local.service": "mail"}
    (pool,) = valid(imported(data, **given)).pools
    assert (pool.name, pool.spec.ecs.cluster, pool.spec.ecs.service) == ("mail", "batch", "mail")


def test_names_written_in_the_files_own_resources_are_read() -> None:
    cluster_and_service = """
locals {
  prefix = "prod"
}

resource "aws_ecs_cluster" "main" {
  name = "${local.prefix}-cluster"
}

resource "aws_ecs_service" "worker" {
  name = "Celery_Worker"
}
"""
    setup = TERRAFORM_STEP_SETUP.replace(
        '"service/${var.cluster}/${var.service}"',
        '"service/${aws_ecs_cluster.main.name}/${aws_ecs_service.worker.name}"',
    )
    (pool,) = valid(imported(setup, cluster_and_service)).pools
    assert (pool.name, pool.spec.ecs.cluster, pool.spec.ecs.service) == (
        "celery-worker",  # a DNS label, made of the service's name
        "prod-cluster",
        "Celery_Worker",
    )


def test_ecs_cpu_cannot_be_a_controller_metric_and_the_steps_are_kept() -> None:
    cpu = TERRAFORM_STEP_SETUP.replace(
        'metric_name         = "active_tasks"\n  namespace           = "CeleryMetrics"',
        'metric_name         = "CPUUtilization"\n  namespace           = "AWS/ECS"',
    )
    text = imported(cpu, cluster="prod")
    assert "CPUUtilization (AWS/ECS) cannot be a controller metric, so the pool scales" in (
        " ".join(line.strip("# ") for line in text.splitlines())
    )
    assert "metric:" not in text  # the default, backlog_per_task, with the old steps
    (pool,) = valid(text).pools
    assert pool.spec.metric.value == "backlog_per_task"
    assert pool.spec.scale_out is not None
    assert [s.scaling_adjustment for s in pool.spec.scale_out.steps] == [1, 3]


def test_metrics_named_in_camel_case_and_a_strict_alarm_are_said() -> None:
    setup = TERRAFORM_STEP_SETUP.replace('"active_tasks"', '"QueueDepth"').replace(
        '"GreaterThanOrEqualToThreshold"', '"GreaterThanThreshold"'
    )
    text = imported(setup, cluster="prod")
    assert "metric: queue_depth\n" in text
    assert "reads QueueDepth (CeleryMetrics), taken as queue_depth." in text
    assert "The alarm fired at > threshold; the controller's scaleOut at ≥." in text
    assert "cannot see the backlog" not in text  # queue_depth does
    valid(text)


def test_a_step_policy_without_its_alarm_is_an_error_naming_it() -> None:
    alone = TERRAFORM_STEP_SETUP.replace("aws_appautoscaling_policy.scale_in.arn", "")
    with pytest.raises(TerraformImportError) as error:
        imported(alone, cluster="prod")
    assert str(error.value).startswith(
        "aws_appautoscaling_policy.scale_in: no aws_cloudwatch_metric_alarm has "
        "aws_appautoscaling_policy.scale_in.arn in its alarm_actions"
    )


def test_no_ecs_target_and_repeated_blocks_are_errors() -> None:
    table = 'resource "aws_appautoscaling_target" "t" {\n  service_namespace = "dynamodb"\n}\n'
    with pytest.raises(TerraformImportError, match="no aws_appautoscaling_target of an ECS"):
        imported(table)
    counted = TERRAFORM_STEP_SETUP.replace(
        "  min_capacity       = 2\n", "  count = 2\n  min_capacity       = 2\n", 1
    )
    with pytest.raises(TerraformImportError, match="count makes several resources"):
        imported(counted, cluster="prod")


def test_a_second_policy_on_another_controller_metric_is_a_policy_of_its_own() -> None:
    second = """
resource "aws_appautoscaling_policy" "backlog" {
  name               = "celery-worker-backlog"
  policy_type        = "StepScaling"
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  service_namespace  = "ecs"

  step_scaling_policy_configuration {
    adjustment_type = "ChangeInCapacity"
    cooldown        = 60

    step_adjustment {
      metric_interval_lower_bound = "0"
      scaling_adjustment          = 2
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "backlog" {
  alarm_name          = "celery-worker-backlog"
  comparison_operator = "GreaterThanOrEqualToThreshold"
  evaluation_periods  = 1
  metric_name         = "queue_depth"
  namespace           = "CeleryMetrics"
  period              = 60
  statistic           = "Maximum"
  threshold           = 100
  alarm_actions       = [aws_appautoscaling_policy.backlog.arn]
}
"""
    text = imported(TERRAFORM_STEP_SETUP, second, cluster="prod")
    if not has_target_tracking():
        pytest.skip("this configuration has no spec.policies yet")
    (pool,) = valid(text).pools
    (extra,) = pool.spec.policies
    assert (extra.name, extra.metric.value, extra.statistic.value, extra.window) == (
        "celery-worker-backlog",
        "queue_depth",
        "Maximum",
        60.0,
    )


def test_target_tracking() -> None:
    tracking = """
resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/prod/celery-worker"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = 1
  max_capacity       = 10
}

resource "aws_appautoscaling_policy" "backlog" {
  name               = "backlog"
  policy_type        = "TargetTrackingScaling"
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  service_namespace  = aws_appautoscaling_target.worker.service_namespace

  target_tracking_scaling_policy_configuration {
    target_value       = 20
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    customized_metric_specification {
      metric_name = "backlog_per_task"
      namespace   = "CeleryMetrics"
      statistic   = "Average"
    }
  }
}
"""
    text = imported(tracking)
    (pool,) = valid(text).pools
    assert pool.spec.metric.value == "backlog_per_task"
    line = "targetTracking: {targetValue: 20, scaleOutCooldown: 1m, scaleInCooldown: 5m, "
    line += "disableScaleIn: false}"
    if has_target_tracking():
        assert f"\n  {line}\n" in text
        assert pool.spec.target_tracking is not None
    else:
        # Not in the configuration yet: kept commented out, with steps that stand in.
        assert f"\n  # {line}\n" in text
        assert pool.spec.scale_out is not None
        assert pool.spec.scale_in is not None
        assert (pool.spec.scale_out.threshold, pool.spec.scale_in.threshold) == (20.0, 18.0)


def test_ecs_cpu_target_tracking_beside_steps_is_kept_commented_out() -> None:
    cpu = """
resource "aws_appautoscaling_policy" "cpu" {
  name               = "celery-worker-cpu"
  policy_type        = "TargetTrackingScaling"
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  service_namespace  = aws_appautoscaling_target.worker.service_namespace

  target_tracking_scaling_policy_configuration {
    target_value = 70

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
"""
    text = imported(TERRAFORM_STEP_SETUP, cpu, cluster="prod")
    assert text.endswith(
        "  # policies:\n"
        "    # Not imported: ECSServiceAverageCPUUtilization cannot be a controller metric; kept"
        " as the\n"
        "    # entry it would be, commented out.\n"
        "    # - name: celery-worker-cpu\n"
        "    #   metric: <a controller metric; retune what follows for it>\n"
        "    #   # From aws_appautoscaling_policy.cpu (TargetTrackingScaling).\n"
        "    #   targetTracking: {targetValue: 70, disableScaleIn: false}\n"
    )
    valid(text)


def test_vars_are_name_equals_value() -> None:
    assert parse_vars(["cluster=prod", "data.x.y.z=a=b"]) == {
        "cluster": "prod",
        "data.x.y.z": "a=b",
    }
    with pytest.raises(TerraformImportError, match="expected NAME=VALUE"):
        parse_vars(["cluster"])
