"""Structured logs: JSON and text lines, default format, levels, and masked secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from celery_scaler.telemetry.logs import LogFormat, configure_logging, log_event, mask_secrets

log = logging.getLogger("celery_scaler.test")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    package_level = logging.getLogger("celery_scaler").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("celery_scaler").setLevel(package_level)


def test_json_event_has_its_fields_at_the_top_level() -> None:
    stream = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream)
    log_event(log, logging.INFO, "pool_reconciled", "p: held", pool="p", observed={"a": 1})
    record = json.loads(stream.getvalue())
    assert record["event"] == "pool_reconciled"
    assert record["message"] == "p: held"
    assert (record["level"], record["pool"], record["observed"]) == ("info", "p", {"a": 1})
    assert record["time"].endswith("Z")


def test_text_when_the_stream_is_a_terminal_json_otherwise() -> None:
    terminal = Terminal()
    configure_logging("info", None, terminal)
    log_event(log, logging.WARNING, "pass", "metrics not published", errors=1, why="a b")
    line = terminal.getvalue().strip()
    assert ' WARNING pass: metrics not published errors=1 why="a b"' in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)

    pipe = io.StringIO()
    configure_logging("info", None, pipe)
    log.info("plain")
    assert json.loads(pipe.getvalue())["event"] == "log"


def test_level_applies_to_the_package_and_libraries_log_only_warnings() -> None:
    stream = io.StringIO()
    configure_logging("warning", LogFormat.JSON, stream)
    log.info("hidden")
    log.warning("shown")
    logging.getLogger("botocore.endpoint").info("library chatter")
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == ["shown"]


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_passwords_in_urls_never_reach_the_stream(log_format: LogFormat) -> None:
    stream = io.StringIO()
    configure_logging("info", log_format, stream)
    log_event(
        log,
        logging.ERROR,
        "pool_reconciled",
        "cannot reach redis://:s3cret@cache:6379/0",
        error="amqp://user:hunter2@mq:5672// refused",
    )
    try:
        raise ValueError("sqs://AKIA:secretkey@")
    except ValueError:
        log.exception("with a traceback")
    text = stream.getvalue()
    assert "s3cret" not in text
    assert "hunter2" not in text
    assert "secretkey" not in text
    assert "redis://:***@cache:6379/0" in text
    assert "amqp://user:***@mq" in text


def test_mask_leaves_urls_without_a_password_alone() -> None:
    assert mask_secrets("redis://cache:6379/0 and http://host/a:b@c") == (
        "redis://cache:6379/0 and http://host/a:b@c"
    )
