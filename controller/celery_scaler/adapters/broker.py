"""Queue readings from the broker: the `QueueDepthSource` adapters.

`KombuQueueDepth` reads Redis and RabbitMQ through kombu, with the application's
transport options, so it finds the keys and queues where the application's Celery put
them. On Redis one pipeline per pass reads every priority list of each queue (its length
and its oldest messages, for latency) and kombu's hash of unacknowledged messages; on
RabbitMQ a passive `queue_declare` per queue tells the ready messages and the management
API, when configured, the unacknowledged ones. `SqsQueueDepth` reads SQS queue
attributes through boto3.

A queue that cannot be read (a Redis key of another type, a RabbitMQ queue the user may
not access) is reported in the observation's `errors`, and the other queues are still
read; only a broker that cannot be reached at all fails the whole read (AdapterError).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

import redis
from botocore.exceptions import BotoCoreError, ClientError
from kombu.connection import Connection
from kombu.exceptions import OperationalError

from celery_scaler.adapters.aws import describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.adapters.rabbitmq import RabbitMqManagement
from celery_scaler.adapters.retries import RetryPolicy, connection_lost
from celery_scaler.core.config import mask_url
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import BrokerObservation, oldest_of
from celery_scaler.core.names import PUBLISHED_AT_HEADER, sqs_queue_name

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DEFAULT_CONNECT_TIMEOUT = 2.0
"""Seconds to wait for the broker to accept a connection before the pass fails."""
READ_TIMEOUT = 5.0
"""Seconds a broker may take to answer one request before the connection counts as broken."""
LATENCY_SCAN = 16
"""Oldest messages read from each Redis list for latency. Enough to step past a few
messages without a publish stamp at the head (a producer without `instrument(app)`);
few enough that a pass reads at most 16 messages (a few kilobytes each) per list."""
CLOCK_TOLERANCE = 1.0
"""Seconds a publish stamp may lie in the future and still read as age 0: clocks kept by
NTP agree far better, and a message published a moment ago may carry a stamp a hair
ahead of ours. A stamp further ahead makes the queue's latency unknown (ClockSkew)."""
UNACKED_SCAN_BATCH = 500
"""Entries of kombu's unacked hash asked for per HSCAN, so no single reply is large."""


class KombuQueueDepth:
    """Redis or RabbitMQ queues through kombu: depth; unacked and latency as each can tell."""

    iam_actions: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        broker_url: str,
        *,
        transport_options: Mapping[str, Any] | None = None,
        management_url: str | None = None,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._url = broker_url
        self._where = mask_url(broker_url)
        password = urlsplit(broker_url).password
        # As written in the URL and as kombu decodes it: a message could carry either.
        self._secrets = {password, unquote(password)} - {""} if password else set()
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._retry = retry or RetryPolicy()
        # Constructing a kombu Connection does no I/O; its transport class tells the
        # broker kind and the exceptions that mean "broker down".
        probe = _kombu_connection(broker_url)
        driver = probe.transport.driver_type
        self._is_redis = driver == "redis"
        self._errors: tuple[type[BaseException], ...] = (
            OperationalError,
            redis.exceptions.RedisError,
            *probe.connection_errors,
            *probe.channel_errors,
        )
        # The application's options lay out the keys (priority steps, separator, key
        # prefix, unacked hash); the bounds on connecting and reading are the
        # controller's own, since a pass must end.
        self._transport_options = {
            **(transport_options or {}),
            **_timeouts(driver, connect_timeout),
        }
        self._management = (
            RabbitMqManagement(
                management_url, probe.virtual_host or "/", timeout=READ_TIMEOUT, retry=self._retry
            )
            if management_url and not self._is_redis
            else None
        )
        self._connection: Any = None  # kombu.Connection, made on first use
        self._channel: Any = None
        self._redis: redis.Redis | None = None

    def observe(self, queues: Sequence[str]) -> BrokerObservation:
        """What the broker holds for each queue; see the module's docstring.

        A lost connection (one kept from an earlier pass gone stale with a broker restart
        or an idle timeout on the way, a broker refusing while it starts) is made anew
        and the read tried again, within the retry policy's attempts and budget.
        """
        names = list(dict.fromkeys(queues))
        try:
            return self._retry.call(lambda: self._read(names), transient=connection_lost)
        except self._errors as exc:
            raise AdapterError(
                f"cannot read queues {', '.join(names)} from the broker at {self._where}: "
                f"{self._scrub(exc)}"
            ) from None

    def close(self) -> None:
        """Close the broker connection; a later `observe` opens a new one."""
        if self._connection is not None:
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = self._channel = self._redis = None

    def __enter__(self) -> KombuQueueDepth:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(self, names: list[str]) -> BrokerObservation:
        try:
            return self._read_redis(names) if self._is_redis else self._read_amqp(names)
        except self._errors:
            # Whatever failed, the connection may be unusable: the next try makes a new one.
            self._drop_connection()
            raise

    # -- RabbitMQ

    def _read_amqp(self, queues: list[str]) -> BrokerObservation:
        per_queue: dict[str, int] = {}
        missing: set[str] = set()
        errors: dict[str, str] = {}
        for queue in queues:
            channel = self._open_channel()
            try:
                # Passive: only asks, never creates the queue or checks its arguments (a
                # queue declared by Celery with x-max-priority would otherwise fail with
                # PRECONDITION_FAILED, and a missing one would be created).
                _, message_count, _ = channel.queue_declare(queue=queue, passive=True)
            except self._connection.channel_errors as exc:
                # RabbitMQ closes the channel on a channel error and keeps the
                # connection: the next queue is read on a new channel.
                self._channel = None
                if _is_not_found(exc):
                    missing.add(queue)
                    per_queue[queue] = 0
                else:
                    errors[queue] = self._scrub(exc)
                continue
            per_queue[queue] = int(message_count)
        unacked: dict[str, int] = {}
        if self._management is not None:
            found = [queue for queue in queues if queue not in missing and queue not in errors]
            unacked, unreadable = self._management.unacked(found)
            errors.update(unreadable)
        return BrokerObservation(
            queue_depth=sum(count for queue, count in per_queue.items() if queue not in errors),
            per_queue={queue: count for queue, count in per_queue.items() if queue not in errors},
            unacked=sum(unacked.values()) if self._management is not None else None,
            per_queue_unacked=unacked,
            missing=frozenset(missing),
            errors=errors,
        )

    # -- Redis

    def _read_redis(self, queues: list[str]) -> BrokerObservation:
        channel = self._open_channel()
        if self._redis is None:
            # A plain client on the channel's own pool: no new connections, and no key
            # prefixing behind our back (the keys below carry the prefix themselves).
            self._redis = redis.Redis(connection_pool=channel.pool)
        keys = {
            queue: redis_priority_keys(
                queue,
                steps=channel.priority_steps,
                sep=channel.sep,
                prefix=channel.global_keyprefix,
            )
            for queue in queues
        }
        # One round trip for every list of every queue, and the first page of kombu's
        # unacked hash: a pass's reading is one request, however many queues, while fewer
        # than UNACKED_SCAN_BATCH messages are unacknowledged. kombu LPUSHes and BRPOPs,
        # so a list's oldest messages are at its tail; LRANGE reads them and leaves them
        # there. A key of another type fails only its own commands (raise_on_error=False).
        pipe = self._redis.pipeline(transaction=False)
        for queue_keys in keys.values():
            for key in queue_keys:
                pipe.llen(key)
                pipe.lrange(key, -LATENCY_SCAN, -1)
        unacked_key = channel.global_keyprefix + channel.unacked_key
        if channel.ack_emulation:
            pipe.hscan(unacked_key, 0, count=UNACKED_SCAN_BATCH)
        results = pipe.execute(raise_on_error=False)
        first_page = results.pop() if channel.ack_emulation else None
        replies: Iterator[Any] = iter(results)
        now = self._clock()
        per_queue: dict[str, int] = {}
        scans: dict[str, TailScan] = {}
        errors: dict[str, str] = {}
        for queue, queue_keys in keys.items():
            lengths, tails = [], []
            for _ in queue_keys:
                lengths.append(next(replies))
                tails.append(next(replies))
            failed = [
                r for r in (*lengths, *tails) if isinstance(r, redis.exceptions.ResponseError)
            ]
            if failed:
                errors[queue] = self._scrub(failed[0])
                continue
            per_queue[queue] = sum(int(length) for length in lengths)
            scans[queue] = scan_tails(tails, now=now)
        unacked = self._redis_unacked(channel, list(per_queue), first_page)
        return BrokerObservation(
            queue_depth=sum(per_queue.values()),
            per_queue=per_queue,
            unacked=sum(unacked.values()) if unacked is not None else None,
            per_queue_unacked=unacked or {},
            latency_seconds=oldest_of(scan.age for scan in scans.values()),
            per_queue_latency={queue: scan.age for queue, scan in scans.items()},
            unstamped=sum(scan.unstamped for scan in scans.values()),
            per_queue_unstamped={queue: scan.unstamped for queue, scan in scans.items()},
            per_queue_skew={q: scan.ahead for q, scan in scans.items() if scan.ahead is not None},
            errors=errors,
        )

    def _redis_unacked(
        self, channel: Any, queues: list[str], first_page: Any
    ) -> dict[str, int] | None:
        """Each queue's entries in kombu's unacked hash; None when kombu keeps none.

        `first_page`: the reply to the scan's first HSCAN, read with the queues.
        """
        if not channel.ack_emulation:
            return None  # kombu removes a message as it delivers it: nothing to count
        assert self._redis is not None
        prefix = channel.global_keyprefix
        if isinstance(first_page, redis.exceptions.ResponseError):
            raise first_page  # the key is not a hash: nothing can be counted
        # Each entry is a delivery tag → JSON [message, exchange, routing_key], kept
        # until the message is acknowledged or, unacknowledged for visibility_timeout,
        # restored to its queue. HSCAN may repeat an entry: the tag counts it once.
        routes: dict[bytes, tuple[str, str]] = {}
        cursor, page = first_page
        while True:
            for tag, raw in page.items():
                route = unacked_route(raw)
                if route is not None:
                    routes[tag] = route
            if not int(cursor):
                break
            cursor, page = self._redis.hscan(
                prefix + channel.unacked_key, cursor, count=UNACKED_SCAN_BATCH
            )
        counted = Counter(routes.values())
        exchanges = sorted({exchange for exchange, _ in counted})
        pipe = self._redis.pipeline(transaction=False)
        for exchange in exchanges:
            pipe.smembers(prefix + channel.keyprefix_queue % (exchange,))
        bindings = {
            exchange: parse_bindings(members, channel.sep)
            for exchange, members in zip(exchanges, pipe.execute(), strict=True)
        }
        return unacked_per_queue(counted, bindings, queues)

    # -- the connection

    def _open_channel(self) -> Any:
        if self._connection is None:
            self._connection = _kombu_connection(
                self._url,
                connect_timeout=self._connect_timeout,
                transport_options=dict(self._transport_options),
            )
        # One attempt per host in a failover list, without sleeping: `observe` retries
        # within its budget, and a pass must not block for minutes on a broker that is down.
        self._connection.ensure_connection(max_retries=max(len(self._connection.alt), 1) - 1)
        if self._channel is None:
            self._channel = self._connection.channel()
        return self._channel

    def _drop_connection(self) -> None:
        if self._connection is not None:
            # collect() forgets the connection without talking to a broker that may no
            # longer answer.
            with contextlib.suppress(Exception):
                self._connection.collect()
        self._connection = self._channel = self._redis = None

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        # Library messages do not normally echo credentials; make sure of it.
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _kombu_connection(url: str, **options: Any) -> Any:
    return Connection(url, **options)  # type: ignore[no-untyped-call]  # kombu has no hints


def _timeouts(driver: str, connect_timeout: float) -> dict[str, float]:
    """Transport options that bound connecting and reading (kombu's defaults wait forever)."""
    if driver == "redis":
        # kombu's Redis transport ignores Connection(connect_timeout=...).
        return {"socket_connect_timeout": connect_timeout, "socket_timeout": READ_TIMEOUT}
    if driver == "amqp":
        return {"read_timeout": READ_TIMEOUT, "write_timeout": READ_TIMEOUT}
    return {}


def _is_not_found(exc: BaseException) -> bool:
    # py-amqp raises NotFound with reply_code 404.
    return getattr(exc, "reply_code", None) == 404 or "NOT_FOUND" in str(exc)


def redis_priority_keys(
    queue: str, *, steps: Sequence[int], sep: str, prefix: str = ""
) -> tuple[str, ...]:
    """The Redis lists kombu keeps for `queue`, one per priority step.

    Built as kombu's `Channel._q_for_pri` builds them: step 0 is the bare queue name,
    step n is `queue + sep + str(n)`; kombu's key-prefixing client adds `prefix`
    (the `global_keyprefix` transport option) to every key.
    """
    keys = (f"{queue}{sep}{step}" if step else queue for step in steps)
    return tuple(dict.fromkeys(prefix + key for key in keys))


def published_at(raw_message: bytes | str) -> float | None:
    """The publish stamp `instrument(app)` put in a kombu message's headers, if any."""
    try:
        message = json.loads(raw_message)
    except ValueError:
        return None
    headers = message.get("headers") if isinstance(message, dict) else None
    stamp = headers.get(PUBLISHED_AT_HEADER) if isinstance(headers, dict) else None
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    return None


@dataclass(frozen=True)
class TailScan:
    """What the oldest messages of a queue's lists tell about its latency."""

    age: float | None
    """Age of the oldest stamped message scanned; 0.0 when the lists are empty; None
    (unknown) when a non-empty list showed no stamp, or a stamp lies in the future."""
    unstamped: int
    """Scanned messages without a publish stamp."""
    ahead: float | None = None
    """Seconds the furthest-ahead stamp lies in the future, beyond CLOCK_TOLERANCE."""


def scan_tails(tails: Iterable[Sequence[bytes | str]], now: float) -> TailScan:
    """Latency from each list's oldest messages (up to LATENCY_SCAN of them per list).

    Unstamped messages are skipped and counted: the oldest stamped one still tells the
    age. A list whose scanned messages all lack a stamp leaves the age unknown, since
    its oldest stamped message, if any, lies beyond the scan. A stamp in the future
    (the publisher's clock runs ahead) is an age that cannot be told: unknown, never 0.
    """
    stamps: list[float] = []
    unstamped = 0
    blind = False
    for messages in tails:
        found = [stamp for raw in messages if (stamp := published_at(raw)) is not None]
        unstamped += len(messages) - len(found)
        blind = blind or (bool(messages) and not found)
        stamps += found
    furthest = max(stamps, default=now) - now
    if furthest > CLOCK_TOLERANCE:
        return TailScan(None, unstamped, ahead=furthest)
    if blind:
        return TailScan(None, unstamped)
    return TailScan(max(0.0, now - min(stamps, default=now)), unstamped)


def unacked_route(raw: bytes | str) -> tuple[str, str] | None:
    """(exchange, routing key) of an entry of kombu's unacked hash; None if not kombu's."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if isinstance(entry, list) and len(entry) == 3 and all(isinstance(p, str) for p in entry[1:]):
        return entry[1], entry[2]
    return None


def parse_bindings(members: Iterable[bytes | str], sep: str) -> tuple[tuple[str, str], ...]:
    """(routing key, queue) of each member of kombu's binding set of an exchange.

    kombu stores a binding as `routing_key + sep + pattern + sep + queue`.
    """
    found = []
    for member in members:
        text = member.decode() if isinstance(member, bytes) else member
        parts = text.split(sep)
        if len(parts) == 3:
            found.append((parts[0], parts[2]))
    return tuple(found)


def unacked_per_queue(
    routes: Mapping[tuple[str, str], int],
    bindings: Mapping[str, Iterable[tuple[str, str]]],
    queues: Iterable[str],
) -> dict[str, int]:
    """Unacknowledged messages per queue, from (exchange, routing key) → count.

    An entry belongs to the queues its exchange's bindings route its key to (direct
    routing, as Celery declares its queues), which is where kombu restores it; with no
    such binding, to the queue named by its routing key (Celery's default routing).
    """
    counts = dict.fromkeys(queues, 0)
    for (exchange, routing_key), count in routes.items():
        bound = {queue for key, queue in bindings.get(exchange, ()) if key == routing_key}
        for queue in (bound or {routing_key}) & counts.keys():
            counts[queue] += count
    return counts


_SQS_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


class SqsQueueDepth:
    """Visible, in-flight and delayed messages of SQS queues."""

    iam_actions: ClassVar[IamActions] = {
        "sqs:GetQueueUrl": IamResource.SQS_QUEUE,
        "sqs:GetQueueAttributes": IamResource.SQS_QUEUE,
    }

    def __init__(self, sqs_client: SQSClient, *, queue_name_prefix: str = "") -> None:
        self._sqs = sqs_client
        self._prefix = queue_name_prefix
        self._urls: dict[str, str] = {}

    def observe(self, queues: Sequence[str]) -> BrokerObservation:
        """Each queue's counts; a queue SQS does not have is reported missing, not empty.

        A queue SQS refuses to read (access denied, say) is reported in `errors` and the
        others are read; SQS that cannot be reached at all raises AdapterError.
        """
        counts: dict[str, tuple[int, int, int]] = {}
        missing: set[str] = set()
        errors: dict[str, str] = {}
        for queue in dict.fromkeys(queues):
            try:
                found = self._counts(queue)
            except ClientError as exc:
                errors[queue] = str(
                    describe_aws_error(f"reading SQS queue {self._name(queue)!r}", exc)
                )
                continue
            if found is None:
                missing.add(queue)
                found = (0, 0, 0)
            counts[queue] = found
        visible = {queue: count[0] for queue, count in counts.items()}
        in_flight = {queue: count[1] for queue, count in counts.items()}
        delayed = {queue: count[2] for queue, count in counts.items()}
        return BrokerObservation(
            queue_depth=sum(visible.values()),
            per_queue=visible,
            unacked=sum(in_flight.values()),
            per_queue_unacked=in_flight,
            delayed=sum(delayed.values()),
            per_queue_delayed=delayed,
            missing=frozenset(missing),
            errors=errors,
        )

    def _name(self, queue: str) -> str:
        return sqs_queue_name(queue, self._prefix)

    def _counts(self, queue: str) -> tuple[int, int, int] | None:
        """(visible, in flight, delayed); None when SQS has no such queue."""
        name = self._name(queue)
        try:
            url = self._url(name)
            if url is None:
                return None
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            ).get("Attributes", {})
        except ClientError as exc:
            if _sqs_error_code(exc) not in _SQS_MISSING_QUEUE_CODES:
                raise
            # Deleted since its URL was cached; it may come back under a new URL.
            self._urls.pop(name, None)
            return None
        except BotoCoreError as exc:
            # No credentials, endpoint unreachable, timeouts after botocore's retries:
            # no queue can be read.
            raise describe_aws_error(f"reading SQS queue {name!r}", exc) from None
        # Visible (waiting), in flight (received, not yet deleted), delayed (not yet visible).
        return (
            int(attributes.get("ApproximateNumberOfMessages", "0")),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
            int(attributes.get("ApproximateNumberOfMessagesDelayed", "0")),
        )

    def _url(self, name: str) -> str | None:
        # A queue's URL never changes, so it is looked up once. A missing queue is not
        # remembered: it is looked up again next pass, in case it was created since.
        if name not in self._urls:
            try:
                self._urls[name] = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as exc:
                if _sqs_error_code(exc) in _SQS_MISSING_QUEUE_CODES:
                    return None
                raise
        return self._urls[name]


def _sqs_error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
