"""Celery inspect adapter: every worker's state in one concurrent round.

Celery's own `app.control.inspect()` sends one command, waits its full timeout (the
number of workers is unknown to it), then sends the next: five commands cost five
timeouts. Here one round publishes its commands at once, each with its own reply
ticket, reads the single reply queue until a deadline `timeout` after the round began,
and stops early once every worker it expects has answered every command: for each pool,
as many workers consuming one of its queues as ECS runs for it, and every worker that
answered the previous round. Every worker sharing the broker and control exchange
answers, also another pool's and workers of no pool, so a count of replies from anyone
would stop the round before a pool's own workers were all heard.

Each reply is a message of its own, so a round costs about one broadcast per command. A
round asks only what the pass reads: `stats`, `active` and `reserved` always,
`scheduled` and `revoked` only when a pool scales on them. Queue membership
(`active_queues`, the largest reply: every queue a worker consumes) is kept between
rounds: it is asked of every worker once a minute (`QUEUES_REFRESH`), and within a round
of a worker that answers without being known, directed to it alone.

Parsing replies and deciding when a round is complete are pure functions below; the
`CeleryInspector` class only does the broker I/O.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import redis
from celery import Celery
from kombu.entity import Queue
from kombu.exceptions import KombuError
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from celery_scaler.adapters.retries import RetryPolicy, connection_lost
from celery_scaler.core.config import mask_url
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import WorkerSnapshot
from celery_scaler.core.ports import ExpectedWorkers

COMMANDS: Final = ("stats", "active", "reserved", "scheduled", "revoked", "active_queues")
"""Every inspect command a round may send."""

STATE: Final = ("stats", "active", "reserved")
"""Asked every round: each worker's running and prefetched tasks, slots, memory, counters."""

ON_DEMAND: Final = {"scheduled_tasks": "scheduled", "revoked_tasks": "revoked"}
"""Asked only when a pool scales on the metric: metric name → the command that gives it."""

QUEUES: Final = "active_queues"
"""Queue membership: kept between rounds (see the module's docstring)."""

QUEUED_BATCH = 1000
"""Replies taken from the Redis reply list in one request at most."""

QUEUES_REFRESH = 60.0
"""Seconds the kept membership serves before a round asks every worker again: a worker
told to consume other queues (`add_consumer`, `cancel_consumer` from outside) shows
within this much; a worker new to the round is asked at once."""

REQUIRED: Final = ("active_queues", "active", "reserved")
"""A worker is reported only when these answered (its queues: answered, or kept from an
earlier round): without them its work is unknown."""

Replies = Mapping[str, Mapping[str, Any]]
"""Command name → worker name → that worker's reply to the command."""

AskQueues = Callable[[Replies], set[str]]
"""Given a round's replies so far, the workers whose queues it must ask for."""


# --- pure: parsing replies -------------------------------------------------------------


def parse_replies(
    replies: Replies,
    kept: Mapping[str, frozenset[str]] | None = None,
    asked: Iterable[str] = COMMANDS,
) -> tuple[WorkerSnapshot, ...]:
    """One snapshot per worker that answered every REQUIRED command, sorted by name.

    A reply that is not the expected shape (a worker's `{"error": ...}` when a command
    failed on it) counts as no answer for that command. A worker with no `active_queues`
    reply this round has its queues from `kept` (worker → queue names), if there. A
    count whose command was not `asked` is None (unknown), never 0.
    """
    kept = kept or {}
    answered = [
        {name for name, reply in replies.get(command, {}).items() if isinstance(reply, list)}
        for command in REQUIRED
    ]
    answered[0] |= set(kept) - set(replies.get(QUEUES, {}))
    asked = frozenset(asked)
    return tuple(
        _snapshot(name, replies, kept, asked) for name in sorted(set.intersection(*answered))
    )


def _snapshot(
    name: str, replies: Replies, kept: Mapping[str, frozenset[str]], asked: frozenset[str]
) -> WorkerSnapshot:
    def reply(command: str) -> Any:
        return replies.get(command, {}).get(name)

    def count(command: str) -> int | None:
        return _count(reply(command)) if command in asked else None

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
        queues=_queues_of(name, replies, kept) or frozenset(),
        active=_count(reply("active")),
        reserved=_count(reply("reserved")),
        scheduled=count("scheduled"),
        revoked=count("revoked"),
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


def _queues_of(
    name: str, replies: Replies, kept: Mapping[str, frozenset[str]]
) -> frozenset[str] | None:
    """The worker's queues: from its `active_queues` reply this round (none when that is an
    error), else as kept from an earlier round; None when neither is there."""
    by_worker = replies.get(QUEUES, {})
    if name in by_worker:
        return _queue_names(by_worker[name])
    return kept.get(name)


def _count(reply: Any) -> int:
    return len(reply) if isinstance(reply, list) else 0


# --- pure: one round's bookkeeping -----------------------------------------------------


def round_complete(
    replies: Replies,
    expected: ExpectedWorkers,
    known: Iterable[str],
    commands: Iterable[str] = COMMANDS,
    kept: Mapping[str, frozenset[str]] | None = None,
) -> bool:
    """Whether the round can stop waiting.

    It can once every worker in `known` (those that answered last round) has answered
    every one of the round's `commands` and its queues are known (its `active_queues`
    reply, or as `kept` from an earlier round), and, for each pool in `expected`, at
    least its count of workers consuming one of its queues have. A worker counts for
    every pool whose queues it consumes (as `core.metrics.workers_in_pool` assigns it),
    and for none when it consumes none of them. With nothing to expect it never is: the
    round waits its whole timeout.
    """
    known = frozenset(known)
    kept = kept or {}
    wanted = {queues: count for queues, count in expected.items() if count > 0}
    if not wanted and not known:
        return False
    answered = set.intersection(
        *(set(replies.get(command, {})) for command in commands if command != QUEUES)
    )
    consumed = {
        name: queues for name in answered if (queues := _queues_of(name, replies, kept)) is not None
    }
    if not known <= consumed.keys():
        return False
    return all(
        sum(1 for queues in consumed.values() if queues & pool) >= count
        for pool, count in wanted.items()
    )


@dataclass(frozen=True)
class Command:
    """One remote-control command a round sends."""

    method: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    destination: tuple[str, ...] | None = None
    """The workers it is for (node names); None: every worker."""


@dataclass
class RoundReplies:
    """Replies of one round, routed by the `ticket` header of each reply message."""

    tickets: dict[str, str]
    """Ticket → the label of its command (the command's name in an inspect round); a
    command sent later in the round adds its ticket."""
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Label → worker name → that worker's reply."""

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


def unconfirmed(replies: Replies, labels: Iterable[str], workers: Iterable[str]) -> list[str]:
    """The workers that did not confirm every command of a control round, each with why.

    A worker confirms with `{"ok": ...}`; `{"error": ...}` (an unknown command, a queue it
    cannot consume) and no reply at all are failures.
    """
    failed: list[str] = []
    for worker in workers:
        answers = [replies.get(label, {}).get(worker) for label in labels]
        if any(answer is None for answer in answers):
            failed.append(f"{worker} did not answer")
            continue
        errors = [
            str(answer.get("error")) if isinstance(answer, dict) else repr(answer)
            for answer in answers
            if not (isinstance(answer, dict) and "ok" in answer)
        ]
        if errors:
            failed.append(f"{worker}: {'; '.join(errors)}")
    return failed


# --- I/O: the broker --------------------------------------------------------------------


class CeleryInspector:
    """`WorkerInspector` and `ConsumerControl` over Celery's remote control (pidbox) on
    Redis or RabbitMQ.

    Holds one broker connection across rounds and the names of the workers that
    answered the last inspect round. A round whose connection is lost (one kept since the
    last round gone stale, a broker refusing while it restarts) starts again on a new one,
    within the retry policy and the round's own deadline. Rounds take turns (a lock):
    callers on several threads share one connection.
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
        metrics: Collection[str] | None = None,
    ) -> None:
        """`metrics`: the metrics the pools scale on, which decide the commands of a round
        (ON_DEMAND); None asks every command."""
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
        self._reply_client: Any = None
        """Redis: the client `_take_queued` reads the reply list with, on the channel's pool."""
        self._known: frozenset[str] = frozenset()
        self._turn = threading.Lock()
        self._commands: tuple[str, ...] = (
            *STATE,
            *(
                command
                for metric, command in ON_DEMAND.items()
                if metrics is None or metric in metrics
            ),
        )
        self._kept: dict[str, frozenset[str]] = {}
        """Worker → the queues it consumes, from an earlier round's `active_queues`."""
        self._kept_at: float | None = None
        """When a round last asked every worker's queues (the inspector's clock)."""
        self._take_many = True
        """Whether the Redis server takes RPOP with a count (see `_take_queued`)."""
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

    @property
    def commands(self) -> tuple[str, ...]:
        """The commands every round sends (`active_queues` besides, when it is due)."""
        return self._commands

    def inspect(self, expected: ExpectedWorkers) -> tuple[WorkerSnapshot, ...]:
        """Every worker that answered this round; raises AdapterError when the broker fails.

        See `round_complete` for when the round stops before its timeout, and the
        module's docstring for which commands a round sends.
        """
        now = self._clock()
        refresh = self._kept_at is None or now - self._kept_at >= QUEUES_REFRESH
        kept = {} if refresh else dict(self._kept)
        sent = (*self._commands, QUEUES) if refresh else self._commands
        commands = {command: Command(command) for command in sent}

        def complete(replies: Replies) -> bool:
            return round_complete(replies, expected, self._known, self._commands, kept)

        def unknown(replies: Replies) -> set[str]:
            """Workers that answered and whose queues are neither kept nor answered."""
            answering = {name for by_worker in replies.values() for name in by_worker}
            return answering - kept.keys() - set(replies.get(QUEUES, {}))

        try:
            round_replies = self._send(commands, complete, None if refresh else unknown)
        except self._errors as exc:
            raise AdapterError(
                f"cannot inspect Celery workers through {self.broker}: {self._scrub(exc)}"
            ) from None

        if not round_replies.workers and (any(n > 0 for n in expected.values()) or self._known):
            # Workers were expected and none answered: the connection may be half-open
            # (publishes vanish without an error), so start the next round on a new one.
            self._disconnect()
        replies = round_replies.replies
        self._known = round_replies.workers
        # Kept for those who answered, as listed (an error reply is not kept: asked again).
        answered = {
            name: _queue_names(reply)
            for name, reply in replies.get(QUEUES, {}).items()
            if isinstance(reply, list)
        }
        self._kept = {
            name: queues
            for name in round_replies.workers
            if (queues := answered.get(name, kept.get(name))) is not None
        }
        if refresh:
            self._kept_at = now
        return parse_replies(replies, kept, self._commands)

    def set_consuming(self, workers: Sequence[str], queues: Sequence[str], consuming: bool) -> None:
        """Tell exactly `workers` to stop consuming `queues` (Celery's `cancel_consumer`) or
        to consume them again (`add_consumer`); raises AdapterError naming each worker that
        did not confirm within the timeout.

        A worker that stops consuming finishes what it runs and what it has prefetched; it
        takes nothing new. `add_consumer` takes the queue as the worker's app declares it
        (its `task_queues`, or the `-Q` names), so its bindings and arguments are its own.
        """
        if not workers or not queues:
            return
        method = "add_consumer" if consuming else "cancel_consumer"
        destination = tuple(workers)
        commands = {
            f"{method} {queue}": Command(method, {"queue": queue}, destination) for queue in queues
        }

        def complete(replies: Replies) -> bool:
            return all(set(destination) <= set(replies.get(label, {})) for label in commands)

        verb = "resume" if consuming else "stop"
        what = f"{verb} consuming {', '.join(queues)}"
        # Their queues change (or may have, should the round fail): the next inspect
        # round asks them again rather than going by what it kept.
        for worker in workers:
            self._kept.pop(worker, None)
        try:
            round_replies = self._send(commands, complete)
        except self._errors as exc:
            raise AdapterError(
                f"cannot tell workers to {what} through {self.broker}: {self._scrub(exc)}"
            ) from None
        failed = unconfirmed(round_replies.replies, commands, destination)
        if failed:
            raise AdapterError(
                f"workers not confirmed to {what} within {self._timeout:g}s: {'; '.join(failed)}"
            )

    def close(self) -> None:
        """Release the broker connection; a later `inspect` reconnects."""
        self._disconnect()

    def __enter__(self) -> CeleryInspector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one round

    def _send(
        self,
        commands: Mapping[str, Command],
        complete: Callable[[Replies], bool],
        ask_queues: AskQueues | None = None,
    ) -> RoundReplies:
        """One round of `commands` (label → command), until `complete` or the timeout."""
        with self._turn:
            deadline = self._clock() + self._timeout
            # A retry starts a new round (new tickets) and ends by the same deadline.
            retry = self._retry.within(self._timeout)
            return retry.call(
                lambda: self._round_on_a_live_connection(commands, complete, deadline, ask_queues),
                transient=connection_lost,
            )

    def _round_on_a_live_connection(
        self,
        commands: Mapping[str, Command],
        complete: Callable[[Replies], bool],
        deadline: float,
        ask_queues: AskQueues | None = None,
    ) -> RoundReplies:
        try:
            return self._round(commands, complete, deadline, ask_queues)
        except self._errors:
            # A failed connection is seen only on use: the next try makes a new one.
            self._disconnect()
            raise

    def _round(
        self,
        commands: Mapping[str, Command],
        complete: Callable[[Replies], bool],
        deadline: float,
        ask_queues: AskQueues | None = None,
    ) -> RoundReplies:
        """`ask_queues`: the workers whose `active_queues` the round asks as it learns of
        them (a command to those workers alone, its replies under that command's label)."""
        connection, channel = self._connect(deadline)
        round_replies = RoundReplies.new(list(commands))
        # Declared every round, by the consumer below as it is made (kombu's
        # auto_declare): RabbitMQ deletes an auto-delete queue with its last consumer,
        # and on Redis the queue is deleted after each round (below).
        reply_queue = self._reply_queue(channel)

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
        asked: set[str] = set()
        try:
            tickets = {ticket: commands[label] for ticket, label in round_replies.tickets.items()}
            self._publish_all(connection, channel, tickets)
            while not complete(round_replies.replies):
                new = ask_queues(round_replies.replies) - asked if ask_queues else set()
                if new:
                    asked |= new
                    ticket = uuid.uuid4().hex
                    round_replies.tickets[ticket] = QUEUES
                    command = Command(QUEUES, destination=tuple(sorted(new)))
                    self._publish_all(connection, channel, {ticket: command})
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    connection.drain_events(timeout=remaining)
                except TimeoutError:  # socket.timeout: nothing more before the deadline
                    break
                self._take_queued(channel, reply_queue.name)
        finally:
            with contextlib.suppress(*self._errors):
                consumer.cancel()
                # Redis keeps a reply list forever unless someone deletes it (this is
                # what kombu's own collect does); a no-op on RabbitMQ.
                channel.after_reply_message_received(reply_queue.name)
        return round_replies

    def _take_queued(self, channel: Any, queue: str) -> None:
        """Redis: deliver the replies already waiting in the reply list, all in one request.

        Workers answer in bursts (one message per worker per command), and kombu takes one
        message per BRPOP round trip; here the rest come with one RPOP of a count (Redis
        6.2 and later), through kombu's own delivery, so decoding and the callback are as
        for a message it took. Nothing on RabbitMQ, or on a Redis that refuses the count.
        """
        if self._driver != "redis" or not self._take_many:
            return
        if self._reply_client is None:
            # The client kombu's own `_get` would use, on the channel's pool (the BRPOP
            # connection is idle between drain_events calls); kept, because kombu builds
            # a new one for every operation (~0.2 ms: its table of reply parsers), and
            # this runs after every wake-up of a round.
            self._reply_client = channel._create_client()
        try:
            # One list per priority step, as kombu lays them out.
            pipe = self._reply_client.pipeline(transaction=False)
            for priority in channel.priority_steps:
                pipe.rpop(channel._q_for_pri(queue, priority), QUEUED_BATCH)
            batches = pipe.execute()
        except redis.exceptions.ResponseError:
            self._take_many = False  # an older Redis: one BRPOP per reply, as kombu does
            return
        for raw in (item for batch in batches for item in batch or ()):
            payload = loads(bytes_to_str(raw))  # type: ignore[no-untyped-call]  # kombu: no hints
            channel.connection._deliver(payload, queue)

    def _publish_all(self, connection: Any, channel: Any, tickets: Mapping[str, Command]) -> None:
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
                        "method": command.method,
                        "arguments": dict(command.arguments),
                        "destination": list(command.destination) if command.destination else None,
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
        self._reply_client = None
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
    metrics: Collection[str] | None = None,
) -> CeleryInspector:
    """A CeleryInspector on a Celery app of its own (a composition-root helper).

    `control_exchange` is the workers' Celery setting of that name: it names the
    broadcast (pidbox) exchanges, so only workers using the same one answer.
    `transport_options` are the workers' `broker_transport_options`: on Redis a
    `global_keyprefix` renames the channels and lists the broadcasts and replies use.
    `metrics`: the metrics the pools scale on (see CeleryInspector); None asks everything.
    """
    app = Celery("celery-scaler", broker=broker_url, set_as_current=False)
    app.conf.control_exchange = control_exchange
    app.conf.broker_transport_options = dict(transport_options or {})
    return CeleryInspector(app, timeout, retry=retry, metrics=metrics)
