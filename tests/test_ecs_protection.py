"""Task protection calls against ECS's real service model (botocore's Stubber).

The Stubber validates every request against the same model the real service uses and
answers what the local AWS API cannot be made to (a failure, an access denial);
tests/integration/test_drain.py runs the adapter against the local AWS API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from celery_scaler.adapters.ecs import EcsTaskProtection
from celery_scaler.core.errors import AdapterError

ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/"


@pytest.fixture
def stubbed() -> Iterator[tuple[EcsTaskProtection, Stubber]]:
    client = boto3.client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield EcsTaskProtection(client), stubber
        stubber.assert_no_pending_responses()


def test_tasks_with_addresses_and_host_names(stubbed: tuple[EcsTaskProtection, Stubber]) -> None:
    protection, stubber = stubbed
    arns = [ARN + "a" * 32, ARN + "b" * 32]
    stubber.add_response(
        "list_tasks",
        {"taskArns": arns},
        {"cluster": "prod", "serviceName": "workers", "desiredStatus": "RUNNING"},
    )
    stubber.add_response(
        "describe_tasks",
        {
            "tasks": [
                {
                    "taskArn": arns[0],
                    "attachments": [
                        {
                            "type": "ElasticNetworkInterface",
                            "details": [
                                {"name": "privateIPv4Address", "value": "10.0.1.23"},
                                {"name": "privateDnsName", "value": "ip-10-0-1-23.ec2.internal"},
                            ],
                        }
                    ],
                },
                {
                    "taskArn": arns[1],
                    "containers": [{"networkInterfaces": [{"privateIpv4Address": "10.0.2.7"}]}],
                },
            ]
        },
        {"cluster": "prod", "tasks": arns},
    )
    tasks = protection.tasks("prod", "workers")
    assert [task.addresses for task in tasks] == [
        frozenset({"10.0.1.23"}),
        frozenset({"10.0.2.7"}),
    ]
    assert tasks[0].hostnames == frozenset({"ip-10-0-1-23.ec2.internal"})


def test_protected_until(stubbed: tuple[EcsTaskProtection, Stubber]) -> None:
    protection, stubber = stubbed
    arns = [ARN + "a" * 32, ARN + "b" * 32]
    expires = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    stubber.add_response(
        "get_task_protection",
        {
            "protectedTasks": [
                {"taskArn": arns[0], "protectionEnabled": True, "expirationDate": expires},
                {"taskArn": arns[1], "protectionEnabled": False},
            ]
        },
        {"cluster": "prod", "tasks": arns},
    )
    assert protection.protected_until("prod", arns) == {arns[0]: expires.timestamp()}


def test_protect_in_batches_of_ten_and_release(stubbed: tuple[EcsTaskProtection, Stubber]) -> None:
    protection, stubber = stubbed
    arns = [f"{ARN}{i:032x}" for i in range(12)]
    for batch in (arns[:10], arns[10:]):
        stubber.add_response(
            "update_task_protection",
            {"protectedTasks": [], "failures": []},
            {"cluster": "prod", "tasks": batch, "protectionEnabled": True, "expiresInMinutes": 60},
        )
    protection.set_protection("prod", arns, True, 60)
    stubber.add_response(
        "update_task_protection",
        {"protectedTasks": []},
        {"cluster": "prod", "tasks": arns[:1], "protectionEnabled": False},
    )
    protection.set_protection("prod", arns[:1], False)


def test_failures_and_errors_are_adapter_errors(stubbed: tuple[EcsTaskProtection, Stubber]) -> None:
    protection, stubber = stubbed
    stubber.add_response(
        "update_task_protection",
        {"failures": [{"arn": ARN + "a" * 32, "reason": "TASK_NOT_VALID"}]},
        {"cluster": "prod", "tasks": [ARN + "a" * 32], "protectionEnabled": False},
    )
    with pytest.raises(AdapterError, match="TASK_NOT_VALID"):
        protection.set_protection("prod", [ARN + "a" * 32], False)
    stubber.add_client_error("get_task_protection", "AccessDeniedException", "not allowed")
    with pytest.raises(AdapterError, match="GetTaskProtection failed: AccessDeniedException"):
        protection.protected_until("prod", [ARN + "a" * 32])
