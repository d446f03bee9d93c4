"""The ECS adapter against the local AWS API over HTTP."""

from __future__ import annotations

import pytest

from celery_scaler.adapters.aws import client_config
from celery_scaler.adapters.ecs import EcsService
from celery_scaler.core.errors import AdapterError
from celery_scaler.local.aws_api import LocalAws

pytestmark = pytest.mark.integration


def adapter(aws: LocalAws) -> EcsService:
    import boto3

    return EcsService(boto3.Session().client("ecs", config=client_config()))


def test_describe_and_update(aws: LocalAws, unique: str) -> None:
    aws.create_service(f"c-{unique}", "workers", desired=3)
    ecs = adapter(aws)
    service = ecs.describe(f"c-{unique}", "workers")
    assert (service.desired, service.running, service.deploying) == (3, 3, False)
    ecs.set_desired_count(f"c-{unique}", "workers", 5)
    assert ecs.describe(f"c-{unique}", "workers").desired == 5


def test_rollout_in_progress_is_deploying(aws: LocalAws, unique: str) -> None:
    client = aws.client("ecs")
    client.create_cluster(clusterName=f"c-{unique}")
    client.register_task_definition(
        family="td", containerDefinitions=[{"name": "w", "image": "w", "memory": 64}]
    )
    # The local AWS API leaves a service created above 0 rolling out forever.
    client.create_service(
        cluster=f"c-{unique}", serviceName="rolling", taskDefinition="td", desiredCount=2
    )
    assert adapter(aws).describe(f"c-{unique}", "rolling").deploying is True


def test_missing_service_and_cluster_are_clear_errors(aws: LocalAws, unique: str) -> None:
    aws.create_service(f"c-{unique}", "workers", desired=1)
    with pytest.raises(AdapterError, match=r"'nope' in cluster .*MISSING"):
        adapter(aws).describe(f"c-{unique}", "nope")
    with pytest.raises(AdapterError, match="ClusterNotFound"):
        adapter(aws).describe(f"missing-{unique}", "workers")


def test_no_credentials_is_a_clear_error(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AdapterError, match="no AWS credentials"):
        adapter(aws).describe("any", "workers")


def failing_first(client: object, failures: list[tuple[int, bytes]]) -> list[str]:
    """Make the first requests fail at the HTTP layer; botocore's own retries see them."""
    from botocore.awsrequest import AWSResponse

    seen: list[str] = []

    def before_send(request: object, **_: object) -> AWSResponse | None:
        seen.append(str(getattr(request, "url", "")))
        if failures:
            status, body = failures.pop(0)
            return AWSResponse("https://local", status, {}, _Raw(body))
        return None

    client.meta.events.register("before-send.ecs", before_send)  # type: ignore[attr-defined]
    return seen


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object) -> list[bytes]:
        return [self._body]


@pytest.mark.parametrize(
    "failure",
    [
        (400, b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'),
        (503, b'{"__type": "ServiceUnavailableException", "message": "try later"}'),
    ],
)
def test_throttling_and_5xx_are_retried(
    aws: LocalAws, unique: str, failure: tuple[int, bytes]
) -> None:
    aws.create_service(f"c-{unique}", "workers", desired=2)
    ecs = adapter(aws)
    attempts = failing_first(ecs._client, [failure, failure])
    ecs.set_desired_count(f"c-{unique}", "workers", 4)
    assert len(attempts) == 3
    assert ecs.describe(f"c-{unique}", "workers").desired == 4


def test_client_errors_are_not_retried(aws: LocalAws, unique: str) -> None:
    aws.create_service(f"c-{unique}", "workers", desired=2)
    ecs = adapter(aws)
    attempts = failing_first(
        ecs._client, [(400, b'{"__type": "AccessDeniedException", "message": "no"}')]
    )
    with pytest.raises(AdapterError, match="AccessDeniedException"):
        ecs.set_desired_count(f"c-{unique}", "workers", 4)
    assert len(attempts) == 1
    assert ecs.describe(f"c-{unique}", "workers").desired == 2


def test_tags_written_and_read_back(aws: LocalAws, unique: str) -> None:
    aws.create_service(f"c-{unique}", "workers", desired=1)
    ecs = adapter(aws)
    arn = ecs.describe(f"c-{unique}", "workers").arn
    ecs.write_tags(arn, {"celery-scaler.io/last-desired": "3", "keep": "me"}, [])
    ecs.write_tags(arn, {}, ["keep"])
    assert ecs.describe(f"c-{unique}", "workers").tags == {"celery-scaler.io/last-desired": "3"}


def test_describe_many_batches_ten_per_call_and_reports_each_missing(
    aws: LocalAws, unique: str
) -> None:
    cluster = f"c-{unique}"
    names = [f"s{i}" for i in range(12)]
    for name in names:
        aws.create_service(cluster, name, desired=1)
    ecs = adapter(aws)
    calls = failing_first(ecs._client, [])
    found = ecs.describe_many(cluster, [*names, "gone"])
    assert len(calls) == 2
    assert all(found[name].desired == 1 for name in names)  # type: ignore[union-attr]
    assert "'gone'" in str(found["gone"])
    assert "MISSING" in str(found["gone"])
