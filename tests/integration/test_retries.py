"""Retries where no SDK retries: the broker's reads and reconnects, the RabbitMQ management
API and the inspect round's connection, against the real brokers.

Connections go through a loopback proxy (tests/helpers.py `TcpProxy`) that closes the
next few connections as soon as it accepts them, as a broker going down or starting up
does, and counts them: one closed connection is one attempt the adapter made. The
adapters run with their default retry policy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Queue

from celery_scaler.adapters.broker import KombuQueueDepth
from celery_scaler.adapters.celery_inspect import inspector_for
from celery_scaler.core.errors import AdapterError
from celery_scaler.local.demo import RedisServer
from tests.helpers import TcpProxy
from tests.workers import start_workers

pytestmark = pytest.mark.integration

MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
ATTEMPTS = 3
"""The adapters' default retry policy: 3 attempts, within 2 s (retries.RetryPolicy)."""


def proxy_for(url: str) -> TcpProxy:
    parts = urlsplit(url)
    return TcpProxy((parts.hostname or "127.0.0.1", parts.port or 0))


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def proxy(broker_url: str) -> Iterator[TcpProxy]:
    forwarder = proxy_for(broker_url)
    yield forwarder
    forwarder.stop()


@pytest.fixture
def rabbit_queue(amqp_url: str, unique: str) -> Iterator[str]:
    """A queue RabbitMQ has (the management API answers 404 for one it has not)."""
    name = f"retries-{unique}"
    with Connection(amqp_url) as connection:  # type: ignore[no-untyped-call]  # kombu has no hints
        Queue(name, channel=connection.channel()).declare()  # type: ignore[no-untyped-call]
    yield name
    with Connection(amqp_url) as connection:  # type: ignore[no-untyped-call]
        connection.channel().queue_delete(name)


# --- the queue reader -------------------------------------------------------------------


def test_a_broker_refusing_a_few_connections_is_read_in_the_same_pass(
    broker_url: str, proxy: TcpProxy, queue: str
) -> None:
    proxy.refuse(2)
    with KombuQueueDepth(proxy.url(broker_url)) as adapter:
        assert adapter.observe([queue]).queue_depth == 0
    assert proxy.refused == 2


def test_a_broker_that_stays_down_costs_the_policys_attempts_and_then_the_pass(
    broker_url: str, proxy: TcpProxy, queue: str
) -> None:
    proxy.refuse(100)
    with (
        KombuQueueDepth(proxy.url(broker_url)) as adapter,
        pytest.raises(AdapterError, match="cannot read queues"),
    ):
        adapter.observe([queue])
    assert proxy.refused == ATTEMPTS


def test_an_error_the_broker_answers_is_not_tried_again() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        # kombu's unacked hash as a string: HSCAN on it gets WRONGTYPE.
        client.set("unacked", "not a hash")
        client.config_resetstat()
        with (
            KombuQueueDepth(server.url) as adapter,
            pytest.raises(AdapterError, match="WRONGTYPE"),
        ):
            adapter.observe(["celery"])
        calls = client.info("commandstats").get("cmdstat_hscan", {}).get("calls")
        client.close()
    assert calls == 1


# --- RabbitMQ's management API ------------------------------------------------------------


def management_through(forwarder: TcpProxy, password: str = "") -> str:
    parts = urlsplit(MANAGEMENT_URL)
    user = parts.username or "guest"
    secret = password or parts.password or "guest"
    netloc = f"{user}:{secret}@127.0.0.1:{forwarder.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def management() -> Iterator[TcpProxy]:
    parts = urlsplit(MANAGEMENT_URL)
    forwarder = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 15672))
    yield forwarder
    forwarder.stop()


def test_the_management_api_refusing_a_connection_is_asked_again(
    amqp_url: str, rabbit_queue: str, management: TcpProxy
) -> None:
    management.refuse(1)
    with KombuQueueDepth(amqp_url, management_url=management_through(management)) as adapter:
        observation = adapter.observe([rabbit_queue])
    assert management.refused == 1
    assert observation.unacked is not None
    assert observation.errors == {}


def test_the_management_api_is_asked_once_for_every_queue(
    amqp_url: str, rabbit_queue: str, management: TcpProxy
) -> None:
    # urllib opens a connection per request: the proxy counts the GETs.
    others = [f"{rabbit_queue}-{index}" for index in range(3)]
    with Connection(amqp_url) as connection:  # type: ignore[no-untyped-call]  # kombu has no hints
        for name in others:
            Queue(name, channel=connection.channel()).declare()  # type: ignore[no-untyped-call]
    try:
        with KombuQueueDepth(amqp_url, management_url=management_through(management)) as adapter:
            observation = adapter.observe([rabbit_queue, *others, f"{rabbit_queue}-missing"])
        assert management.accepted == 1
        # Every queue RabbitMQ has is read, one it has not is reported, as before.
        assert observation.missing == {f"{rabbit_queue}-missing"}
        assert set(observation.errors) == set()
        assert set(observation.per_queue) == {rabbit_queue, *others, f"{rabbit_queue}-missing"}
    finally:
        with Connection(amqp_url) as connection:  # type: ignore[no-untyped-call]
            for name in others:
                connection.channel().queue_delete(name)


def test_the_management_api_refusing_the_credentials_is_asked_once(
    amqp_url: str, rabbit_queue: str, management: TcpProxy
) -> None:
    url = management_through(management, password="wrong")
    with (
        KombuQueueDepth(amqp_url, management_url=url) as adapter,
        pytest.raises(AdapterError, match="refused the credentials"),
    ):
        adapter.observe([rabbit_queue])
    assert management.accepted == 1


# --- the inspect round ----------------------------------------------------------------


def test_inspect_retries_a_connection_the_broker_refused(redis_url: str, unique: str) -> None:
    control, queues = f"retries-{unique}", [f"orders-{unique}"]
    forwarder = proxy_for(redis_url)
    try:
        with (
            start_workers(redis_url, 1, queues, control_exchange=control) as fleet,
            inspector_for(forwarder.url(redis_url), 3.0, control_exchange=control) as inspector,
        ):
            forwarder.refuse(1)
            seen = inspector.inspect({frozenset(queues): 1})
        assert {worker.name for worker in seen} == fleet.names
        assert forwarder.refused == 1
    finally:
        forwarder.stop()
