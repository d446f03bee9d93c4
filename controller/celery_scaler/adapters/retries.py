"""Retries where no SDK retries, and bounded waits: one policy each, through tenacity.

AWS calls are never wrapped here: botocore's standard mode already retries throttling,
5xx answers and connection errors (`aws.client_config`), and a second layer on top would
multiply the requests a throttled API sees (3 attempts of 3 requests each). What no
library retries is the broker: kombu is asked for one connection attempt per host,
redis-py's retries are off on kombu's pool and py-amqp has none. `RetryPolicy` retries
the broker's reads and reconnects, the RabbitMQ management API and the inspect round's
connection, on connection-level errors only, within a time budget the composition root
gives each adapter out of the pass deadline.

`wait_until` is the one bounded wait on a condition, for the local servers the demo
and the tests start.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.error import HTTPError

import amqp.exceptions
import redis.exceptions
from kombu.exceptions import OperationalError
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    stop_before_delay,
    wait_fixed,
    wait_random_exponential,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How a call that failed on a transient error is tried again.

    Exponential backoff with full jitter (each wait random between 0 and a bound that
    doubles from `first_wait`, capped at `max_wait`, as botocore waits), stopping at the
    earlier of `attempts` tries and the `budget`: no retry starts whose wait would end
    more than `budget` seconds after the first attempt began.
    """

    attempts: int = 3
    """Tries in all, the first included."""
    budget: float = 2.0
    """Seconds from the first attempt within which a retry may start."""
    first_wait: float = 0.25
    max_wait: float = 1.0

    def within(self, seconds: float) -> RetryPolicy:
        """This policy with its budget cut to `seconds` (a deadline already running)."""
        return dataclasses.replace(self, budget=max(0.0, min(self.budget, seconds)))

    def call(self, fn: Callable[[], T], *, transient: Callable[[BaseException], bool]) -> T:
        """`fn()`, tried again while it raises an error `transient` accepts.

        Any other error, and the last transient one, is raised as it was.
        """
        retrying = Retrying(
            retry=retry_if_exception(transient),
            stop=stop_after_attempt(self.attempts) | stop_before_delay(self.budget),
            wait=wait_random_exponential(multiplier=self.first_wait, max=self.max_wait),
            reraise=True,
        )
        return retrying(fn)


def connection_lost(exc: BaseException) -> bool:
    """Whether a broker error is the connection's, worth a new connection and a new try.

    The connection was refused, reset, timed out or closed (also a broker shutting down,
    or Redis still loading its data). Not an answer from a broker that is up: a Redis
    error reply (WRONGTYPE), refused credentials, a RabbitMQ channel error (NOT_FOUND,
    ACCESS_REFUSED): trying again would get the same answer. kombu reports a failed
    connect as OperationalError; its cause tells which it was.
    """
    if isinstance(exc, OperationalError) and exc.__cause__ is not None:
        return connection_lost(exc.__cause__)
    if isinstance(
        exc,
        redis.exceptions.AuthenticationError
        | redis.exceptions.AuthorizationError
        | ssl.SSLCertVerificationError  # an OSError, but no new try changes the certificate
        | HTTPError,  # an OSError too, and an answer
    ):
        return False
    return isinstance(
        exc,
        OSError  # refused, reset, timed out: socket errors and their kombu and urllib kin
        | redis.exceptions.ConnectionError  # also BusyLoadingError: Redis starting up
        | redis.exceptions.TimeoutError
        | amqp.exceptions.RecoverableConnectionError,  # closed, CONNECTION_FORCED
    )


def wait_until(condition: Callable[[], bool], timeout: float, *, every: float = 0.05) -> bool:
    """Poll `condition` every `every` seconds until it holds; False once `timeout` passed.

    An exception from `condition` is raised at once (say, the process awaited exited).
    """
    retrying = Retrying(
        retry=retry_if_result(lambda held: not held),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(every),
        retry_error_callback=lambda _: False,
    )
    return bool(retrying(condition))
