"""The `iam-policy` command, and what each AWS adapter really calls on the local AWS API
against what it declares."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from celery_scaler.adapters.autoscaling import ScalableTargets, ScalingSuspension
from celery_scaler.adapters.broker import SqsQueueDepth
from celery_scaler.adapters.ecs import EcsService, EcsTaskProtection
from celery_scaler.adapters.leases import DynamoLeases
from celery_scaler.adapters.permissions import Tool
from celery_scaler.analysis.history import CloudWatchHistory
from celery_scaler.analysis.replay import MetricQuery
from celery_scaler.compose import aws_adapters
from celery_scaler.core.config import parse_config
from celery_scaler.iam import MANAGED_POLICY_CHARACTERS, Where, policy, size
from celery_scaler.local.aws_api import LocalAws
from celery_scaler.telemetry.cloudwatch import CloudWatchMetrics
from celery_scaler.telemetry.samples import Sample
from tests.helpers import config, pool, run

pytestmark = pytest.mark.integration


def test_the_command_prints_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(pool(), encoding="utf-8")
    result = run(
        "iam-policy",
        "--config",
        str(path),
        "--with",
        "report",
        "--account-id",
        "123456789012",
        "--region",
        "eu-west-1",
    )
    assert result.returncode == 0, result.stderr
    settings = parse_config(pool(), "x", env={})
    assert json.loads(result.stdout) == policy(
        settings, aws_adapters(settings, [Tool.REPORT]), Where("aws", "eu-west-1", "123456789012")
    )
    bad = run("iam-policy", "--config", str(path), "--account-id", "12")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: an AWS account id is 12 digits, got '12'"


def test_a_policy_too_large_for_a_managed_policy_says_so(tmp_path: Path) -> None:
    path = tmp_path / "celery-scaler.yaml"
    small = pool()
    large = "---\n".join(pool(f"p{i}", service=f"service-number-{i}") for i in range(60))
    for text, noted in [(small, False), (large, True)]:
        path.write_text(text, encoding="utf-8")
        result = run("iam-policy", "--config", str(path))
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert (size(document) > MANAGED_POLICY_CHARACTERS) is noted
        assert ("more than the 6144 of a managed policy" in result.stderr) is noted


# --- each adapter against the calls it really makes ---------------------------------------


def recording(client: Any) -> list[str]:
    """The operations a boto3 client calls from now on, as `service:Operation`."""
    called: list[str] = []
    prefix = client.meta.service_model.service_name
    client.meta.events.register(
        "before-call", lambda model, **_: called.append(f"{prefix}:{model.name}")
    )
    return called


def test_each_aws_adapter_declares_exactly_what_it_calls(aws: LocalAws, unique: str) -> None:
    # Every public method of each adapter, each on a client of its own, against the local
    # AWS API: what one adapter calls is its declaration, no more and no less (the after-all
    # test in tests/test_iam.py sees only the union of what the controller called).
    cluster, queue, namespace = f"c-{unique}", f"q-{unique}", f"ns-{unique}"
    aws.create_service(cluster, "workers", desired=1)
    aws.client("sqs").create_queue(QueueName=queue)
    clients = {
        adapter: aws.client(service)
        for adapter, service in [
            (EcsService, "ecs"),
            (EcsTaskProtection, "ecs"),
            (DynamoLeases, "dynamodb"),
            (SqsQueueDepth, "sqs"),
            (CloudWatchMetrics, "cloudwatch"),
            (CloudWatchHistory, "cloudwatch"),
            (ScalableTargets, "application-autoscaling"),
            (ScalingSuspension, "application-autoscaling"),
        ]
    }
    called = {adapter: recording(client) for adapter, client in clients.items()}

    ecs = EcsService(clients[EcsService])
    ecs.set_desired_count(cluster, "workers", 2)
    arn = ecs.describe(cluster, "workers").arn
    ecs.write_tags(arn, {"celery-scaler.io/last-desired": "2"}, [])
    ecs.write_tags(arn, {}, ["celery-scaler.io/last-desired"])

    # A task of the service, as the local fleet starts one (as ECS's scheduler would).
    task = aws.client("ecs").run_task(
        cluster=cluster,
        taskDefinition="workers-task",
        launchType="FARGATE",
        group="service:workers",
        startedBy="ecs-svc/1",
    )["tasks"][0]["taskArn"]
    protection = EcsTaskProtection(clients[EcsTaskProtection])
    assert [found.arn for found in protection.tasks(cluster, "workers")] == [task]
    protection.set_protection(cluster, [task], True, 5)
    assert list(protection.protected_until(cluster, [task])) == [task]

    leases = DynamoLeases(clients[DynamoLeases], f"leases-{unique}", "me", 30.0, time.time)
    assert [pool.name for pool in leases.elect(config().pools)] == ["default"]
    assert leases.holds("default")
    leases.release_all()

    assert SqsQueueDepth(clients[SqsQueueDepth]).observe([queue]).queue_depth == 0
    metrics = CloudWatchMetrics(clients[CloudWatchMetrics], namespace)
    metrics.publish([Sample("queue_depth", 3.0)], time.time())
    CloudWatchHistory(clients[CloudWatchHistory]).read(
        [MetricQuery("q", namespace, "queue_depth", (), "Maximum")],
        time.time() - 600,
        time.time(),
        60,
    )
    rid = f"service/{cluster}/workers"
    aws.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=rid,
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=4,
    )
    assert rid in ScalableTargets(clients[ScalableTargets]).scalable_targets()
    suspension = ScalingSuspension(clients[ScalingSuspension])
    found = suspension.target(rid)
    assert found is not None
    suspension.set_suspended(found, True, True)
    for adapter, operations in called.items():
        assert set(operations) == set(adapter.iam_actions), adapter.__name__
