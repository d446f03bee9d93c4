"""The ECS task definition's configuration and IAM policy, through the real CLI."""

from __future__ import annotations

import os

import pytest

from tests.generated import EXAMPLE_CONFIG, EXAMPLE_POLICY, example_policy, text
from tests.helpers import run, task_definition

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
