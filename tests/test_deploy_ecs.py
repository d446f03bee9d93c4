"""The ECS deployment files: the task definition against botocore's RegisterTaskDefinition
model, the Terraform module parsed (python-hcl2), and the IAM policy they deploy. The CLI
run as the task runs it: tests/integration/test_deploy_ecs.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import hcl2
import pytest
from botocore.validate import ParamValidator
from dockerfile_parse import DockerfileParser
from hcl2.utils import SerializationOptions

from tests.generated import EXAMPLE_CONFIG, EXAMPLE_POLICY, ROOT
from tests.helpers import DOCKERFILE, healthcheck, task_definition

TERRAFORM = ROOT / "charts" / "terraform"
PLAIN = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


def terraform(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(hcl2.load(handle, serialization_options=PLAIN))


def blocks(parsed: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """`type.name` → body of each resource (or data source) in a parsed file."""
    return {
        f"{type_}.{name}": body
        for block in parsed.get(kind, [])
        for type_, named in block.items()
        for name, body in named.items()
    }


def test_the_task_definition_is_a_valid_register_task_definition_request() -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(task_definition(), shape)
    assert not report.has_errors(), report.generate_report()


def test_the_validator_would_catch_a_mistake() -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    broken = task_definition()
    broken["containerDefinitions"][0]["healthcheck"] = broken["containerDefinitions"][0].pop(
        "healthCheck"
    )
    assert ParamValidator().validate(broken, shape).has_errors()


def test_the_container_is_locked_down_and_checked_like_the_image() -> None:
    (container,) = task_definition()["containerDefinitions"]
    assert container["command"][0] == "reconcile"
    assert container["readonlyRootFilesystem"] is True
    assert container["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}
    assert container["user"] == "10001:10001"
    assert container["mountPoints"][0]["containerPath"] == "/tmp"
    command = container["healthCheck"]["command"]
    assert command[:3] == ["CMD", "python", "-c"]
    assert command[3] == healthcheck(DockerfileParser(str(DOCKERFILE)))
    assert [m["containerPort"] for m in container["portMappings"]] == [9808]
    assert container["secrets"][0]["name"] == "CELERY_SCALER_BROKER_URL"


def test_the_terraform_module() -> None:
    parsed = {path.name: terraform(path) for path in TERRAFORM.glob("*.tf")}
    resources = {
        name: body for tf in parsed.values() for name, body in blocks(tf, "resource").items()
    }
    # The task role holds the policy given (the command's output), and nothing else.
    assert resources["aws_iam_role_policy.task"]["policy"] == "${var.iam_policy_json}"
    assert resources["aws_iam_role_policy.task"]["role"] == "${aws_iam_role.task.id}"
    task_policies = [
        body for body in resources.values() if body.get("role") == "${aws_iam_role.task.id}"
    ]
    assert len(task_policies) == 1
    definition = resources["aws_ecs_task_definition.controller"]
    assert "local.container" in definition["container_definitions"]
    assert definition["task_role_arn"] == "${aws_iam_role.task.arn}"
    (local,) = parsed["main.tf"]["locals"]
    assert "../ecs/task-definition.json" in local["template"]
    service = resources["aws_ecs_service.controller"]
    assert service["desired_count"] == "${var.desired_count}"
    # One task without leader election: the old one stops before the new one starts.
    assert service["deployment_maximum_percent"] == "${var.leader_election ? 200 : 100}"
    assert service["deployment_minimum_healthy_percent"] == "${var.leader_election ? 100 : 0}"
    assert "aws_cloudwatch_log_group.controller" in resources
    # manage_alarms: `celery-scaler alarms apply` first, with the permissions it needs.
    assert local["alarms"]["command"] == ["alarms", "apply"]
    assert local["alarms"]["essential"] is False
    assert 'condition = "SUCCESS"' in definition["container_definitions"]
    checks = [c["condition"] for c in service["lifecycle"][0]["precondition"]]
    assert any("cloudwatch:PutMetricAlarm" in check for check in checks)
    variables = {name for block in parsed["variables.tf"]["variable"] for name in block}
    assert {
        "config_yaml",
        "iam_policy_json",
        "image",
        "desired_count",
        "manage_alarms",
    } <= variables


@pytest.mark.parametrize("variable", ["config_yaml", "iam_policy_json"])
def test_the_example_deploys_the_files_the_tests_check(variable: str) -> None:
    example = terraform(TERRAFORM / "example" / "main.tf")
    module = example["module"][0]["celery_scaler"]
    expected = {
        "config_yaml": '${file("${path.module}/../../celery-scaler.yaml")}',
        "iam_policy_json": '${file("${path.module}/../../iam-policy.json")}',
    }
    assert module[variable] == expected[variable]
    relative = expected[variable].split("/../../")[1].split('"')[0]
    assert (TERRAFORM / "example" / "../.." / relative).resolve() in {
        EXAMPLE_CONFIG.resolve(),
        EXAMPLE_POLICY.resolve(),
    }
