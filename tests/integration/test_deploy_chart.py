"""The Helm chart's configuration, as the real CLI reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from celery_scaler.local.aws_api import LocalAws
from tests.helpers import CI_VALUES, configuration, only_json_lines, option, render, run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("values", [None, CI_VALUES], ids=["defaults", "ci"])
def test_the_configmap_is_a_configuration_the_cli_accepts(
    chart: helm.Chart, values: dict[str, Any] | None, tmp_path: Path
) -> None:
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(configuration(render(chart, values)))
    checked = run("config", "validate", "--config", str(path))
    assert checked.returncode == 0, checked.stderr
    pools = "1 pool(s): default" if values is None else "2 pool(s): reports, web"
    assert pools in checked.stdout
    # The policy the notes tell people to attach comes from this same file.
    policy = run("iam-policy", "--config", str(path))
    assert policy.returncode == 0, policy.stderr
    assert json.loads(policy.stdout)["Statement"]


def test_the_containers_command_prints_json_lines_only(
    chart: helm.Chart, aws: LocalAws, redis_url: str, tmp_path: Path
) -> None:
    manifests = render(chart)
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(configuration(manifests))
    (container,) = manifests["Deployment/cs-celery-scaler"]["spec"]["template"]["spec"][
        "containers"
    ]
    args = list(container["args"])
    args[args.index("--config") + 1] = str(path)
    assert option(args, "--output") == "json"
    # One pass of exactly that command (no cluster `prod` here: the pool reports an error).
    result = run(*args, "--once", "--dry-run", env={"CELERY_SCALER_BROKER_URL": redis_url})
    assert result.returncode == 1, result.stderr
    (line,) = only_json_lines(result.stdout)
    assert line["pool"] == "default"
    assert "ClusterNotFoundException" in str(line["error"])  # from the local AWS API
