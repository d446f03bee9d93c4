"""The task-event receiver against a real broker: gaps in listening make a window incomplete."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from celery_scaler.telemetry.task_events import event_counter_for
from tests.helpers import TcpProxy
from tests.workers import wait_for

pytestmark = pytest.mark.integration


def test_a_broker_connection_cut_makes_that_window_incomplete(redis_url: str) -> None:
    # Events are not kept for a receiver that is not subscribed: the window in which the
    # connection dropped may have lost some, so its outcome counts must not be published.
    broker = urlsplit(redis_url)
    proxy = TcpProxy((broker.hostname or "127.0.0.1", broker.port or 6379))
    counter = event_counter_for(proxy.url(redis_url))
    counter.start()
    try:
        wait_for(lambda: counter.listening, 10, "the receiver to subscribe")
        assert not counter.drain().complete  # the first window began before it subscribed
        assert counter.drain().complete

        proxy.cut()
        wait_for(
            lambda: counter.subscriptions == 2 and counter.listening,
            20,
            "the receiver to subscribe again",
        )
        assert not counter.drain().complete
        assert counter.drain().complete
    finally:
        counter.close()
        proxy.stop()
