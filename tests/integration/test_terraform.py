"""Terraform as Terraform writes it: `terraform fmt -check` over what `celery-scaler alarms
export --format terraform` prints and over the module in charts/terraform."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

from celery_scaler.alarms.desired import desired
from celery_scaler.core.config import parse_config
from tests.generated import ROOT
from tests.helpers import run

pytestmark = pytest.mark.integration

SNS = "arn:aws:sns:eu-west-1:123456789012:on-call"

# Several pools, every alarm the controller can own given a threshold, and both fallback
# policies with step tables of several rows (the queue-depth one exists on SQS only).
REDIS = f"""
apiVersion: celery-scaler/v1
kind: Controller
spec:
  broker: redis://localhost:6379/0
  alarms:
    notify: ["{SNS}"]
    activeTasksHigh: {{threshold: 100}}
    reservedTasksHigh: {{threshold: 50}}
    memoryHigh: {{threshold: 900}}
    queueLatencyHigh: {{threshold: 120}}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: default}}
spec:
  ecs: {{cluster: prod, service: celery-worker}}
  minCapacity: 1
  maxCapacity: 20
  scaleOut: {{threshold: 10, steps: [{{metricIntervalLowerBound: 0, scalingAdjustment: 1}}]}}
  scaleIn: {{threshold: 2, steps: [{{metricIntervalUpperBound: 0, scalingAdjustment: -1}}]}}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: reports}}
spec:
  ecs: {{cluster: batch, service: report-worker}}
  queues: [reports]
  minCapacity: 0
  maxCapacity: 5
  metric: queue_latency_seconds
  scaleOut:
    threshold: 30
    steps:
      - {{metricIntervalLowerBound: 0, metricIntervalUpperBound: 60, scalingAdjustment: 1}}
      - {{metricIntervalLowerBound: 60, scalingAdjustment: 3}}
  alarms:
    fallback:
      cpu:
        threshold: 70
        adjustmentType: PercentChangeInCapacity
        minAdjustmentMagnitude: 2
        steps:
          - {{metricIntervalLowerBound: 0, metricIntervalUpperBound: 15, scalingAdjustment: 50}}
          - {{metricIntervalLowerBound: 15, scalingAdjustment: 100}}
"""

SQS = """
apiVersion: celery-scaler/v1
kind: Controller
spec: {broker: "sqs://", region: eu-west-1}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {name: default}
spec:
  ecs: {cluster: prod, service: celery-worker}
  queues: [celery, high]
  minCapacity: 1
  maxCapacity: 20
  metric: queue_depth
  scaleOut: {threshold: 10, steps: [{metricIntervalLowerBound: 0, scalingAdjustment: 1}]}
  scaleIn: {threshold: 2, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1}]}
  alarms:
    fallback:
      queueDepth:
        steps:
          - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 100, scalingAdjustment: 1}
          - {metricIntervalLowerBound: 100, scalingAdjustment: 4}
"""

EVERY_KIND = {
    "target",
    "heartbeat-missing",
    "active-tasks-high",
    "reserved-tasks-high",
    "failed-tasks-high",
    "retried-tasks-high",
    "memory-high",
    "too-few-workers",
    "queue-latency-high",
    "not-keeping-up",
    "fallback-cpu",
    "fallback-cpu-high",
    "fallback-queue-depth",
    "fallback-queue-depth-high",
}


def terraform(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("terraform")
    assert binary, "these tests run the terraform binary: put it on PATH"
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_the_configurations_export_every_kind_of_resource() -> None:
    slugs = {
        resource.slug
        for text in (REDIS, SQS)
        for resource in desired(parse_config(text, "test.yaml", env={}))
    }
    assert slugs >= EVERY_KIND


@pytest.mark.parametrize("text", [REDIS, SQS], ids=["redis", "sqs"])
def test_the_alarm_export_is_left_unchanged_by_terraform_fmt(text: str, tmp_path: Path) -> None:
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(text)
    exported = run("alarms", "export", "--config", str(path), "--format", "terraform")
    assert exported.returncode == 0, exported.stderr
    checked = terraform("fmt", "-check", "-", stdin=exported.stdout)
    if checked.returncode != 0:
        formatted = terraform("fmt", "-", stdin=exported.stdout).stdout
        diff = difflib.unified_diff(
            exported.stdout.splitlines(), formatted.splitlines(), "export", "fmt", lineterm=""
        )
        pytest.fail("terraform fmt changes the export:\n" + "\n".join(list(diff)[:40]))


def test_terraform_fmt_would_catch_a_misaligned_export() -> None:
    misaligned = 'resource "x" "y" {\n  a = 1\n  bb = 2\n}\n'
    assert terraform("fmt", "-check", "-", stdin=misaligned).returncode != 0


def test_the_module_is_formatted() -> None:
    checked = terraform("fmt", "-check", "-recursive", "-diff", "charts/terraform")
    assert checked.returncode == 0, checked.stdout + checked.stderr
