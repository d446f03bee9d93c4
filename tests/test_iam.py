"""The least-privilege IAM policy: what each configuration is granted, and that the
controller's real AWS calls need exactly that. The `iam-policy` command and each AWS
adapter against the local AWS API: tests/integration/test_iam.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from celery_scaler.adapters.ecs import EcsTaskProtection
from celery_scaler.adapters.permissions import IMPLIED_ACTIONS, Tool
from celery_scaler.compose import aws_adapters
from celery_scaler.iam import Where, actions, policy, where
from tests import aws_calls
from tests.helpers import config, pool

ROOT = Path(__file__).resolve().parent.parent


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in document["Statement"]}


HERE = Where("aws", "eu-west-1", "123456789012")


def test_the_least_a_configuration_can_need() -> None:
    # Without drain-then-remove (on by default for Redis: task protection, below).
    settings = config("cloudwatch: {enabled: false}", pool(drain=False))
    assert policy(settings, aws_adapters(settings), HERE) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Every pass looks for other autoscalers on the pools' services (Conflict);
                # the Describe calls take no resource.
                "Sid": "AnyResource",
                "Effect": "Allow",
                "Action": [
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                ],
                "Resource": ["*"],
            },
            {
                "Sid": "EcsServiceStateTags",
                "Effect": "Allow",
                "Action": ["ecs:TagResource", "ecs:UntagResource"],
                "Resource": ["arn:aws:ecs:eu-west-1:123456789012:service/prod/celery-worker"],
                "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": ["celery-scaler.io/*"]}},
            },
            {
                "Sid": "EcsServices",
                "Effect": "Allow",
                "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
                "Resource": ["arn:aws:ecs:eu-west-1:123456789012:service/prod/celery-worker"],
            },
        ],
    }


def test_cloudwatch_metrics_only_in_the_controllers_namespace() -> None:
    settings = config("cloudwatch: {namespace: Workers}")
    assert statements(policy(settings, aws_adapters(settings)))["MetricNamespace"] == {
        "Sid": "MetricNamespace",
        "Effect": "Allow",
        "Action": ["cloudwatch:PutMetricData"],
        "Resource": ["*"],
        "Condition": {"StringEquals": {"cloudwatch:namespace": "Workers"}},
    }
    # EMF lines go out through the log driver: no CloudWatch permission at all.
    emf = config("cloudwatch: {mode: emf}")
    assert not any(a.startswith("cloudwatch:") for a in actions(policy(emf, aws_adapters(emf))))


def test_leases_only_on_the_lease_table() -> None:
    settings = config("cloudwatch: {enabled: false}, leaderElection: {enabled: true, table: locks}")
    lease = statements(policy(settings, aws_adapters(settings), HERE))["LeaseTable"]
    assert lease["Resource"] == ["arn:aws:dynamodb:eu-west-1:123456789012:table/locks"]
    assert lease["Action"] == [
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ]


def test_sqs_only_on_the_pools_queues_as_celery_names_them() -> None:
    settings = config(
        "broker: 'sqs://', sqs: {queueNamePrefix: prod-}",
        pool("a", queues="celery, high.priority"),
        pool("b", service="other", queues="celery"),
    )
    sqs = statements(policy(settings, aws_adapters(settings), HERE))["SqsQueues"]
    assert sqs["Action"] == ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    assert sqs["Resource"] == [
        "arn:aws:sqs:eu-west-1:123456789012:prod-celery",
        "arn:aws:sqs:eu-west-1:123456789012:prod-high-priority",
    ]
    redis = config()
    assert not any(a.startswith("sqs:") for a in actions(policy(redis, aws_adapters(redis))))


def test_drain_then_remove_needs_task_protection_by_default_but_not_on_sqs() -> None:
    redis = config("cloudwatch: {enabled: false}", pool())
    assert "EcsTasks" in statements(policy(redis, aws_adapters(redis), HERE))
    sqs = config("broker: 'sqs://', cloudwatch: {enabled: false}", pool())
    assert "EcsTasks" not in statements(policy(sqs, aws_adapters(sqs), HERE))


def test_task_protection_only_in_the_clusters_of_pools_that_ask() -> None:
    settings = config(
        "cloudwatch: {enabled: false}",
        pool("a", cluster="prod", protect=True, drain=False),
        pool("b", cluster="batch", service="other", drain=False),
    )
    found = statements(policy(settings, aws_adapters(settings), HERE))
    assert found["EcsTasks"]["Action"] == [
        "ecs:DescribeTasks",
        "ecs:GetTaskProtection",
        "ecs:UpdateTaskProtection",
    ]
    assert found["EcsTasks"]["Resource"] == ["arn:aws:ecs:eu-west-1:123456789012:task/prod/*"]
    # ListTasks names no resource the controller could scope; its cluster is a condition.
    assert found["EcsClusters"]["Action"] == ["ecs:ListTasks"]
    assert found["EcsClusters"]["Resource"] == ["*"]
    assert found["EcsClusters"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": ["arn:aws:ecs:eu-west-1:123456789012:cluster/prod"]}
    }
    # Both pools' services, each once.
    assert found["EcsServices"]["Resource"] == [
        "arn:aws:ecs:eu-west-1:123456789012:service/batch/other",
        "arn:aws:ecs:eu-west-1:123456789012:service/prod/celery-worker",
    ]


def test_report_reads_metric_history() -> None:
    settings = config()
    assert "cloudwatch:GetMetricData" not in actions(policy(settings, aws_adapters(settings)))
    with_report = policy(settings, aws_adapters(settings, [Tool.REPORT]))
    assert "cloudwatch:GetMetricData" in statements(with_report)["AnyResource"]["Action"]


def test_takeover_registers_only_ecs_scalable_targets() -> None:
    settings = config("cloudwatch: {enabled: false}")
    register = "application-autoscaling:RegisterScalableTarget"
    assert register not in actions(policy(settings, aws_adapters(settings)))
    found = statements(policy(settings, aws_adapters(settings, [Tool.TAKEOVER]), HERE))
    assert found["EcsScalableTargets"]["Action"] == [register]
    assert found["EcsScalableTargets"]["Condition"] == {
        "StringEquals": {
            "application-autoscaling:service-namespace": "ecs",
            "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount",
        }
    }


def test_clusters_given_as_arns_keep_their_account_and_region() -> None:
    arn = "arn:aws:ecs:us-west-2:210987654321:cluster/prod"
    settings = config("cloudwatch: {enabled: false}", pool(cluster=arn, protect=True))
    found = statements(policy(settings, aws_adapters(settings), HERE))
    assert found["EcsServices"]["Resource"] == [
        "arn:aws:ecs:us-west-2:210987654321:service/prod/celery-worker"
    ]
    assert found["EcsTasks"]["Resource"] == ["arn:aws:ecs:us-west-2:210987654321:task/prod/*"]
    assert found["EcsClusters"]["Condition"]["ArnEquals"]["ecs:cluster"] == [arn]


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        (None, "aws"),
    ],
)
def test_the_partition_follows_the_region(region: str | None, partition: str) -> None:
    assert where(region, None) == Where(partition, region or "*", "*")


def test_an_account_id_is_twelve_digits() -> None:
    assert where("eu-west-1", "123456789012").account == "123456789012"
    with pytest.raises(ValueError, match="12 digits"):
        where("eu-west-1", "1234")


# --- the policy against the calls the controller really makes --------------------------


@pytest.fixture
def protection() -> Iterator[tuple[EcsTaskProtection, Stubber, list[str]]]:
    client = boto3.client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    called: list[str] = []
    client.meta.events.register(
        "before-parameter-build.ecs.*",
        lambda model, **_: called.append(f"ecs:{model.name}"),
    )
    with Stubber(client) as stubber:
        yield EcsTaskProtection(client), stubber, called


def test_task_protection_declares_exactly_what_it_calls(
    protection: tuple[EcsTaskProtection, Stubber, list[str]],
) -> None:
    # Against ECS's own service model (botocore's Stubber); the integration test against
    # the local AWS API (tests/integration/test_iam.py) covers the same adapter too.
    adapter, stubber, called = protection
    task = "arn:aws:ecs:us-east-1:123456789012:task/prod/" + "a" * 32
    stubber.add_response("list_tasks", {"taskArns": [task]})
    stubber.add_response("describe_tasks", {"tasks": [{"taskArn": task}]})
    stubber.add_response("get_task_protection", {"protectedTasks": []})
    stubber.add_response("update_task_protection", {"protectedTasks": []})
    adapter.tasks("prod", "workers")
    adapter.protected_until("prod", [task])
    adapter.set_protection("prod", [task], enabled=True)
    assert set(called) == set(EcsTaskProtection.iam_actions)


INTEGRATION_FEATURES = (
    # What the integration tests exercise against the local AWS API: ECS services and
    # their tags, task protection (drain-then-remove, on by default for Redis), leases,
    # CloudWatch PutMetricData, `report`; and SQS, which cannot share a configuration
    # with the others.
    config("leaderElection: {enabled: true}"),
    config("broker: 'sqs://', cloudwatch: {enabled: false}"),
)


def _whole_suite_ran(session: pytest.Session) -> bool:
    option = session.config.option
    if option.keyword or option.markexpr or session.testsfailed:
        return False
    collected = {Path(str(item.path)) for item in session.items}
    return all(path in collected for path in (ROOT / "tests" / "integration").glob("test_*.py"))


@pytest.mark.after_all
def test_the_policy_allows_exactly_what_the_integration_tests_called(
    request: pytest.FixtureRequest,
) -> None:
    granted: set[str] = set()
    for settings in INTEGRATION_FEATURES:
        granted |= actions(policy(settings, aws_adapters(settings, list(Tool))))
    used = aws_calls.controller_operations({action.partition(":")[0] for action in granted})
    if not used:
        pytest.skip("no AWS call of the controller recorded: run this with the integration tests")
    assert used <= granted, f"the policy misses {sorted(used - granted)}"
    if _whole_suite_ran(request.session):
        unused = granted - used - IMPLIED_ACTIONS
        assert not unused, f"the policy grants what no test called: {sorted(unused)}"
