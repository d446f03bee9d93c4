"""The AWS operations the controller made against the local AWS API, from moto's recorder.

The recorder sees every request the session's local AWS API answers, whether it came
from this process or a child one (`celery-scaler` run as a command). Requests whose
User-Agent carries the controller's app id (see `celery_scaler.adapters.aws.client_config`) are
the controller's; the rest are the tests' own set-up and checks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session

from celery_scaler.adapters.aws import USER_AGENT_APP_ID

RECORDING = Path(tempfile.gettempdir()) / f"celery-scaler-aws-calls-{os.getpid()}.jsonl"
_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")
_RPC_V2 = re.compile(r"/service/[^/]+/operation/([A-Za-z0-9]+)")


def configure() -> None:
    """Point moto's recorder at this session's file; call before moto is imported."""
    os.environ["MOTO_RECORDER_FILEPATH"] = str(RECORDING)


def start() -> None:
    from moto.moto_api import recorder

    recorder.reset_recording()
    recorder.start_recording()


def stop() -> None:
    from moto.moto_api import recorder

    recorder.stop_recording()
    RECORDING.unlink(missing_ok=True)


def mark() -> int:
    """Where the recording stands now, for `entries(since=...)`."""
    return RECORDING.stat().st_size if RECORDING.exists() else 0


def entries(since: int = 0) -> Iterator[dict[str, Any]]:
    """Every request recorded (since a `mark`), as moto's recorder wrote it.

    The one recording serves every test: none may move, reset or stop the recorder.
    """
    if not RECORDING.exists():
        return  # no test started the local AWS API
    with RECORDING.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode("utf-8")
    # Server threads append concurrently and write each entry's newline separately, so
    # entries are read one JSON value after another rather than line by line. An entry
    # may still be being written (the file's tail), and one larger than the write buffer
    # may be split by another thread's entry: such a fragment is skipped, not an error.
    decoder = json.JSONDecoder()
    position = text.find(_ENTRY)
    while position >= 0:
        try:
            entry, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find(_ENTRY, position + 1)
            continue
        yield entry
        position = text.find(_ENTRY, end)


_ENTRY = '{"headers"'


def body_of(entry: dict[str, Any]) -> str:
    """A recorded request's body as text (the recorder base64-encodes most of them)."""
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    return str(body)


def operation_of(entry: dict[str, Any]) -> str | None:
    """The AWS operation a recorded request called, e.g. `TagResource`."""
    headers = {key.lower(): value for key, value in entry["headers"].items()}
    if target := headers.get("x-amz-target"):
        return str(target).rpartition(".")[2]
    if match := _RPC_V2.search(urlsplit(entry["url"]).path):
        return match.group(1)
    body = body_of(entry)
    actions = parse_qs(body).get("Action") or parse_qs(urlsplit(entry["url"]).query).get("Action")
    return actions[0] if actions else None


def controller_operations(services: Iterable[str]) -> set[str]:
    """`service:Operation` for every request the controller made since `start`.

    `services` are botocore service names (equal to their IAM prefixes for the ones the
    controller calls); they turn a request's signing name back into its IAM prefix.
    """
    session = botocore.session.get_session()
    prefixes = {session.get_service_model(name).signing_name: name for name in services}
    found: set[str] = set()
    for entry in entries():
        headers = {key.lower(): value for key, value in entry["headers"].items()}
        if f"app/{USER_AGENT_APP_ID}" not in headers.get("user-agent", ""):
            continue
        scope = _SCOPE.search(headers.get("authorization", ""))
        operation = operation_of(entry)
        if scope and operation:
            found.add(f"{prefixes.get(scope.group(1), scope.group(1))}:{operation}")
    return found
