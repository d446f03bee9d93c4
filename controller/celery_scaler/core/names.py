"""Names shared by the controller, the applications it watches and AWS (pure).

The configuration's default path and environment variables, the message header that
`instrument(app)` writes and the broker adapters read, and the queue names Celery's
transports derive from a Celery queue name.
"""

from __future__ import annotations

import string

# PUBLISHED_AT_HEADER, the message header holding the publish time (float epoch seconds),
# is defined once, in the instrumentation package: it writes the header into applications'
# messages and is all an application installs; the broker adapters read it under this
# name. That package imports only the standard library until `instrument()` is called, so
# the core stays pure (tests/integration/test_packaging.py checks what importing it loads).
from celery_scaler_instrument import PUBLISHED_AT_HEADER as PUBLISHED_AT_HEADER

DEFAULT_CONFIG_PATH = "celery-scaler.yaml"
CONFIG_ENV = "CELERY_SCALER_CONFIG"
"""Environment variable naming the configuration file (`--config` overrides it)."""
BROKER_ENV = "CELERY_SCALER_BROKER_URL"
"""Environment variable overriding the Controller's `spec.broker`."""


# What kombu's SQS transport does to a queue name (kombu.transport.SQS.CHARS_REPLACE_TABLE):
# '.' becomes '-', '-' and '_' stay, every other ASCII punctuation mark becomes '_'.
_SQS_NAME_TABLE = str.maketrans(
    {c: "-" if c == "." else "_" for c in string.punctuation if c not in "-_"}
)
_FIFO_SUFFIX = ".fifo"


def sqs_queue_name(queue: str, prefix: str = "") -> str:
    """The SQS queue Celery uses for `queue`: kombu's `canonical_queue_name`.

    The prefix (`queue_name_prefix`) is joined first and mangled with the name; a
    `.fifo` suffix survives.
    """
    name = prefix + queue
    if name.endswith(_FIFO_SUFFIX):
        return name.removesuffix(_FIFO_SUFFIX).translate(_SQS_NAME_TABLE) + _FIFO_SUFFIX
    return name.translate(_SQS_NAME_TABLE)
