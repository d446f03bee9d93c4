"""The broker transport options kombu knows, per transport (pure data).

`spec.brokerTransportOptions` is the application's Celery `broker_transport_options`,
handed to kombu by the queue reader, inspect and the event receiver. kombu ignores a
name it does not know, so a misspelt option (`priority_step`) would silently read other
keys than the application writes; `config validate` rejects it instead. The core cannot
import kombu, so the names are kept here as data, and tests/test_transport_options.py
compares them with what the installed kombu and py-amqp read: an upgrade that adds or
drops one fails there, not in production.

Every kombu the package supports (5.3 on) is covered: a name only newer versions read is
accepted too, with the version that first reads it in `FIRST_READ_BY`, since the options
describe the application's broker, whose kombu may be newer than the controller's.
"""

from __future__ import annotations

from collections.abc import Mapping

_CONNECTION = frozenset(
    {
        # kombu.Connection: retrying a connection (`_extract_failover_opts`, and a
        # producer's retry_policy, which it merges into the transport options).
        "callback",
        "connect_retries_timeout",
        "errback",
        "interval_max",
        "interval_start",
        "interval_step",
        "max_retries",
    }
)

_VIRTUAL = frozenset(
    {
        # kombu.transport.virtual: Channel.from_transport_options, and the Transport's own.
        "body_encoding",
        "deadletter_queue",
        "polling_interval",
    }
)

REDIS_OPTIONS = (
    _CONNECTION
    | _VIRTUAL
    | frozenset(
        {
            # kombu.transport.redis.Channel.from_transport_options
            "ack_emulation",
            "client_name",
            "fanout_patterns",
            "fanout_prefix",
            "global_keyprefix",
            "health_check_interval",
            "max_connections",
            "priority_steps",
            "queue_order_strategy",
            "retry_on_timeout",
            "sep",
            "socket_connect_timeout",
            "socket_keepalive",
            "socket_keepalive_options",
            "socket_timeout",
            "unacked_index_key",
            "unacked_key",
            "unacked_mutex_expire",
            "unacked_mutex_key",
            "unacked_restore_interval",
            "unacked_restore_limit",
            "unacked_restore_throttle",
            "visibility_timeout",
            # read by the Redis Transport itself
            "reauth_check_interval",
        }
    )
)

AMQP_OPTIONS = _CONNECTION | frozenset(
    {
        # py-amqp's Connection, which kombu's pyamqp transport passes them to.
        "authentication",
        "channel_max",
        "client_properties",
        "confirm_publish",
        "connect_timeout",
        "frame_handler",
        "frame_max",
        "frame_writer",
        "heartbeat",
        "host",
        "locale",
        "login_method",
        "login_response",
        "on_blocked",
        "on_open",
        "on_tune_ok",
        "on_unblocked",
        "password",
        "read_timeout",
        "socket_settings",
        "ssl",
        "userid",
        "virtual_host",
        "write_timeout",
    }
)

SQS_OPTIONS = (
    _CONNECTION
    | _VIRTUAL
    | frozenset(
        {
            # kombu.transport.SQS
            "client-config",
            "fetch_message_attributes",
            "is_secure",
            "port",
            "predefined_exchanges",
            "predefined_queues",
            "queue_name_prefix",
            "queue_tags",
            "region",
            "regioninfo",
            "sqs-creation-attributes",
            "sqs_base64_encoding",
            "sts_role_arn",
            "sts_token_buffer_time",
            "sts_token_timeout",
            "supports_fanout",
            "visibility_timeout",
            "wait_time_seconds",
        }
    )
)

FIRST_READ_BY: Mapping[str, tuple[int, int]] = {
    "callback": (5, 5),
    "errback": (5, 5),
    "fetch_message_attributes": (5, 5),
    "client_name": (5, 6),
    "queue_tags": (5, 6),
    "sts_token_buffer_time": (5, 6),
    "predefined_exchanges": (5, 7),
    "reauth_check_interval": (5, 7),
    "supports_fanout": (5, 7),
    "unacked_restore_interval": (5, 7),
    "unacked_restore_throttle": (5, 7),
}
"""Option → the first kombu (major, minor) that reads it; the others every kombu 5.3+ reads."""

KNOWN_OPTIONS: Mapping[str, frozenset[str]] = {
    "redis": REDIS_OPTIONS,
    "amqp": AMQP_OPTIONS,
    "sqs": SQS_OPTIONS,
}
"""Broker kind (`ControllerSpec.broker_kind`) → the option names its kombu transport reads."""

TRANSPORT_NAMES = {"redis": "Redis", "amqp": "py-amqp (RabbitMQ)", "sqs": "SQS"}

TEXT_OPTIONS = frozenset({"sep", "global_keyprefix", "unacked_key", "queue_name_prefix"})
"""Options the controller itself builds key and queue names from: they must be text."""
