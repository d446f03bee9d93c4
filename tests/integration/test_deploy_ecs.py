"""The ECS task definition's configuration and IAM policy, through the real CLI."""

from __future__ import annotations

import os

import pytest

from celery_scaler.local.aws_api import LocalAws
from tests.generated import EXAMPLE_CONFIG, EXAMPLE_POLICY, example_policy, text
from tests.helpers import only_json_lines, run, task_definition

pytestmark = pytest.mark.integration


def environment() -> dict[str, str]:
    (container,) = task_definition()["containerDefinitions"]
    return {item["name"]: item["value"] for item in container["environment"]}


def test_the_task_runs_the_example_configuration_from_its_environment() -> None:
    env = environment()
    assert env["CELERY_SCALER_CONFIG_YAML"] == EXAMPLE_CONFIG.read_text()
    # The real CLI, configured exactly as the task's environment configures it.
    checked = run("config", "validate", env={**env, "PATH": os.environ["PATH"]})
    assert checked.returncode == 0, checked.stderr
    assert "1 pool(s): default" in checked.stdout


def test_the_policy_file_is_what_the_command_prints() -> None:
    printed = run("iam-policy", "--config", str(EXAMPLE_CONFIG), "--with", "alarms")
    assert printed.returncode == 0, printed.stderr
    assert EXAMPLE_POLICY.read_text() == printed.stdout == text(example_policy())


def test_the_tasks_command_prints_json_lines_only(aws: LocalAws, redis_url: str) -> None:
    (container,) = task_definition()["containerDefinitions"]
    env = {**environment(), "CELERY_SCALER_BROKER_URL": redis_url}
    # One pass of exactly that command (no cluster `prod` here: the pool reports an error).
    result = run(*container["command"], "--once", "--dry-run", env=env)
    assert result.returncode == 1, result.stderr
    (line,) = only_json_lines(result.stdout)
    assert line["pool"] == "default"
    assert "ClusterNotFoundException" in str(line["error"])  # from the local AWS API
