"""The ECS deployment files: the task definition against botocore's RegisterTaskDefinition
model, the Terraform module parsed (python-hcl2), and the IAM policy they deploy. The CLI
run as the task runs it: tests/integration/test_deploy_ecs.py."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from dockerfile_parse import DockerfileParser

from celery_scaler.adapters.leases import TABLE_ATTRIBUTES, TABLE_BILLING_MODE, TABLE_KEY_SCHEMA
from celery_scaler.compose import aws_adapters
from celery_scaler.core.config import LeaderElectionSpec
from celery_scaler.iam import policy, where
from tests.generated import EXAMPLE_CONFIG, EXAMPLE_POLICY, text
from tests.helpers import (
    DOCKERFILE,
    TERRAFORM,
    config,
    healthcheck,
    option,
    task_definition,
    terraform_blocks,
    terraform_file,
    terraform_module,
)


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
    # awslogs ships each stdout line as an event: JSON lines, never a table.
    assert option(container["command"], "--output") == "json"
    assert option(container["command"], "--log-format") == "json"
    assert container["readonlyRootFilesystem"] is True
    assert container["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}
    assert container["user"] == "10001:10001"
    assert container["mountPoints"][0]["containerPath"] == "/tmp"
    command = container["healthCheck"]["command"]
    assert command[:3] == ["CMD", "python", "-c"]
    assert command[3] == healthcheck(DockerfileParser(str(DOCKERFILE)))
    assert [m["containerPort"] for m in container["portMappings"]] == [9808]
    assert container["secrets"][0]["name"] == "CELERY_SCALER_BROKER_URL"


def module_blocks(kind: str) -> dict[str, dict[str, Any]]:
    """`type.name` → body of each block of that kind in charts/terraform's files."""
    return {
        name: body
        for tf in terraform_module().values()
        for name, body in terraform_blocks(tf, kind).items()
    }


def test_the_terraform_module() -> None:
    parsed = terraform_module()
    resources = module_blocks("resource")
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
    assert local["alarms"]["command"] == ["alarms", "apply", "--output", "json"]
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


def policy_text(controller: str) -> str:
    """`celery-scaler iam-policy` for a pool and this Controller spec, as the file holds it."""
    settings = config(f"region: us-east-1, {controller}")
    return text(policy(settings, aws_adapters(settings, []), where("us-east-1", None)))


def test_the_module_makes_the_lease_table_the_controller_would_make() -> None:
    table = module_blocks("resource")["aws_dynamodb_table.leases"]
    assert table["count"] == "${var.leader_election ? 1 : 0}"
    assert table["name"] == "${var.lease_table}"
    assert table["billing_mode"] == TABLE_BILLING_MODE
    assert [{"AttributeName": table["hash_key"], "KeyType": "HASH"}] == list(TABLE_KEY_SCHEMA)
    attributes = [
        {"AttributeName": a["name"], "AttributeType": a["type"]} for a in table["attribute"]
    ]
    assert attributes == list(TABLE_ATTRIBUTES)
    defaults = {
        name: body.get("default")
        for block in terraform_module()["variables.tf"]["variable"]
        for name, body in block.items()
    }
    assert defaults["lease_table"] == LeaderElectionSpec().table
    # Made before the first task starts: a controller first would make it itself, and
    # Terraform would then fail to create a table that exists.
    service = module_blocks("resource")["aws_ecs_service.controller"]
    assert service["depends_on"] == ["${aws_dynamodb_table.leases}"]


def test_a_policy_for_another_table_fails_the_plan() -> None:
    service = module_blocks("resource")["aws_ecs_service.controller"]
    (check,) = [
        c["condition"]
        for c in service["lifecycle"][0]["precondition"]
        if "var.lease_table" in c["condition"]
    ]
    # The needle the precondition looks for in the policy, for the default table.
    needle = ':table/${var.lease_table}\\"'
    assert needle in check
    wanted = needle.replace("${var.lease_table}", LeaderElectionSpec().table).replace("\\", "")
    assert wanted in policy_text("leaderElection: {enabled: true}")
    assert wanted not in policy_text("leaderElection: {enabled: true, table: other}")
    assert wanted not in policy_text("")


def test_the_module_works_with_aws_provider_5_and_6() -> None:
    # data.aws_region's `name` is deprecated in provider 6, and its replacement `region`
    # does not exist in 5: the module does without the data source.
    assert not [name for name in module_blocks("data") if name.startswith("aws_region.")]
    (versions,) = terraform_module()["versions.tf"]["terraform"]
    (providers,) = versions["required_providers"]
    assert providers["aws"]["version"] == ">= 5.0"


@pytest.mark.parametrize("variable", ["config_yaml", "iam_policy_json"])
def test_the_example_deploys_the_files_the_tests_check(variable: str) -> None:
    example = terraform_file(TERRAFORM / "example" / "main.tf")
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
