"""Queue depth (and, on Redis, latency) from the broker: the `QueueDepthSource` adapters.

`KombuQueueDepth` reads Redis and RabbitMQ through kombu with one code path, a passive
`queue_declare` per queue. `SqsQueueDepth` reads SQS queue attributes through boto3.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

import redis
from botocore.exceptions import BotoCoreError, ClientError
from kombu.connection import Connection
from kombu.exceptions import OperationalError

from celery_scaler.adapters.aws import describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
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


class KombuQueueDepth:
    """Depth of Redis or RabbitMQ queues through kombu; latency too on Redis."""

    iam_actions: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        broker_url: str,
        *,
        transport_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self._url = broker_url
        self._where = mask_url(broker_url)
        password = urlsplit(broker_url).password
        # As written in the URL and as kombu decodes it: a message could carry either.
        self._secrets = {password, unquote(password)} - {""} if password else set()
        self._clock = clock
        self._connect_timeout = connect_timeout
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
        # Celery users set the same options as `broker_transport_options`; theirs win.
        self._transport_options = {
            **_timeouts(driver, connect_timeout),
            **(transport_options or {}),
        }
        self._connection: Any = None  # kombu.Connection, made on first use
        self._channel: Any = None
        self._redis: redis.Redis | None = None

    def observe(self, queues: Sequence[str]) -> BrokerObservation:
        """Depth of each queue (a missing queue is 0) and, on Redis, the oldest message's age."""
        names = list(dict.fromkeys(queues))
        for attempt in range(2):
            reused = self._connection is not None
            try:
                return self._read(names)
            except self._errors as exc:
                self._drop_connection()
                # A connection kept between passes can go stale (broker restart, an idle
                # timeout on the way): reconnect once before reporting the broker down.
                if attempt == 0 and reused:
                    continue
                raise AdapterError(
                    f"cannot read queues {', '.join(names)} from the broker at {self._where}: "
                    f"{self._scrub(exc)}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

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

    def _read(self, queues: list[str]) -> BrokerObservation:
        per_queue = {queue: self._depth(queue) for queue in queues}
        if not self._is_redis:
            return BrokerObservation(queue_depth=sum(per_queue.values()), per_queue=per_queue)
        ages = self._latency(queues)
        return BrokerObservation(
            queue_depth=sum(per_queue.values()),
            per_queue=per_queue,
            latency_seconds=oldest_of(ages.values()),
            per_queue_latency=ages,
        )

    def _depth(self, queue: str) -> int:
        channel = self._open_channel()
        try:
            # Passive: only asks, never creates the queue or checks its arguments (a
            # RabbitMQ queue declared by Celery with x-max-priority would otherwise fail
            # with PRECONDITION_FAILED, and a missing one would be created).
            _, message_count, _ = channel.queue_declare(queue=queue, passive=True)
        except self._connection.channel_errors as exc:
            if not _is_not_found(exc):
                raise
            # RabbitMQ closes the channel on NOT_FOUND; kombu's Redis channel stays open
            # (and opening another would open new Redis connection pools).
            if not _channel_is_open(channel):
                self._channel = None
            if self._is_redis and channel.global_keyprefix:
                # kombu's Redis `_has_queue` sends EXISTS, which its key-prefixing client
                # does not prefix, so with a global_keyprefix every passive declare says
                # NOT_FOUND. `_size` (LLEN, prefixed) is the count queue_declare returns.
                return int(channel._size(queue))
            return 0
        return int(message_count)

    def _latency(self, queues: list[str]) -> dict[str, float | None]:
        """Age of each queue's oldest waiting message."""
        channel = self._open_channel()
        if self._redis is None:
            # A plain client on the channel's own pool: no new connections, and no
            # key prefixing behind our back (kombu's prefixing client leaves LINDEX alone).
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
        # kombu LPUSHes and BRPOPs, so each list's oldest message sits at index -1.
        # LINDEX reads it and leaves it where it is.
        pipe = self._redis.pipeline(transaction=False)
        for queue_keys in keys.values():
            for key in queue_keys:
                pipe.lindex(key, -1)
        tails: Iterator[bytes | None] = iter(pipe.execute())
        now = self._clock()
        return {
            queue: oldest_message_age([next(tails) for _ in queue_keys], now=now)
            for queue, queue_keys in keys.items()
        }

    def _open_channel(self) -> Any:
        if self._connection is None:
            self._connection = _kombu_connection(
                self._url,
                connect_timeout=self._connect_timeout,
                transport_options=dict(self._transport_options),
            )
        # One attempt per host in a failover list, without sleeping: the next pass is
        # the retry, and a pass must not block for minutes on a broker that is down.
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
    # py-amqp raises NotFound with reply_code 404; kombu's virtual transports (Redis) raise
    # kombu's ChannelError with the AMQP-style text "NOT_FOUND - no queue ...".
    return getattr(exc, "reply_code", None) == 404 or "NOT_FOUND" in str(exc)


def _channel_is_open(channel: Any) -> bool:
    # py-amqp channels have `is_open`; kombu's virtual channels have `closed`.
    return bool(getattr(channel, "is_open", True)) and not getattr(channel, "closed", False)


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


def oldest_message_age(tails: Iterable[bytes | str | None], now: float) -> float | None:
    """Age of the oldest of these messages (None entries are empty lists).

    0.0 when every list is empty. None (unknown) when a message carries no stamp: it may
    be the oldest, and its age cannot be told. Never negative (clocks differ by host).
    """
    stamps: list[float] = []
    for raw in tails:
        if raw is None:
            continue
        stamp = published_at(raw)
        if stamp is None:
            return None
        stamps.append(stamp)
    if not stamps:
        return 0.0
    return max(0.0, now - min(stamps))


_SQS_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


class SqsQueueDepth:
    """Depth (visible messages) and in-flight count of SQS queues."""

    iam_actions: ClassVar[IamActions] = {
        "sqs:GetQueueUrl": IamResource.SQS_QUEUE,
        "sqs:GetQueueAttributes": IamResource.SQS_QUEUE,
    }

    def __init__(self, sqs_client: SQSClient, *, queue_name_prefix: str = "") -> None:
        self._sqs = sqs_client
        self._prefix = queue_name_prefix
        self._urls: dict[str, str] = {}

    def observe(self, queues: Sequence[str]) -> BrokerObservation:
        """Visible and in-flight messages summed over the queues; a missing queue counts 0."""
        per_queue: dict[str, int] = {}
        in_flight: dict[str, int] = {}
        for queue in dict.fromkeys(queues):
            per_queue[queue], in_flight[queue] = self._counts(queue)
        return BrokerObservation(
            queue_depth=sum(per_queue.values()),
            per_queue=per_queue,
            in_flight=sum(in_flight.values()),
            per_queue_in_flight=in_flight,
        )

    def _counts(self, queue: str) -> tuple[int, int]:
        name = sqs_queue_name(queue, self._prefix)
        try:
            url = self._url(name)
            if url is None:
                return 0, 0
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            ).get("Attributes", {})
        except ClientError as exc:
            if _sqs_error_code(exc) in _SQS_MISSING_QUEUE_CODES:
                # Deleted since its URL was cached; it may come back under a new URL.
                self._urls.pop(name, None)
                return 0, 0
            raise describe_aws_error(f"reading SQS queue {name!r}", exc) from None
        except BotoCoreError as exc:
            # No credentials, endpoint unreachable, timeouts after botocore's retries.
            raise describe_aws_error(f"reading SQS queue {name!r}", exc) from None
        return (
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )

    def _url(self, name: str) -> str | None:
        # A queue's URL never changes, so it is looked up once. A missing queue is not
        # remembered: it counts 0 until Celery creates it on its first publish.
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
