"""A slow or failing AWS endpoint costs only its own pools, about one pass deadline.

The pools' AWS calls go through a proxy in front of the local AWS API that holds every
request naming one cluster without answering, as a blackholed endpoint does.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import redis

from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.local.aws_api import LocalAws
from tests import aws_calls

pytestmark = pytest.mark.integration

HELD_AT_MOST = 60.0
"""How long the proxy holds a request before dropping it, so no test thread hangs forever."""


class BlackholeProxy(ThreadingHTTPServer):
    """Forwards HTTP to `upstream`, except requests whose body holds `marker`: never answered."""

    daemon_threads = True

    def __init__(self, upstream: str, marker: bytes) -> None:
        self.upstream = urlsplit(upstream)
        self.marker = marker
        self.released = threading.Event()
        self.held = 0
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Forward(BaseHTTPRequestHandler):
    server: BlackholeProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.marker in body:
            self.server.held += 1
            self.server.released.wait(HELD_AT_MOST)
            self.close_connection = True
            return
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname or "127.0.0.1", self.server.upstream.port, timeout=30
        )
        upstream.request("POST", self.path, body, dict(self.headers.items()))
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def slow_cluster(unique: str) -> str:
    return f"slow-{unique}"


@pytest.fixture
def proxy(
    aws: LocalAws, slow_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BlackholeProxy]:
    server = BlackholeProxy(aws.endpoint_url, slow_cluster.encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


def config(redis_url: str, queue: str, clusters: list[str], broker: str | None = None) -> str:
    documents = [
        "apiVersion: celery-scaler/v1\nkind: Controller\nspec:\n"
        f"  broker: {broker or redis_url}\n  interval: 1s\n  inspectTimeout: 0.5s\n"
        "  cloudwatch: {enabled: false}\n  prometheus: {enabled: false}\n"
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
    aws: LocalAws, proxy: BlackholeProxy, slow_cluster: str, redis_url: str, queue: str
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
