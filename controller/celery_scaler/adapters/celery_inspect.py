"""Celery inspect adapter: every worker's state in one concurrent round.

Celery's own `app.control.inspect()` sends one command, waits its full timeout (the
number of workers is unknown to it), then sends the next: five commands cost five
timeouts. Here one round publishes all six commands at once, each with its own reply
ticket, reads the single reply queue until a deadline `timeout` after the round began,
and stops early once every worker it expects has answered every command: for each pool,
as many workers consuming one of its queues as ECS runs for it, and every worker that
answered the previous round. Every worker sharing the broker and control exchange
answers, also another pool's and workers of no pool, so a count of replies from anyone
would stop the round before a pool's own workers were all heard.

Parsing replies and deciding when a round is complete are pure functions below; the
`CeleryInspector` class only does the broker I/O.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from celery import Celery
from kombu.entity import Queue
from kombu.exceptions import KombuError

from celery_scaler.adapters.retries import RetryPolicy, connection_lost
from celery_scaler.core.config import mask_url
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import WorkerSnapshot
from celery_scaler.core.ports import ExpectedWorkers

COMMANDS: Final = ("stats", "active", "reserved", "scheduled", "revoked", "active_queues")
"""The inspect commands one round sends."""

REQUIRED: Final = ("active_queues", "active", "reserved")
"""A worker is reported only when these answered: without them its work is unknown."""

Replies = Mapping[str, Mapping[str, Any]]
"""Command name → worker name → that worker's reply to the command."""


# --- pure: parsing replies -------------------------------------------------------------


def parse_replies(replies: Replies) -> tuple[WorkerSnapshot, ...]:
    """One snapshot per worker that answered every REQUIRED command, sorted by name.

    A reply that is not the expected shape (a worker's `{"error": ...}` when a command
    failed on it) counts as no answer for that command.
    """
    answered = [
        {name for name, reply in replies.get(command, {}).items() if isinstance(reply, list)}
        for command in REQUIRED
    ]
    return tuple(_snapshot(name, replies) for name in sorted(set.intersection(*answered)))


def _snapshot(name: str, replies: Replies) -> WorkerSnapshot:
    def reply(command: str) -> Any:
        return replies.get(command, {}).get(name)

    stats = reply("stats")
    stats = stats if isinstance(stats, dict) else {}
    pool = stats.get("pool")
    rusage = stats.get("rusage")
    totals = stats.get("total")
    concurrency = pool.get("max-concurrency") if isinstance(pool, dict) else None
    max_rss = rusage.get("maxrss") if isinstance(rusage, dict) else None
    uptime = stats.get("uptime")
    # The consumer's QoS value ("N/A" before it started consuming).
    prefetch = stats.get("prefetch_count")
    return WorkerSnapshot(
        name=name,
        queues=_queue_names(reply("active_queues")),
        active=_count(reply("active")),
        reserved=_count(reply("reserved")),
        scheduled=_count(reply("scheduled")),
        revoked=_count(reply("revoked")),
        # The solo pool of older Celery versions reports no max-concurrency.
        concurrency=concurrency if isinstance(concurrency, int) else 0,
        max_rss_kb=max_rss if isinstance(max_rss, int) else None,
        processed_total=(
            sum(n for n in totals.values() if isinstance(n, int)) if isinstance(totals, dict) else 0
        ),
        uptime_seconds=uptime if isinstance(uptime, int | float) else None,
        prefetch_count=prefetch if isinstance(prefetch, int) else None,
    )


def _queue_names(reply: Any) -> frozenset[str]:
    """The queue names of an `active_queues` reply; none when it is not a list."""
    if not isinstance(reply, list):
        return frozenset()
    return frozenset(
        queue["name"]
        for queue in reply
        if isinstance(queue, dict) and isinstance(queue.get("name"), str)
    )


def _count(reply: Any) -> int:
    return len(reply) if isinstance(reply, list) else 0


# --- pure: one round's bookkeeping -----------------------------------------------------


def round_complete(replies: Replies, expected: ExpectedWorkers, known: Iterable[str]) -> bool:
    """Whether the round can stop waiting.

    It can once every worker in `known` (those that answered last round) has answered
    every command, and, for each pool in `expected`, at least its count of workers
    consuming one of its queues (as their `active_queues` reply says) have. A worker
    counts for every pool whose queues it consumes (as `core.metrics.workers_in_pool`
    assigns it), and for none when it consumes none of them. With nothing to expect
    it never is: the round waits its whole timeout.
    """
    known = frozenset(known)
    wanted = {queues: count for queues, count in expected.items() if count > 0}
    if not wanted and not known:
        return False
    complete = set.intersection(*(set(replies.get(command, {})) for command in COMMANDS))
    if not known <= complete:
        return False
    consumed = [_queue_names(replies["active_queues"][name]) for name in complete]
    return all(
        sum(1 for queues in consumed if queues & pool) >= count for pool, count in wanted.items()
    )


@dataclass
class RoundReplies:
    """Replies of one round, routed by the `ticket` header of each reply message."""

    tickets: Mapping[str, str]
    """Ticket → command."""
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def new(cls, commands: Sequence[str] = COMMANDS) -> RoundReplies:
        return cls(tickets={uuid.uuid4().hex: command for command in commands})

    def add(self, body: Any, headers: Mapping[str, Any], now: float) -> bool:
        """Record one reply message; False when it is ignored.

        Ignored: another round's ticket (a worker that was slow or stopped answers
        late, into the same reply queue), a reply whose `expires` header (wall-clock
        seconds) has passed, and a body that is not `{worker name: reply}`.
        """
        command = self.tickets.get(headers.get("ticket", ""))
        expires = headers.get("expires")
        if command is None or (expires and now > expires) or not isinstance(body, dict):
            return False
        by_worker = self.replies.setdefault(command, {})
        for name, reply in body.items():
            by_worker[str(name)] = reply
        return True

    @property
    def workers(self) -> frozenset[str]:
        """Every worker that answered at least one command."""
        return frozenset(name for by_worker in self.replies.values() for name in by_worker)


# --- I/O: the broker --------------------------------------------------------------------


class CeleryInspector:
    """`WorkerInspector` over Celery's remote control (pidbox) on Redis or RabbitMQ.

    Holds one broker connection across rounds and the names of the workers that
    answered the last round. A round whose connection is lost (one kept since the last
    round gone stale, a broker refusing while it restarts) starts again on a new one,
    within the retry policy and the round's own deadline. Not thread-safe: one caller.
    """

    iam_actions: ClassVar[tuple[str, ...]] = ()
    """Talks to the broker only, never to AWS."""

    def __init__(
        self,
        app: Celery,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the inspect timeout must be longer than 0s")
        self._app = app
        self._url = str(app.conf.broker_write_url or app.conf.broker_url or "")
        self._timeout = timeout
        self._clock = clock
        self._wall_clock = wall_clock
        self._retry = retry or RetryPolicy()
        # Exchange names, serializer and reply-queue settings follow the app's
        # configuration (control_exchange, control_queue_*), so they match its workers.
        self._mailbox: Any = app.control.mailbox
        # One reply queue per inspector, reused by every round: a late reply to an old
        # round lands here too and is dropped by its ticket.
        self._reply_key = uuid.uuid4().hex
        self._connection: Any = None
        self._channel: Any = None
        self._known: frozenset[str] = frozenset()
        # An unconnected kombu Connection (no I/O) tells the transport's error classes,
        # its kind and the password to keep out of messages.
        probe = app.connection_for_write()
        self._driver: str = probe.transport.driver_type
        self._password: str | None = probe.password
        self._errors: tuple[type[BaseException], ...] = (
            OSError,
            KombuError,
            *probe.connection_errors,
            *probe.channel_errors,
        )

    @property
    def known_workers(self) -> frozenset[str]:
        """The workers that answered the last successful round; the next round waits for them."""
        return self._known

    @property
    def broker(self) -> str:
        """The broker URL with any password masked."""
        return mask_url(self._url)

    def inspect(self, expected: ExpectedWorkers) -> tuple[WorkerSnapshot, ...]:
        """Every worker that answered this round; raises AdapterError when the broker fails.

        See `round_complete` for when the round stops before its timeout.
        """
        deadline = self._clock() + self._timeout
        # A retry starts a new round (new tickets) and ends by the same deadline.
        retry = self._retry.within(self._timeout)
        try:
            round_replies = retry.call(
                lambda: self._round_on_a_live_connection(expected, deadline),
                transient=connection_lost,
            )
        except self._errors as exc:
            raise AdapterError(
                f"cannot inspect Celery workers through {self.broker}: {self._scrub(exc)}"
            ) from None

        if not round_replies.workers and (any(n > 0 for n in expected.values()) or self._known):
            # Workers were expected and none answered: the connection may be half-open
            # (publishes vanish without an error), so start the next round on a new one.
            self._disconnect()
        self._known = round_replies.workers
        return parse_replies(round_replies.replies)

    def close(self) -> None:
        """Release the broker connection; a later `inspect` reconnects."""
        self._disconnect()

    def __enter__(self) -> CeleryInspector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one round

    def _round_on_a_live_connection(
        self, expected: ExpectedWorkers, deadline: float
    ) -> RoundReplies:
        try:
            return self._round(expected, deadline)
        except self._errors:
            # A failed connection is seen only on use: the next try makes a new one.
            self._disconnect()
            raise

    def _round(self, expected: ExpectedWorkers, deadline: float) -> RoundReplies:
        connection, channel = self._connect(deadline)
        round_replies = RoundReplies.new()
        reply_queue = self._reply_queue(channel)
        # Declared every round: RabbitMQ deletes an auto-delete queue with its last
        # consumer, and on Redis the queue is deleted after each round (below).
        reply_queue.declare()

        def on_reply(body: Any, message: Any) -> None:
            headers = message.headers or {}
            self._mailbox.clock.adjust(headers.get("clock") or 0)
            round_replies.add(body, headers, self._wall_clock())

        consumer = connection.Consumer(
            [reply_queue],
            channel=channel,
            no_ack=True,
            accept=self._mailbox.accept,
            callbacks=[on_reply],
            # A reply that cannot be decoded (say, a worker on another serializer) is
            # one worker's problem: drop it rather than fail the whole round.
            on_decode_error=lambda message, exc: None,
        )
        consumer.consume()
        try:
            self._publish_all(connection, channel, round_replies.tickets)
            while not round_complete(round_replies.replies, expected, self._known):
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    connection.drain_events(timeout=remaining)
                except TimeoutError:  # socket.timeout: nothing more before the deadline
                    break
        finally:
            with contextlib.suppress(*self._errors):
                consumer.cancel()
                # Redis keeps a reply list forever unless someone deletes it (this is
                # what kombu's own collect does); a no-op on RabbitMQ.
                channel.after_reply_message_received(reply_queue.name)
        return round_replies

    def _publish_all(self, connection: Any, channel: Any, tickets: Mapping[str, str]) -> None:
        """Broadcast every command on this channel, each with its own reply ticket.

        The message is built here rather than through kombu's private
        `Mailbox._publish`: that method declares the reply queue again for each
        command, publishes through the app's producer pool (another connection) unless
        handed a producer, and derives the reply routing key from the current thread and
        object id, which would not match a reply queue declared on another thread. The
        message shape is the pidbox wire protocol every worker parses
        (`kombu.pidbox.Node.handle_message`), which has to stay stable for fleets running
        mixed Celery versions.
        """
        mailbox = self._mailbox
        producer = connection.Producer(channel, auto_declare=False)
        producer.maybe_declare(mailbox.exchange)
        expires = self._wall_clock() + self._timeout
        # Kombu >= 5.7 sends all six in one round trip on Redis (a pipeline), before the
        # first one wakes every worker at once and they compete with us for the CPU;
        # older kombu, and RabbitMQ, publish one by one.
        batch = getattr(producer, "batch", None)
        with batch() if batch is not None else contextlib.nullcontext():
            for ticket, command in tickets.items():
                producer.publish(
                    {
                        "method": command,
                        "arguments": {},
                        "destination": None,
                        "pattern": None,
                        "matcher": None,
                        "ticket": ticket,
                        "reply_to": {
                            "exchange": mailbox.reply_exchange.name,
                            "routing_key": self._reply_key,
                        },
                    },
                    exchange=mailbox.exchange.name,
                    headers={"clock": mailbox.clock.forward(), "expires": expires},
                    serializer=mailbox.serializer,
                )

    def _reply_queue(self, channel: Any) -> Any:
        # Kombu's Mailbox.get_reply_queue, with our own routing key (see _publish_all).
        mailbox = self._mailbox
        return Queue(
            f"{self._reply_key}.{mailbox.reply_exchange.name}",
            exchange=mailbox.reply_exchange,
            routing_key=self._reply_key,
            durable=mailbox.queue_durable,
            exclusive=mailbox.queue_exclusive,
            auto_delete=not mailbox.queue_durable,
            expires=mailbox.reply_queue_expires,
            message_ttl=mailbox.reply_queue_ttl,
        )(channel)  # type: ignore[no-untyped-call]  # kombu ships py.typed, unannotated

    # -- the connection

    def _connect(self, deadline: float) -> tuple[Any, Any]:
        if self._connection is not None:
            return self._connection, self._channel
        # Every blocking step is bounded so an unreachable or hung broker fails the
        # round in about one timeout instead of hanging the controller.
        bound = max(deadline - self._clock(), 0.1)
        connection = self._app.connection_for_write(
            connect_timeout=bound,
            heartbeat=0,
            transport_options=self._transport_options(bound),
        )
        try:
            # max_retries=0: kombu's connect() retries once after sleeping 2 s.
            connection.ensure_connection(max_retries=0)
            channel = connection.channel()
        except BaseException:
            with contextlib.suppress(Exception):
                connection.release()
            raise
        self._connection, self._channel = connection, channel
        return connection, channel

    def _transport_options(self, bound: float) -> dict[str, Any]:
        if self._driver == "redis":
            # socket_timeout bounds a command on a broker that stopped answering; the
            # BRPOP wait is done with poll(), so it does not cut a long reply wait short.
            return {"socket_connect_timeout": bound, "socket_timeout": self._timeout + 1.0}
        if self._driver == "amqp":
            return {"read_timeout": self._timeout + 1.0, "write_timeout": self._timeout + 1.0}
        return {}

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()

    def _scrub(self, exc: BaseException) -> str:
        """The error's text without the broker password, should a library include it."""
        text = str(exc) or type(exc).__name__
        return text.replace(self._password, "***") if self._password else text


def inspector_for(
    broker_url: str,
    timeout: float,
    *,
    control_exchange: str = "celery",
    transport_options: Mapping[str, Any] | None = None,
    retry: RetryPolicy | None = None,
) -> CeleryInspector:
    """A CeleryInspector on a Celery app of its own (a composition-root helper).

    `control_exchange` is the workers' Celery setting of that name: it names the
    broadcast (pidbox) exchanges, so only workers using the same one answer.
    `transport_options` are the workers' `broker_transport_options`: on Redis a
    `global_keyprefix` renames the channels and lists the broadcasts and replies use.
    """
    app = Celery("celery-scaler", broker=broker_url, set_as_current=False)
    app.conf.control_exchange = control_exchange
    app.conf.broker_transport_options = dict(transport_options or {})
    return CeleryInspector(app, timeout, retry=retry)
