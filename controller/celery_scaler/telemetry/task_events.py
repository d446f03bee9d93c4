"""Celery task events: counts of succeeded, failed and retried tasks per worker.

Celery's inspect `stats` holds only the number of tasks each worker received; how
they ended is told by the task events the workers send (`task-succeeded`,
`task-failed`, `task-retried`) when task events are on (`worker_send_task_events`,
`celery worker -E`, or `celery_scaler.instrument(app)`). This is how Flower and
celery-exporter count them too.

A background thread consumes the event exchange (only the `task.*` routing keys, so
the workers' heartbeats do not reach it) and counts per worker; each pass `drain()`s
the counts since the previous pass. Events are not stored by the broker for a
receiver that is not listening, so `drain()` also says whether it listened the whole
time: a window with a gap is incomplete, and its outcome counters are not published.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from celery import Celery

from celery_scaler.telemetry.samples import TaskEvents

log = logging.getLogger(__name__)

HEARTBEAT = 10.0
"""Seconds between AMQP heartbeats on the event connection."""

OUTCOME_OF_EVENT = {
    "task-succeeded": "succeeded_tasks",
    "task-failed": "failed_tasks",
    "task-retried": "retried_tasks",
}


class TaskEventCounter:
    """Counts task outcomes from Celery task events, on a thread of its own."""

    iam_actions: ClassVar[tuple[str, ...]] = ()
    """Talks to the broker only, never to AWS."""

    def __init__(self, app: Celery, *, poll: float = 0.5, max_backoff: float = 30.0) -> None:
        self._app = app
        self._poll = poll
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}
        self._senders: set[str] = set()
        self._listening = False
        self._subscriptions = 0
        # True while the window since the last drain had a moment with no subscription:
        # the first window (events before the first connection are lost) and any window
        # in which the connection dropped.
        self._gap = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listening in a daemon thread; returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="celery-scaler-events", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening and wait (bounded) for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def listening(self) -> bool:
        return self._listening

    @property
    def subscriptions(self) -> int:
        """How many times the receiver subscribed: more than once means it reconnected."""
        return self._subscriptions

    def drain(self) -> TaskEvents:
        """The counts since the previous drain, and whether they are complete."""
        with self._lock:
            counts, self._counts = self._counts, {}
            complete = not self._gap
            self._gap = not self._listening
            senders = frozenset(self._senders)
        return TaskEvents(
            complete=complete,
            counts={name: dict(outcomes) for name, outcomes in counts.items()},
            senders=senders,
        )

    # -- the thread

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # any failure of the connection: reconnect after a pause
                self._set_listening(False)
                failures += 1
                if failures == 1:  # once per outage, not once per attempt
                    log.warning("task events: lost the broker (%s); reconnecting", exc)
                self._stop.wait(min(0.5 * 2**failures, self._max_backoff))
            else:
                failures = 0

    def _consume(self) -> None:
        # Heartbeats (AMQP) so a connection that died silently raises instead of leaving
        # the receiver "listening" to nothing.
        with self._app.connection_for_read(heartbeat=HEARTBEAT, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=0)
            # Only task events; `#` matches several words on RabbitMQ and becomes `*`
            # in the pattern kombu subscribes to on Redis.
            receiver = self._app.events.Receiver(connection, routing_key="task.#")
            with connection.Consumer(
                [receiver.queue],
                callbacks=[self._on_message],
                no_ack=True,
                accept=receiver.accept,
            ):
                first = True
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        connection.drain_events(timeout=self._poll)
                    connection.heartbeat_check()
                    if first:
                        # Redis subscribes inside the first drain_events: listening
                        # from here on, not before.
                        self._set_listening(True)
                        first = False
        self._set_listening(False)

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._listening = listening
            if listening:
                self._subscriptions += 1
            else:
                self._gap = True

    def _on_message(self, body: Any, message: Any) -> None:
        # A worker may send a batch of events as one list.
        for event in body if isinstance(body, list) else [body]:
            if isinstance(event, dict):
                self._count(event)

    def _count(self, event: dict[str, Any]) -> None:
        kind, hostname = event.get("type"), event.get("hostname")
        if not isinstance(kind, str) or not isinstance(hostname, str):
            return
        with self._lock:
            self._senders.add(hostname)
            outcome = OUTCOME_OF_EVENT.get(kind)
            if outcome is not None:
                self._counts.setdefault(hostname, Counter())[outcome] += 1


def event_counter_for(
    broker_url: str, transport_options: Mapping[str, Any] | None = None
) -> TaskEventCounter:
    """A TaskEventCounter on a Celery app of its own (a composition-root helper).

    `transport_options` are the workers' `broker_transport_options`: on Redis a
    `global_keyprefix` renames the channel their events are published on.
    """
    app = Celery("celery-scaler-events", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = dict(transport_options or {})
    return TaskEventCounter(app)
