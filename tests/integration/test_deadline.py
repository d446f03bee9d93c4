"""A slow or failing AWS endpoint costs only its own pools, about one pass deadline.

The pools' AWS calls go through a proxy in front of the local AWS API (tests/helpers.py
`AwsProxy`) that holds every request naming one cluster without answering, as a
blackholed endpoint does, or answers the operations a test throttles with
ThrottlingException, counting every request the controller made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Literal

import pytest
import redis

from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.engine.reconcile import Reconciler
from celery_scaler.local.aws_api import LocalAws
from tests import aws_calls
from tests.helpers import THROTTLED, AwsProxy, desired_count

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_cluster(unique: str) -> str:
    return f"slow-{unique}"


@pytest.fixture
def proxy(aws: LocalAws, slow_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsProxy]:
    # Every request naming the slow cluster is held, as a blackholed endpoint holds it.
    def answer(operation: str, body: str) -> Literal["hold"] | None:
        return "hold" if slow_cluster in body else None

    with AwsProxy(aws.endpoint_url, answer) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server


@pytest.fixture
def aws_proxy(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsProxy]:
    """Forwards everything until a test sets its `answer`."""
    with AwsProxy(aws.endpoint_url, lambda operation, body: None) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server


def config(
    redis_url: str,
    queue: str,
    clusters: list[str],
    broker: str | None = None,
    controller: str = "",
) -> str:
    documents = [
        "apiVersion: celery-scaler/v1\nkind: Controller\nspec:\n"
        f"  broker: {broker or redis_url}\n  interval: 1s\n  inspectTimeout: 0.5s\n"
        "  cloudwatch: {enabled: false}\n  prometheus: {enabled: false}\n" + controller
    ]
    for cluster in clusters:
        documents.append(
            "apiVersion: celery-scaler/v1\nkind: WorkerPool\n"
            f"metadata: {{name: {cluster}}}\nspec:\n"
            f"  ecs: {{cluster: {cluster}, service: workers}}\n  queues: [{queue}]\n"
            "  metric: queue_depth\n  minCapacity: 1\n  maxCapacity: 5\n"
            "  fallback: {failureThreshold: 3}\n"
            "  scaleOut: {threshold: 1, steps: [{metricIntervalLowerBound: 0, "
            "scalingAdjustment: 1}]}\n"
        )
    return "---\n".join(documents)


def test_a_blackholed_cluster_fails_its_pools_at_the_deadline_and_the_others_scale(
    aws: LocalAws, proxy: AwsProxy, slow_cluster: str, redis_url: str, queue: str
) -> None:
    fast_cluster = slow_cluster.replace("slow-", "fast-")
    for cluster in (fast_cluster, slow_cluster):
        aws.create_service(cluster, "workers", 1)
    redis.Redis.from_url(redis_url).lpush(queue, *[b"{}"] * 3)
    settings = parse_config(config(redis_url, queue, [fast_cluster, slow_cluster]), "test")

    started = time.monotonic()
    report = build(settings).reconcile(time.time())
    took = time.monotonic() - started

    results = {result.pool: result for result in report.results}
    fast, slow = results[fast_cluster], results[slow_cluster]
    assert proxy.held >= 1, "the slow cluster's requests reached the blackhole"
    assert (fast.action, fast.applied, fast.desired) == ("scale_out", True, 2), fast
    assert not slow.applied
    assert slow.action == "hold"
    assert slow.error is not None
    assert "did not answer within the pass deadline" in slow.error
    # A 1 s interval: the pass deadline is 2 x 0.5 s inspect + 3 s; botocore's own patience
    # would be minutes (15 s of read timeout per request, several requests).
    assert took < 8.0, f"the pass took {took:.1f}s"


def test_an_outage_does_not_rewrite_the_failures_tag_every_pass(
    aws: LocalAws, unique: str, redis_url: str, queue: str
) -> None:
    cluster = f"outage-{unique}"
    aws.create_service(cluster, "workers", 2)
    # Nothing listens on port 1: every pass fails to read the broker, ECS answers.
    settings = parse_config(
        config(redis_url, queue, [cluster], broker="redis://127.0.0.1:1/0"), "test"
    )
    reconciler = build(settings)
    since = aws_calls.mark()
    for _ in range(6):
        result = reconciler.reconcile(time.time()).results[0]
        assert result.error
        assert not result.applied
    tag_writes = [
        entry
        for entry in aws_calls.entries(since)
        if aws_calls.operation_of(entry) == "TagResource" and cluster in aws_calls.body_of(entry)
    ]
    # Degraded at the first failure, the fallback threshold at the third: two writes.
    assert len(tag_writes) == 2, [aws_calls.body_of(entry) for entry in tag_writes]


# --- throttling: botocore retries, and nothing retries on top of it ----------------------


def scaling_out(
    aws: LocalAws, redis_url: str, queue: str, cluster: str, controller: str = ""
) -> Reconciler:
    """A reconciler for one pool on `cluster` whose next pass scales out from 1 to 2."""
    aws.create_service(cluster, "workers", 1)
    redis.Redis.from_url(redis_url).lpush(queue, *[b"{}"] * 3)
    return build(parse_config(config(redis_url, queue, [cluster], controller=controller), "test"))


def test_a_throttled_tag_write_is_botocores_three_requests_and_the_pass_reports_it(
    aws: LocalAws, aws_proxy: AwsProxy, unique: str, redis_url: str, queue: str
) -> None:
    cluster = f"tags-{unique}"
    reconciler = scaling_out(aws, redis_url, queue, cluster)
    aws_proxy.answer = lambda operation, body: THROTTLED if operation == "TagResource" else None

    (result,) = reconciler.reconcile(time.time()).results

    # Two tag writes (the intent before UpdateService, the state after it), each
    # botocore's 3 requests in a pass: no second layer multiplies them.
    assert aws_proxy.count("TagResource", "pending-write") == 3
    assert aws_proxy.count("TagResource", cluster) == 6
    assert aws_proxy.count("UpdateService", cluster) == 1
    assert (result.action, result.applied, result.desired) == ("scale_out", True, 2)
    assert result.error is not None
    assert "ECS TagResource failed: ThrottlingException: Rate exceeded" in result.error
    assert desired_count(aws, cluster) == 2


def test_a_throttled_update_service_is_botocores_three_requests_and_nothing_is_assumed(
    aws: LocalAws, aws_proxy: AwsProxy, unique: str, redis_url: str, queue: str
) -> None:
    cluster = f"update-{unique}"
    reconciler = scaling_out(aws, redis_url, queue, cluster)
    aws_proxy.answer = lambda operation, body: THROTTLED if operation == "UpdateService" else None

    (result,) = reconciler.reconcile(time.time()).results

    assert aws_proxy.count("UpdateService", cluster) == 3
    assert (result.action, result.applied) == ("scale_out", False)
    assert result.error is not None
    assert "ECS UpdateService failed: ThrottlingException: Rate exceeded" in result.error
    assert desired_count(aws, cluster) == 1


def test_a_throttled_lease_renewal_is_botocores_three_requests_and_nothing_is_written(
    aws: LocalAws, aws_proxy: AwsProxy, unique: str, redis_url: str, queue: str
) -> None:
    cluster = f"lease-{unique}"
    reconciler = scaling_out(
        aws,
        redis_url,
        queue,
        cluster,
        controller=f"  leaderElection: {{enabled: true, table: leases-{unique}}}\n",
    )
    # Only renewals are throttled (their condition: still ours and not expired), so the
    # election takes the lease and the fencing check before the first write fails.
    renewal = "expires > :now"
    aws_proxy.answer = lambda operation, body: (
        THROTTLED if operation == "UpdateItem" and renewal in body else None
    )

    (result,) = reconciler.reconcile(time.time()).results

    assert aws_proxy.count("UpdateItem", renewal) == 3
    assert result.error is not None
    assert f"the lease on pool '{cluster}' could not be renewed" in result.error
    assert "ThrottlingException: Rate exceeded" in result.error
    assert "nothing written" in result.error
    assert not result.applied
    assert aws_proxy.count("UpdateService", cluster) == 0
    assert aws_proxy.count("TagResource", cluster) == 0
    assert desired_count(aws, cluster) == 1
