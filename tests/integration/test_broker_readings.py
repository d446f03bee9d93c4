"""The broker readings hold in real broker set-ups (issue 12).

Each test sets the broker up as an application does (Celery's own publishing, its
transport options, real workers, a worker killed outright, a publisher whose clock runs
ahead, a key of the wrong type, a misspelt SQS queue) and checks what the controller
reads, mostly through `celery-scaler reconcile --once` so the composition root's wiring
is what is tested. Odd Redis states get a private redis-server; RabbitMQ queues are
named for the test and deleted after it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from celery import Celery
from kombu.connection import Connection
from kombu.entity import Queue

from celery_scaler.adapters.broker import KombuQueueDepth
from celery_scaler.compose import build_telemetry
from celery_scaler.core.config import parse_config
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.names import PUBLISHED_AT_HEADER
from celery_scaler.instrument import instrument, uninstrument
from celery_scaler.local.aws_api import LocalAws
from celery_scaler.local.demo import RedisServer
from celery_scaler.local.fleet import reap
from tests.helpers import desired_count, json_lines, pool_config, run, write
from tests.workers import NOOP_TASK, SLEEP_TASK, start_workers, wait_for

pytestmark = pytest.mark.integration

MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
"""RabbitMQ's management API (the rabbitmq_management plugin) beside AMQP_URL."""

# Celery's documented Redis priority set-up: ten lists per queue, ":" between name and step.
PRIORITY_OPTIONS: dict[str, Any] = {"sep": ":", "priority_steps": list(range(10))}


def config(
    broker: str,
    cluster: str,
    queue: str,
    control_exchange: str = "celery",
    *,
    controller: dict[str, Any] | None = None,
    more_pools: dict[str, str] | None = None,
    **spec: object,
) -> str:
    """tests.helpers.pool_config with Controller fields added, and more pools on queues."""
    docs = list(yaml.safe_load_all(pool_config(broker, cluster, queue, control_exchange, **spec)))
    docs[0]["spec"].update(controller or {})
    for service, other_queue in (more_pools or {}).items():
        pool = yaml.safe_load(yaml.safe_dump(docs[1]))
        pool["metadata"]["name"] = service
        pool["spec"]["ecs"]["service"] = service
        pool["spec"]["queues"] = [other_queue]
        docs.append(pool)
    return yaml.safe_dump_all(docs)


def reconcile(tmp_path: Path, text: str, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """`reconcile --once -o json`: the exit code and each pool's JSON line."""
    result = run("reconcile", "--once", "-o", "json", *args, "--config", str(write(tmp_path, text)))
    lines = json_lines(result.stdout)
    assert lines, f"no JSON line; exit {result.returncode}\n{result.stderr}"
    return result.returncode, {str(line["pool"]): line for line in lines}


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A redis-server of the test's own: nothing it leaves behind reaches other tests."""
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def apps() -> Iterator[Callable[..., Celery]]:
    """Celery apps as an application configures them; closed after the test."""
    made: list[Celery] = []

    def make(url: str, **transport_options: object) -> Celery:
        app = Celery(broker=url, set_as_current=False)
        app.conf.broker_transport_options = transport_options
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture
def stamping() -> Iterator[None]:
    """instrument() stamps every publish of this process; undone after the test."""
    uninstrument()
    yield
    uninstrument()


def delete_keys(url: str, pattern: str) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=pattern):
        client.delete(key)
    client.close()


# --- 1. the application's transport options ---------------------------------------------


def test_reconcile_reads_queues_laid_out_by_the_apps_transport_options(
    aws: LocalAws,
    redis_url: str,
    unique: str,
    tmp_path: Path,
    apps: Callable[..., Celery],
) -> None:
    # Before: kombu's default separator and steps, and no prefix, read 0 of these 20.
    queue, prefix = f"q-{unique}", f"app-{unique}:"
    options = {**PRIORITY_OPTIONS, "global_keyprefix": prefix}
    app = apps(redis_url, **options)
    try:
        for number in range(20):
            app.send_task(NOOP_TASK, queue=queue, priority=number % 10)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        written = set(client.scan_iter(match=f"{prefix}{queue}*"))
        client.close()
        # As the application laid them out: ten lists, named with ":" and the prefix.
        assert written == {f"{prefix}{queue}"} | {f"{prefix}{queue}:{n}" for n in range(1, 10)}

        cluster = f"c-{unique}"
        aws.create_service(cluster, "workers", desired=2)
        text = config(redis_url, cluster, queue, controller={"brokerTransportOptions": options})
        _, results = reconcile(tmp_path, text, "--dry-run")

        assert results["p"]["observed"]["queue_depth"] == 20
        assert results["p"]["desired"] == 5  # 20 is 15 above the threshold of 5: +3
    finally:
        delete_keys(redis_url, f"{prefix}*")


def test_inspect_and_task_events_reach_workers_with_a_key_prefix(
    aws: LocalAws,
    redis_url: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A key prefix renames the broadcast channel, the reply lists and the event channel:
    # without the workers' transport options, inspect and the event receiver hear nobody.
    queue, prefix, exchange = f"q-{unique}", f"app-{unique}:", f"x-{unique}"
    options = {"global_keyprefix": prefix}
    monkeypatch.setenv("CELERY_SCALER_INSTRUMENT", "1")  # the workers send task events
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=1)
    controller = {
        "brokerTransportOptions": options,
        "cloudwatch": {"enabled": False},
        "prometheus": {"enabled": False},
    }
    text = config(redis_url, cluster, queue, exchange, controller=controller)
    try:
        with start_workers(
            redis_url, 1, [queue], control_exchange=exchange, transport_options=options
        ) as fleet:
            _, results = reconcile(tmp_path, text, "--dry-run")
            assert results["p"]["observed"]["worker_status"] == 1

            parsed = parse_config(text, "test")
            events = build_telemetry(parsed, parsed.pools, continuous=True).events
            assert events is not None
            events.start()
            try:
                wait_for(lambda: events.listening, 10, "the event receiver to subscribe")
                fleet.app.send_task(NOOP_TASK, queue=queue)
                succeeded: Counter[str] = Counter()

                def counted() -> bool:
                    for outcomes in events.drain().counts.values():
                        succeeded.update(outcomes)
                    return succeeded["succeeded_tasks"] >= 1

                wait_for(counted, 20, "a task-succeeded event", fleet[0].log_tail)
            finally:
                events.close()
    finally:
        delete_keys(redis_url, f"{prefix}*")


# --- 3. work that left the queue -----------------------------------------------------------


def test_a_worker_killed_with_prefetched_tasks_leaves_them_counted(
    aws: LocalAws, private_redis: str, unique: str, tmp_path: Path
) -> None:
    # Before: the killed worker's 4 prefetched messages sat in kombu's unacked hash for
    # the visibility timeout (1 h), the controller read a backlog of 0 and scaled in.
    queue = f"q-{unique}"
    # Where the application keeps its unacked hash: a prefix and a name of its own.
    options = {"global_keyprefix": "app:", "unacked_key": "held"}
    held = redis.Redis.from_url(private_redis)
    with start_workers(
        private_redis, 1, [queue], concurrency=4, pool="threads", transport_options=options
    ) as fleet:
        worker = fleet[0]
        for _ in range(8):
            fleet.app.send_task(SLEEP_TASK, args=[120], queue=queue)
        # Four run (acknowledged as they start, Celery's default); four wait prefetched.
        wait_for(
            lambda: len(fleet.active(worker)) == 4 and held.hlen("app:held") == 4,
            30,
            "4 running and 4 prefetched tasks",
            worker.log_tail,
        )
        reap(worker)  # SIGKILL: no warm shutdown hands the prefetched messages back
    assert held.hlen("app:held") == 4
    held.close()

    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    text = config(
        private_redis,
        cluster,
        queue,
        controller={"brokerTransportOptions": options},
        metric="backlog_per_task",
        safeScaleIn=False,
    )
    _, results = reconcile(tmp_path, text)

    observed = results["p"]["observed"]
    assert observed["queue_depth"] == 0
    assert observed["unacked_tasks"] == 4
    assert observed["backlog_per_task"] == pytest.approx(4 / 3)
    assert results["p"]["action"] == "hold"
    assert desired_count(aws, cluster) == 3


@pytest.fixture
def held_by_a_consumer(amqp_url: str, unique: str) -> Iterator[str]:
    """A RabbitMQ queue of 5 messages, 3 of them delivered to a consumer that never acks."""
    name = f"q-{unique}"
    with Connection(amqp_url) as connection:  # type: ignore[no-untyped-call]  # kombu has no hints
        queue = Queue(name, routing_key=name)  # type: ignore[no-untyped-call]
        with connection.Producer() as producer:
            for number in range(5):
                producer.publish({"n": number}, routing_key=name, declare=[queue])
        received: list[object] = []
        channel = connection.channel()
        channel.basic_qos(0, 3, False)
        with connection.Consumer(
            queue, channel=channel, callbacks=[lambda _b, m: received.append(m)]
        ):
            deadline = time.monotonic() + 10
            while len(received) < 3 and time.monotonic() < deadline:
                connection.drain_events(timeout=1)
            assert len(received) == 3
            yield name
        channel.close()
        connection.default_channel.queue_delete(name)


def test_rabbitmq_unacked_messages_from_the_management_api(
    aws: LocalAws, amqp_url: str, unique: str, tmp_path: Path, held_by_a_consumer: str
) -> None:
    queue = held_by_a_consumer
    adapter = KombuQueueDepth(amqp_url, management_url=MANAGEMENT_URL)
    # RabbitMQ gathers the figures it serves every few seconds (collect_statistics_interval).
    wait_for(lambda: adapter.observe([queue]).unacked == 3, 20, "RabbitMQ to count 3 unacked")
    observation = adapter.observe([queue])
    adapter.close()
    assert (observation.queue_depth, observation.per_queue_unacked) == (2, {queue: 3})

    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=1)
    text = config(amqp_url, cluster, queue, controller={"rabbitmqManagementUrl": MANAGEMENT_URL})
    _, results = reconcile(tmp_path, text, "--dry-run")
    assert results["p"]["observed"]["unacked_tasks"] == 3


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://guest:not-the-password@127.0.0.1:15672", "refused the credentials HTTP 401"),
        ("http://guest:not-the-password@127.0.0.1:1", "cannot be reached"),
    ],
)
def test_rabbitmq_management_api_errors_mask_the_password(
    amqp_url: str, held_by_a_consumer: str, url: str, expected: str
) -> None:
    adapter = KombuQueueDepth(amqp_url, management_url=url)
    with pytest.raises(AdapterError) as raised:
        adapter.observe([held_by_a_consumer])
    adapter.close()
    message = str(raised.value)
    assert message.startswith("the RabbitMQ management API at http://guest:***@127.0.0.1:")
    assert expected in message
    assert "not-the-password" not in message


# --- 4. queue latency -----------------------------------------------------------------------


def test_an_unstamped_message_at_the_head_no_longer_hides_the_latency(
    redis_url: str, queue: str, apps: Callable[..., Celery], stamping: None
) -> None:
    # Before: one message from a producer without instrument(app), first in line, made
    # the latency unknown every pass.
    app = apps(redis_url)
    app.send_task(NOOP_TASK, queue=queue)  # not stamped: instrument is not on yet
    instrument(app)
    before = time.time()
    for _ in range(3):
        app.send_task(NOOP_TASK, queue=queue)
    adapter = KombuQueueDepth(redis_url, clock=lambda: before + 30)
    observation = adapter.observe([queue])
    adapter.close()
    assert observation.queue_depth == 4
    assert observation.latency_seconds == pytest.approx(30, abs=1)
    assert observation.per_queue_unstamped == {queue: 1}


def test_a_publisher_clock_ahead_holds_the_pool_instead_of_scaling_in(
    aws: LocalAws,
    redis_url: str,
    queue: str,
    unique: str,
    tmp_path: Path,
    apps: Callable[..., Celery],
) -> None:
    # Before: 50 messages stamped by a clock 300 s ahead read as latency 0, and the pool
    # scaled in with them waiting.
    app = apps(redis_url)
    ahead = time.time() + 300
    for _ in range(50):
        app.send_task(NOOP_TASK, queue=queue, headers={PUBLISHED_AT_HEADER: ahead})
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    text = config(
        redis_url,
        cluster,
        queue,
        metric="queue_latency_seconds",
        scaleIn={
            "threshold": 10,
            "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
        },
        scaleOut={
            "threshold": 60,
            "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
        },
    )

    code, results = reconcile(tmp_path, text)

    result = results["p"]
    assert code == 1
    assert result["action"] == "hold"
    assert "queue_latency_seconds" not in result["observed"]
    assert result["observed"]["queue_depth"] == 50
    assert "ClockSkew" in result["conditions"]
    assert desired_count(aws, cluster) == 3


# --- 5. one bad key ---------------------------------------------------------------------------


def test_a_queue_key_of_the_wrong_type_fails_only_its_own_pool(
    aws: LocalAws, private_redis: str, unique: str, tmp_path: Path, apps: Callable[..., Celery]
) -> None:
    bad, good = f"bad-{unique}", f"good-{unique}"
    client = redis.Redis.from_url(private_redis)
    client.set(bad, "not a list")
    client.close()
    app = apps(private_redis)
    for _ in range(12):
        app.send_task(NOOP_TASK, queue=good)
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    aws.create_service(cluster, "healthy", desired=2)
    text = config(private_redis, cluster, bad, more_pools={"healthy": good})

    code, results = reconcile(tmp_path, text)

    assert code == 1
    assert f"queue '{bad}': WRONGTYPE" in results["p"]["error"]
    assert results["p"]["action"] == "hold"
    # Before: the shared read failed, and the healthy pool held too.
    assert results["healthy"]["error"] is None
    assert results["healthy"]["observed"]["queue_depth"] == 12
    assert results["healthy"]["desired"] == 3


# --- 6. a missing queue -----------------------------------------------------------------------


def test_a_misspelt_sqs_queue_holds_and_says_so(aws: LocalAws, unique: str, tmp_path: Path) -> None:
    # Before: the typo read as depth 0, and the pool scaled in with exit 0.
    cluster, typo = f"c-{unique}", f"celery-{uuid.uuid4().hex[:6]}"
    aws.create_service(cluster, "workers", desired=3)

    code, results = reconcile(tmp_path, config("sqs://", cluster, typo))

    result = results["p"]
    assert code == 1
    assert result["action"] == "hold"
    assert f"the broker has no queue '{typo}'" in result["error"]
    assert "QueueMissing" in result["conditions"]
    assert desired_count(aws, cluster) == 3
