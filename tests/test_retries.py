"""The retry policy for what no SDK retries, which errors it takes for a lost connection,
and the bounded wait on a condition (celery_scaler/adapters/retries.py)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from email.message import Message
from urllib.error import HTTPError, URLError

import amqp.exceptions
import pytest
import redis.exceptions
from kombu.exceptions import OperationalError

from celery_scaler.adapters.retries import RetryPolicy, connection_lost, wait_until
from celery_scaler.compose import broker_retries
from tests.helpers import config, pool

QUICK = RetryPolicy(attempts=3, budget=10.0, first_wait=0.001, max_wait=0.001)


def failing(times: int, error: Exception) -> tuple[list[int], Callable[[], str]]:
    """A call that raises `error` its first `times` calls, then answers; and its calls."""
    calls: list[int] = []

    def call() -> str:
        calls.append(len(calls))
        if len(calls) <= times:
            raise error
        return "read"

    return calls, call


def lost(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


def test_a_transient_error_is_tried_again_until_the_call_answers() -> None:
    calls, call = failing(2, ConnectionResetError("reset"))
    assert QUICK.call(call, transient=lost) == "read"
    assert len(calls) == 3


def test_the_last_transient_error_is_raised_as_it_was_after_the_attempts() -> None:
    error = ConnectionRefusedError("refused")
    calls, call = failing(10, error)
    with pytest.raises(ConnectionRefusedError) as raised:
        QUICK.call(call, transient=lost)
    assert raised.value is error
    assert len(calls) == 3


def test_an_answer_from_the_broker_is_not_tried_again() -> None:
    calls, call = failing(1, ValueError("WRONGTYPE"))
    with pytest.raises(ValueError, match="WRONGTYPE"):
        QUICK.call(call, transient=lost)
    assert len(calls) == 1


def test_no_retry_starts_past_the_budget() -> None:
    policy = RetryPolicy(attempts=100, budget=0.3, first_wait=0.05, max_wait=0.05)
    calls, call = failing(1000, ConnectionRefusedError("refused"))
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        policy.call(call, transient=lost)
    # Waits of at most 0.05 s: no retry starts (and so none ends) past 0.3 s.
    assert time.monotonic() - started < 0.3
    assert 2 <= len(calls) < 100


def test_a_budget_already_spent_leaves_one_attempt() -> None:
    calls, call = failing(10, ConnectionRefusedError("refused"))
    with pytest.raises(ConnectionRefusedError):
        QUICK.within(0.0).call(call, transient=lost)
    assert len(calls) == 1
    assert QUICK.within(0.5).budget == 0.5
    assert QUICK.within(60.0).budget == QUICK.budget


def test_the_composition_root_gives_the_broker_half_the_pass_deadline() -> None:
    settings = config("interval: 20s, inspectTimeout: 2s", pool())
    assert settings.controller.pass_deadline == 20.0
    assert broker_retries(settings).budget == 10.0


def refused() -> OperationalError:
    """kombu's error for a connect that failed: the socket's error is its cause."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as wrapped:
        return wrapped


def refused_credentials() -> OperationalError:
    try:
        try:
            raise amqp.exceptions.AccessRefused("ACCESS_REFUSED - Login was refused")
        except amqp.exceptions.AccessRefused as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError("timed out"), True),
        (redis.exceptions.ConnectionError("Connection closed by server."), True),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), True),
        (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), True),
        (amqp.exceptions.ConnectionForced("CONNECTION_FORCED - broker forced shutdown"), True),
        (amqp.exceptions.RecoverableConnectionError("Socket closed"), True),
        (URLError(ConnectionRefusedError(111, "Connection refused")), True),
        (refused(), True),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"), False),
        (redis.exceptions.AuthenticationError("invalid username-password pair"), False),
        (amqp.exceptions.NotFound("NOT_FOUND - no queue 'x'"), False),
        (amqp.exceptions.AccessRefused("ACCESS_REFUSED"), False),
        (refused_credentials(), False),
        (HTTPError("http://rabbit/api", 401, "Unauthorized", Message(), None), False),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
        (ValueError("not JSON"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_a_lost_connection_is_worth_a_new_try(error: BaseException, transient: bool) -> None:
    assert connection_lost(error) is transient


def test_wait_until_polls_the_condition_until_it_holds() -> None:
    answers = iter([False, False, True])
    assert wait_until(lambda: next(answers), 5.0, every=0.001)


def test_wait_until_gives_up_after_the_timeout() -> None:
    calls: list[float] = []
    started = time.monotonic()

    def never() -> bool:
        calls.append(time.monotonic())
        return False

    assert not wait_until(never, 0.2, every=0.01)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert len(calls) > 2


def test_wait_until_raises_what_the_condition_raises_at_once() -> None:
    calls: list[int] = []

    def exited() -> bool:
        calls.append(1)
        raise RuntimeError("the server exited with code 1")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until(exited, 10.0)
    assert len(calls) == 1
