"""Structured logs: one event per pool per pass, one per scaling action, JSON or text.

Logs go to stderr, so stdout carries only the pass output (`--output json` lines) and,
in `cloudwatch.mode: emf`, the EMF lines. An event is a log record with an `event`
name and `fields`; `log_event` makes one. JSON puts the fields at the top level of
one object per line; text writes `time LEVEL event key=value ...`. Every line, from
this package or a library, has URL passwords masked before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any

LOGGER = "celery_scaler"

_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s\"']*):[^@/\s\"']+@"
)


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


def mask_secrets(text: str) -> str:
    """The text with the password of every `scheme://user:password@` replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


def log_event(logger: logging.Logger, level: int, event: str, message: str, **fields: Any) -> None:
    """Log `message` as the structured event `event` with `fields`."""
    logger.log(level, message, extra={"event": event, "fields": fields})


class _Formatter(logging.Formatter):
    def __init__(self, log_format: LogFormat) -> None:
        super().__init__()
        self._format = log_format

    def format(self, record: logging.LogRecord) -> str:
        event: str | None = getattr(record, "event", None)
        fields: Mapping[str, Any] = getattr(record, "fields", {})
        time = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if self._format is LogFormat.JSON:
            line = json.dumps(
                {
                    "time": time.replace("+00:00", "Z"),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "event": event or "log",
                    "message": message,
                    **fields,
                },
                default=str,
            )
        else:
            pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
            line = f"{time[:-6]}Z {record.levelname:<7} {event or record.name}: {message}"
            line = f"{line} {pairs}" if pairs else line
        return mask_secrets(line)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


def configure_logging(
    level: str = "info", log_format: LogFormat | None = None, stream: IO[str] | None = None
) -> None:
    """Send logs to `stream` (stderr) as JSON or text; text when that is a terminal.

    `level` applies to this package; libraries log warnings and errors only (botocore's
    debug output would print request headers, session token included).
    """
    stream = stream or sys.stderr
    if log_format is None:
        log_format = LogFormat.TEXT if stream.isatty() else LogFormat.JSON
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Formatter(log_format))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER).setLevel(level.upper())


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
