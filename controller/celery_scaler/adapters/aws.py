"""AWS SDK plumbing shared by the AWS adapters: retries, timeouts, readable errors."""

from __future__ import annotations

from botocore.config import Config as BotocoreConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from celery_scaler.core.errors import AdapterError

USER_AGENT_APP_ID = "celery-scaler"

TOOL_ATTEMPTS = 5
"""Requests a command run by a person (report, alarms, status) makes at most per call."""
PASS_ATTEMPTS = 3
"""Requests the reconcile pass makes at most per call: a later pass is the next retry."""
PASS_CONNECTIONS = 32
"""Connections a pass's client keeps open: as many as the pass makes calls at once (its
32 threads, engine/reconcile.py MAX_THREADS). botocore keeps 10; past them each call at
once opens a connection of its own and drops it after."""


def client_config(deadline: float | None = None, *, validate: bool = True) -> BotocoreConfig:
    """botocore settings: standard retries, timeouts, the controller's User-Agent app id.

    botocore's standard retry mode retries throttling errors, 5xx responses and
    connection failures with exponential backoff and full jitter; no second retry layer
    is stacked on top. `total_max_attempts` counts every request, the first included
    (botocore's `max_attempts` would count only the retries).

    With a `deadline` (seconds a pool's pass may take, see engine/reconcile.py) the
    timeouts are sized to it, so a blackholed endpoint costs a pass about its deadline
    instead of botocore's 60 s read timeout times every attempt. `validate`: botocore
    checks each request's parameters against the API's shapes before sending it.
    """
    if deadline is None:
        connect, read, attempts, connections = 5.0, 15.0, TOOL_ATTEMPTS, 10
    else:
        connect = min(5.0, max(1.0, deadline / 4))
        read = min(15.0, max(1.0, deadline / 2))
        attempts, connections = PASS_ATTEMPTS, PASS_CONNECTIONS
    return BotocoreConfig(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect,
        read_timeout=read,
        max_pool_connections=connections,
        parameter_validation=validate,
        # `app/celery-scaler` in every request's User-Agent: CloudTrail's userAgent names
        # the controller, and the tests tell its calls from their own (tests/aws_calls.py).
        user_agent_appid=USER_AGENT_APP_ID,  # type: ignore[call-arg]  # newer than botocore-stubs
    )


def describe_aws_error(operation: str, exc: Exception) -> AdapterError:
    """One line for a person about a failed AWS call."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        message = error.get("Message", "")
        return AdapterError(f"{operation} failed: {code}: {message}".rstrip(": "))
    if isinstance(exc, NoCredentialsError):
        return AdapterError(
            f"{operation} failed: no AWS credentials found (environment, shared config, "
            "or an instance/task role)"
        )
    if isinstance(exc, NoRegionError):
        return AdapterError(f"{operation} failed: no AWS region (set spec.region or AWS_REGION)")
    if isinstance(exc, EndpointConnectionError):
        return AdapterError(f"{operation} failed: cannot reach {exc.kwargs.get('endpoint_url')}")
    if isinstance(exc, BotoCoreError):
        return AdapterError(f"{operation} failed: {exc}")
    return AdapterError(f"{operation} failed: {exc}")


AWS_ERRORS = (BotoCoreError, ClientError)
