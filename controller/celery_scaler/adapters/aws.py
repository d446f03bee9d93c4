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

# botocore's standard retry mode retries throttling errors and 5xx responses with
# exponential backoff and full jitter; no second retry layer is stacked on top, so a
# failing call costs at most these attempts.
CLIENT_CONFIG = BotocoreConfig(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=15,
    # `app/celery-scaler` in every request's User-Agent: CloudTrail's userAgent names the
    # controller, and the tests tell its calls from their own (tests/aws_calls.py).
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
