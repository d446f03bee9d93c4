"""The installed `celery-scaler` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from celery_scaler.localaws import LocalAws

pytestmark = pytest.mark.integration

SCRIPT = str(Path(sys.executable).parent / "celery-scaler")


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def pool_config(broker: str, cluster: str, queue: str, **spec: object) -> str:
    pool = {
        "ecs": {"cluster": cluster, "service": "workers"},
        "queues": [queue],
        "minCapacity": 1,
        "maxCapacity": 10,
        "metric": "queue_depth",
        "scaleOut": {
            "threshold": 5,
            "steps": [
                {"metricIntervalLowerBound": 0, "metricIntervalUpperBound": 10, "scalingAdjustment": 1},
                {"metricIntervalLowerBound": 10, "scalingAdjustment": 3},
            ],
        },
        "scaleIn": {"threshold": 0, "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}]},
        **spec,
    }
    controller = {"broker": broker, "interval": "1s", "inspectTimeout": "0.5s"}
    docs = [
        {"apiVersion": "celery-scaler/v1", "kind": "Controller", "spec": controller},
        {"apiVersion": "celery-scaler/v1", "kind": "WorkerPool", "metadata": {"name": "p"}, "spec": pool},
    ]
    return yaml.safe_dump_all(docs)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(text)
    return path


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


# --- configuration --------------------------------------------------------------


def test_example_is_valid_and_found_by_default_path(tmp_path: Path) -> None:
    example = run("config", "example")
    assert example.returncode == 0
    write(tmp_path, example.stdout)
    result = run("config", "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 pool(s): default" in result.stdout


def test_schema_is_json() -> None:
    result = run("config", "schema")
    assert result.returncode == 0
    assert "WorkerPool" in json.dumps(json.loads(result.stdout))


BAD_INPUTS = {
    "malformed yaml": ("kind: [unclosed", "not valid YAML at line"),
    "typo": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  scaleOut: {treshold: 5, steps: []}\n",
        "document 1 (WorkerPool/a): spec.scaleOut.treshold: unknown field (did you mean 'threshold'?)",
    ),
    "unknown metric": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  metric: queue_dept\n"
        "  scaleIn: {threshold: 1, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1}]}\n",
        "spec.metric: unknown metric 'queue_dept' (did you mean 'queue_depth'?)",
    ),
    "min above max": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  minCapacity: 5\n  maxCapacity: 2\n"
        "  scaleIn: {threshold: 1, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1}]}\n",
        "minCapacity (5) is greater than maxCapacity (2)",
    ),
    "gap": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  scaleOut:\n    threshold: 1\n    steps:\n"
        "      - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 5, scalingAdjustment: 1}\n"
        "      - {metricIntervalLowerBound: 6, scalingAdjustment: 2}\n",
        "spec.scaleOut: steps leave a gap between 5 and 6",
    ),
    "bad duration": (
        "apiVersion: celery-scaler/v1\nkind: Controller\nspec: {interval: 5 minutes}\n",
        "spec.interval: expected a duration",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, expected = BAD_INPUTS[case]
    path = write(tmp_path, text)
    for command in (["config", "validate"], ["reconcile", "--once"]):
        result = run(*command, "--config", str(path))
        assert result.returncode == 2, result
        assert expected in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("reconcile", "--once", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_pool_is_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, pool_config("redis://127.0.0.1:6379/11", "c", "q"))
    result = run("reconcile", "--once", "--pool", "other", "--config", str(path))
    assert result.returncode == 2
    assert "no WorkerPool named 'other'" in result.stderr
