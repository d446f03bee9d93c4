"""The broker adapters against real Redis, RabbitMQ and the local AWS API.

Messages are published by a real Celery app, so the tests check the adapters against
what Celery and kombu really write, not against our idea of it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import redis
from celery import Celery
from kombu.connection import Connection
from kombu.entity import Queue

from celery_scaler.adapters.broker import KombuQueueDepth, SqsQueueDepth, redis_priority_keys
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.names import sqs_queue_name
from celery_scaler.instrument import PUBLISHED_AT_HEADER, instrument, uninstrument
from celery_scaler.local.aws_api import LocalAws
from tests.helpers import TcpProxy

pytestmark = pytest.mark.integration

KOMBU_SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep
KOMBU_STEPS = (0, 3, 6, 9)  # kombu.transport.redis.PRIORITY_STEPS


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def queue(redis_url: str, amqp_url: str, unique: str) -> Iterator[str]:
    """A queue name no other test uses, deleted afterwards from both brokers."""
    name = f"q-{unique}"
    yield name
    delete_queue(redis_url, name)
    delete_queue(amqp_url, name)


def delete_queue(url: str, name: str) -> None:
    if url.startswith("redis"):
        client = redis.Redis.from_url(url)
        # The priority lists and kombu's binding sets all contain the (unique) name.
        for key in client.scan_iter(match=f"*{name}*"):
            client.delete(key)
        client.close()
        return
    with Connection(url) as connection:  # type: ignore[no-untyped-call]  # kombu has no hints
        channel = connection.channel()
        channel.queue_delete(name)
        channel.exchange_delete(name)  # Celery made a direct exchange named after the queue


@pytest.fixture
def make_app() -> Iterator[Callable[..., Celery]]:
    apps: list[Celery] = []

    def make(url: str, **transport_options: object) -> Celery:
        app = Celery(broker=url, set_as_current=False)
        if url.startswith("amqp"):
            # Publisher confirms: send_task returns once RabbitMQ holds the message, so a
            # read right after it sees every message (without, the last may be in transit).
            transport_options = {"confirm_publish": True, **transport_options}
        if transport_options:
            app.conf.broker_transport_options = transport_options
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def make_adapter() -> Iterator[Callable[..., KombuQueueDepth]]:
    adapters: list[KombuQueueDepth] = []

    def make(url: str, **kwargs: object) -> KombuQueueDepth:
        adapter = KombuQueueDepth(url, **kwargs)  # type: ignore[arg-type]
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


@pytest.fixture
def make_instrumented_app(make_app: Callable[..., Celery]) -> Iterator[Callable[..., Celery]]:
    """`make_app`, the app instrumented: its publishes are stamped. The instrumentation's
    receiver is process-wide, so it goes before the test and after it."""
    uninstrument()

    def make(url: str, **transport_options: object) -> Celery:
        app = make_app(url, **transport_options)
        instrument(app)
        return app

    yield make
    uninstrument()


@pytest.fixture
def not_instrumented() -> None:
    uninstrument()


def publish(app: Celery, queue: str, count: int = 1, **options: object) -> None:
    for _ in range(count):
        app.send_task("tasks.noop", queue=queue, **options)


def raw_lists(url: str, keys: tuple[str, ...]) -> dict[str, list[bytes | str]]:
    client: redis.Redis = redis.Redis.from_url(url)
    try:
        return {key: client.lrange(key, 0, -1) for key in keys}
    finally:
        client.close()


def stamp_of(raw: bytes | str) -> float:
    stamp: float = json.loads(raw)["headers"][PUBLISHED_AT_HEADER]
    return stamp


# --- depth: Redis and RabbitMQ through the same adapter ---------------------------------


def test_depth_counts_messages_celery_published(
    broker_url: str,
    queue: str,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    publish(make_app(broker_url), queue, count=3)
    adapter = make_adapter(broker_url)
    observation = adapter.observe([queue])
    assert observation.queue_depth == 3
    assert observation.per_queue == {queue: 3}
    # Redis: kombu's unacked hash holds nothing of this queue; RabbitMQ: no management API.
    assert observation.unacked == (0 if broker_url.startswith("redis") else None)
    # The connection is kept: a second pass reads the same again.
    assert adapter.observe([queue]).queue_depth == 3


def test_missing_queue_is_reported_and_the_next_queue_still_reads(
    broker_url: str,
    queue: str,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    publish(make_app(broker_url), queue, count=2)
    # On RabbitMQ each missing queue closes the channel (404): the queue after it must
    # still be read, on a fresh channel.
    missing = [f"{queue}-missing-1", f"{queue}-missing-2"]
    observation = make_adapter(broker_url).observe([missing[0], queue, missing[1], queue])
    assert observation.per_queue == {missing[0]: 0, queue: 2, missing[1]: 0}
    assert observation.queue_depth == 2
    # RabbitMQ says NOT_FOUND: reported, not read as empty. On Redis an absent key is
    # an empty list, as Redis defines it.
    expected = frozenset(missing) if broker_url.startswith("amqp") else frozenset()
    assert observation.missing == expected
    assert observation.errors == {}


def test_reading_depth_never_creates_a_queue(
    broker_url: str, queue: str, make_adapter: Callable[..., KombuQueueDepth]
) -> None:
    # Fails if depth were read with a non-passive declare: RabbitMQ would create the queue.
    make_adapter(broker_url).observe([queue])
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.channel()
        with pytest.raises(connection.channel_errors, match="NOT_FOUND"):
            channel.queue_declare(queue=queue, passive=True)


def test_rabbitmq_queue_declared_with_arguments(
    amqp_url: str,
    queue: str,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    # Celery declared this queue with x-max-priority; a non-passive declare without the
    # same arguments fails with PRECONDITION_FAILED, a passive one just counts.
    app = make_app(amqp_url)
    app.conf.task_queues = [Queue(queue, queue_arguments={"x-max-priority": 10})]  # type: ignore[no-untyped-call]
    for priority in (0, 5, 9):
        publish(app, queue, priority=priority)
    assert make_adapter(amqp_url).observe([queue]).queue_depth == 3


def test_redis_depth_counts_every_priority_list(
    redis_url: str,
    queue: str,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    app = make_app(redis_url)
    for priority in (None, 0, 3, 5, 6, 9):
        publish(app, queue, priority=priority)
    lists = raw_lists(redis_url, redis_priority_keys(queue, steps=KOMBU_STEPS, sep=KOMBU_SEP))
    # Celery spread the messages over every priority list, and wrote no list we do not read.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    written = {key for key in client.scan_iter(match=f"*{queue}*") if not key.startswith("_kombu")}
    client.close()
    assert written == {key for key, messages in lists.items() if messages}
    assert len(written) == 4
    assert sum(len(messages) for messages in lists.values()) == 6
    assert make_adapter(redis_url).observe([queue]).queue_depth == 6


def test_redis_global_keyprefix(
    redis_url: str,
    unique: str,
    make_instrumented_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    queue, prefix = f"q-{unique}", f"pfx-{unique}:"
    app = make_instrumented_app(redis_url, global_keyprefix=prefix)
    try:
        publish(app, queue, priority=0)
        publish(app, queue, priority=9)
        tails = [
            messages[-1]
            for messages in raw_lists(
                redis_url,
                redis_priority_keys(queue, steps=KOMBU_STEPS, sep=KOMBU_SEP, prefix=prefix),
            ).values()
            if messages
        ]
        assert len(tails) == 2
        oldest = min(stamp_of(raw) for raw in tails)
        adapter = make_adapter(
            redis_url, transport_options={"global_keyprefix": prefix}, clock=lambda: oldest + 7
        )
        # kombu's own passive declare misses prefixed queues (its EXISTS is not prefixed).
        observation = adapter.observe([queue])
        assert observation.queue_depth == 2
        assert observation.latency_seconds == pytest.approx(7.0)
    finally:
        delete_queue(redis_url, unique)


def test_redis_connection_is_kept_between_passes(
    redis_url: str, queue: str, make_adapter: Callable[..., KombuQueueDepth]
) -> None:
    # Through a proxy that counts connections: other tests' clients on the shared
    # Redis do not show up in the count.
    parts = urlsplit(redis_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    try:
        adapter = make_adapter(proxy.url(redis_url))
        adapter.observe([queue])
        before = proxy.accepted
        for _ in range(5):
            adapter.observe([queue, f"{queue}-2"])
        assert proxy.accepted == before
    finally:
        proxy.stop()


def test_a_redis_reading_is_one_round_trip_however_many_queues(
    redis_url: str,
    unique: str,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every queue's lists (depth and oldest messages) and the first page of the unacked
    # hash in one pipeline: 300 queues cost what 3 do. An unacked hash of the test's own,
    # so other tests' unacknowledged messages do not lengthen the scan.
    options = {"unacked_key": f"unacked-{unique}"}
    queues = [f"rt-{unique}-{index}" for index in range(300)]
    app = make_app(redis_url, **options)
    for queue in queues[:3]:
        publish(app, queue, 2)
    adapter = make_adapter(redis_url, transport_options=options)
    adapter.observe(queues[:3])  # connects: the handshake is not a reading
    # redis-py sends each request (a command, or a whole pipeline) with one call of this.
    requests: list[int] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        requests.append(1)
        send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    try:
        for names in (queues[:3], queues):
            del requests[:]
            observation = adapter.observe(names)
            assert observation.queue_depth == 6
            assert observation.unacked == 0
            assert len(requests) == 1, f"{len(names)} queues"
    finally:
        monkeypatch.undo()
        for queue in queues[:3]:
            delete_queue(redis_url, queue)


@pytest.fixture
def proxy(broker_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(broker_url)
    forwarder = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 0))
    yield forwarder
    forwarder.stop()


def test_reconnects_after_the_connection_drops(
    broker_url: str,
    queue: str,
    proxy: TcpProxy,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    publish(make_app(broker_url), queue)
    adapter = make_adapter(proxy.url(broker_url))
    assert adapter.observe([queue]).queue_depth == 1

    proxy.cut()  # the kept connection goes stale between passes
    assert adapter.observe([queue]).queue_depth == 1

    proxy.stop()  # the broker is gone: the pass fails and says so
    with pytest.raises(AdapterError, match="cannot read queues"):
        adapter.observe([queue])

    proxy.start()  # and back: the next pass reconnects
    assert adapter.observe([queue]).queue_depth == 1


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("redis://:hunter2@127.0.0.1:1/0", ["hunter2"]),
        ("amqp://guest:hunter2@127.0.0.1:1//", ["hunter2"]),
        ("amqp://guest:hun%40ter2@127.0.0.1:1//", ["hun%40ter2", "hun@ter2"]),
    ],
    ids=["redis", "amqp", "amqp-quoted"],
)
def test_unreachable_broker_fails_fast_without_the_password(url: str, secrets: list[str]) -> None:
    adapter = KombuQueueDepth(url)
    started = time.monotonic()
    with pytest.raises(AdapterError) as raised:
        adapter.observe(["celery"])
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert not [secret for secret in secrets if secret in message]
    assert "127.0.0.1:1" in message
    assert "***" in message
    # The next pass tries again (and fails again) instead of being stuck.
    with pytest.raises(AdapterError):
        adapter.observe(["celery"])
    adapter.close()


# --- latency (Redis) --------------------------------------------------------------------


def test_instrument_stamps_the_message_celery_writes_to_redis(
    redis_url: str, queue: str, make_instrumented_app: Callable[..., Celery]
) -> None:
    app = make_instrumented_app(redis_url)
    before = time.time()
    publish(app, queue)
    after = time.time()
    (raw,) = raw_lists(redis_url, (queue,))[queue]
    message = json.loads(raw)
    # Protocol 2 keeps task headers in the kombu message's headers.
    stamp = message["headers"][PUBLISHED_AT_HEADER]
    assert isinstance(stamp, float)
    assert before <= stamp <= after


def test_each_publish_gets_a_fresh_stamp(
    redis_url: str, queue: str, make_instrumented_app: Callable[..., Celery]
) -> None:
    # A retry republishes with the request's custom headers, the old stamp among them.
    app = make_instrumented_app(redis_url)
    before = time.time()
    publish(app, queue, headers={PUBLISHED_AT_HEADER: 1.0})
    (raw,) = raw_lists(redis_url, (queue,))[queue]
    assert stamp_of(raw) >= before


def test_latency_is_the_age_of_the_oldest_message_and_reading_it_consumes_nothing(
    redis_url: str,
    queue: str,
    make_instrumented_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    app = make_instrumented_app(redis_url)
    other = f"{queue}-other"
    try:
        for priority in (9, 0, 5, 9, 0):
            publish(app, queue, priority=priority)
        publish(app, other)
        keys = (*redis_priority_keys(queue, steps=KOMBU_STEPS, sep=KOMBU_SEP), other)
        lists = raw_lists(redis_url, keys)
        oldest = min(stamp_of(raw) for messages in lists.values() for raw in messages)
        adapter = make_adapter(redis_url, clock=lambda: oldest + 42)

        observation = adapter.observe([queue, other])

        assert observation.latency_seconds == pytest.approx(42.0)
        assert observation.queue_depth == 6
        # Fails if reading latency consumed (or moved) any message.
        assert raw_lists(redis_url, keys) == lists
        assert adapter.observe([queue, other]).queue_depth == 6
    finally:
        delete_queue(redis_url, other)


def test_latency_never_negative_and_a_stamp_far_ahead_is_unknown(
    redis_url: str,
    queue: str,
    make_instrumented_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    app = make_instrumented_app(redis_url)
    publish(app, queue)
    (raw,) = raw_lists(redis_url, (queue,))[queue]
    # The controller's clock runs a hair behind the publisher's: age 0, not negative.
    adapter = make_adapter(redis_url, clock=lambda: stamp_of(raw) - 0.5)
    assert adapter.observe([queue]).latency_seconds == 0.0
    # Far behind: the message's age cannot be told, and is not read as 0.
    behind = make_adapter(redis_url, clock=lambda: stamp_of(raw) - 300)
    observation = behind.observe([queue])
    assert observation.latency_seconds is None
    assert observation.per_queue_skew == {queue: pytest.approx(300.0)}


def test_unstamped_message_gives_unknown_latency(
    redis_url: str,
    queue: str,
    make_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
    not_instrumented: None,
) -> None:
    publish(make_app(redis_url), queue, count=2)
    observation = make_adapter(redis_url).observe([queue])
    assert observation.queue_depth == 2
    assert observation.latency_seconds is None


def test_empty_queue_latency_is_zero(
    redis_url: str, queue: str, make_adapter: Callable[..., KombuQueueDepth]
) -> None:
    observation = make_adapter(redis_url).observe([queue])
    assert (observation.queue_depth, observation.latency_seconds) == (0, 0.0)


def test_rabbitmq_has_no_latency(
    amqp_url: str,
    queue: str,
    make_instrumented_app: Callable[..., Celery],
    make_adapter: Callable[..., KombuQueueDepth],
) -> None:
    app = make_instrumented_app(amqp_url)
    publish(app, queue)
    assert make_adapter(amqp_url).observe([queue]).latency_seconds is None


# --- SQS --------------------------------------------------------------------------------


def test_sqs_depth_in_flight_and_delayed(aws: LocalAws, unique: str) -> None:
    sqs = aws.client("sqs")
    prefix = f"dev.{unique}."
    standard = sqs.create_queue(QueueName=sqs_queue_name("celery:high", prefix))["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName=sqs_queue_name("jobs.fifo", prefix),
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    assert standard.endswith(f"/dev-{unique}-celery_high")
    assert fifo.endswith(f"/dev-{unique}-jobs.fifo")
    for number in range(3):
        sqs.send_message(QueueUrl=standard, MessageBody=f"m{number}")
    for number in range(2):
        sqs.send_message(QueueUrl=fifo, MessageBody=f"f{number}", MessageGroupId="g")
    # One message received and not yet deleted: in flight, no longer visible.
    assert len(sqs.receive_message(QueueUrl=standard, MaxNumberOfMessages=1)["Messages"]) == 1
    # One sent with a delay (a countdown): neither visible nor in flight yet.
    sqs.send_message(QueueUrl=standard, MessageBody="later", DelaySeconds=900)

    adapter = SqsQueueDepth(sqs, queue_name_prefix=prefix)
    observation = adapter.observe(["celery:high", "jobs.fifo", "missing"])

    assert observation.per_queue == {"celery:high": 2, "jobs.fifo": 2, "missing": 0}
    assert observation.queue_depth == 4
    assert observation.unacked == 1
    assert observation.per_queue_unacked == {"celery:high": 1, "jobs.fifo": 0, "missing": 0}
    assert observation.delayed == 1
    assert observation.latency_seconds is None
    # SQS has no queue of that name: reported, never read as an empty queue.
    assert observation.missing == {"missing"}

    # A queue deleted after its URL was cached is missing, and one made later is found.
    sqs.delete_queue(QueueUrl=standard)
    assert adapter.observe(["celery:high"]).missing == {"celery:high"}
    late = sqs.create_queue(QueueName=sqs_queue_name("missing", prefix))["QueueUrl"]
    sqs.send_message(QueueUrl=late, MessageBody="late")
    found = adapter.observe(["missing"])
    assert (found.per_queue, found.missing) == ({"missing": 1}, frozenset())


def test_sqs_reads_the_queues_celery_publishes_to(aws: LocalAws, unique: str) -> None:
    prefix = f"dev.{unique}."
    app = Celery(broker="sqs://", set_as_current=False)
    app.conf.broker_transport_options = {"queue_name_prefix": prefix, "region": aws.region}
    try:
        publish(app, "celery:high", count=2)
    finally:
        app.close()
    observation = SqsQueueDepth(aws.client("sqs"), queue_name_prefix=prefix).observe(
        ["celery:high"]
    )
    assert observation.queue_depth == 2


def test_sqs_unreachable_endpoint(aws: LocalAws) -> None:
    client = boto3.client(
        "sqs",
        endpoint_url="http://127.0.0.1:1",
        region_name=aws.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(AdapterError, match=re.escape("cannot reach http://127.0.0.1:1")):
        SqsQueueDepth(client).observe(["celery"])


def test_sqs_without_credentials(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.Session().client("sqs", endpoint_url=aws.endpoint_url, region_name=aws.region)
    with pytest.raises(AdapterError, match="credentials"):
        SqsQueueDepth(client).observe(["celery"])
