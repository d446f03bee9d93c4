"""Broker adapter pieces that need no broker: names, keys, stamps, SQS error mapping."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from celery import Celery
from celery.signals import before_task_publish
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from kombu.transport.SQS import Channel as SqsChannel

from celery_scaler.adapters.broker import (
    KombuQueueDepth,
    SqsQueueDepth,
    TailScan,
    parse_bindings,
    published_at,
    redis_priority_keys,
    scan_tails,
    unacked_per_queue,
    unacked_route,
)
from celery_scaler.core.names import sqs_queue_name
from celery_scaler.instrument import PUBLISHED_AT_HEADER, instrument, uninstrument

# --- SQS queue names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "prefix", "expected"),
    [
        ("celery", "", "celery"),
        ("celery", "dev-", "dev-celery"),
        ("celery.high", "", "celery-high"),
        ("celery:high", "", "celery_high"),
        ("a/b@c+d", "", "a_b_c_d"),
        ("keep-these_ones", "", "keep-these_ones"),
        ("celery", "dev.", "dev-celery"),  # the prefix is mangled with the name
        ("jobs.fifo", "", "jobs.fifo"),  # the suffix survives
        ("jobs.v2.fifo", "dev.", "dev-jobs-v2.fifo"),
        ("jobs.fifox", "", "jobs-fifox"),
    ],
)
def test_sqs_queue_name(queue: str, prefix: str, expected: str) -> None:
    assert sqs_queue_name(queue, prefix) == expected


@pytest.mark.parametrize(
    "name",
    [
        "celery",
        string.punctuation,
        f"{string.punctuation}.fifo",
        "dev.celery:high",
        "prod.emails.fifo",
        "x" * 80,
    ],
)
def test_sqs_queue_name_matches_kombu(name: str) -> None:
    # kombu's entity_name does not use `self`; calling it unbound makes kombu the oracle.
    assert sqs_queue_name(name) == SqsChannel.entity_name(None, name)  # type: ignore[no-untyped-call,arg-type]


# --- Redis priority lists ---------------------------------------------------------------


def test_redis_priority_keys_with_kombu_defaults() -> None:
    keys = redis_priority_keys("celery", steps=PRIORITY_STEPS, sep=RedisChannel.sep)
    assert keys == ("celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169")


def test_redis_priority_keys_with_global_keyprefix() -> None:
    keys = redis_priority_keys("celery", steps=[0, 9], sep="\x06\x16", prefix="app:")
    assert keys == ("app:celery", "app:celery\x06\x169")


def test_redis_priority_keys_with_custom_steps_and_separator() -> None:
    keys = redis_priority_keys("q", steps=list(range(10)), sep=":")
    assert keys == ("q", *(f"q:{n}" for n in range(1, 10)))


# --- latency from stamps ----------------------------------------------------------------


def message(stamp: object = None) -> bytes:
    headers = {"task": "t"} if stamp is None else {"task": "t", PUBLISHED_AT_HEADER: stamp}
    return json.dumps({"body": "", "headers": headers, "properties": {}}).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (message(100.5), 100.5),
        (message(100), 100.0),
        (message(), None),
        (message("100"), None),
        (message(True), None),
        (b"not json", None),
        (b"[1, 2]", None),
        (json.dumps({"headers": None}).encode(), None),
    ],
)
def test_published_at(raw: bytes, expected: float | None) -> None:
    assert published_at(raw) == expected


@pytest.mark.parametrize(
    ("tails", "expected"),
    [
        ([], TailScan(0.0, 0)),
        ([[], []], TailScan(0.0, 0)),
        ([[message(990.0)], [], [message(995.0)]], TailScan(10.0, 0)),
        ([[message(995.0), message(990.0)]], TailScan(10.0, 0)),
        # An unstamped message at the head no longer hides the stamped ones behind it.
        ([[message(995.0), message()]], TailScan(5.0, 1)),
        ([[message(), message()]], TailScan(None, 2)),  # no stamp within the scan
        ([[message(990.0)], [message()]], TailScan(None, 1)),  # one list shows none
        ([[message(1000.5)]], TailScan(0.0, 0)),  # within the tolerance of clocks
        # A publisher 300 s ahead: the age cannot be told, and is never read as 0.
        ([[message(1300.0), message(990.0)]], TailScan(None, 0, ahead=300.0)),
    ],
)
def test_scan_tails(tails: list[list[bytes]], expected: TailScan) -> None:
    assert scan_tails(tails, now=1000.0) == expected


# --- kombu's unacked hash ---------------------------------------------------------------


def test_unacked_route_reads_what_kombu_stores() -> None:
    raw = json.dumps([{"body": "", "headers": {}}, "media", "media.video"])
    assert unacked_route(raw) == ("media", "media.video")
    assert unacked_route(b"not json") is None
    assert unacked_route(json.dumps({"a": 1})) is None


def test_parse_bindings_as_kombu_writes_them() -> None:
    sep = RedisChannel.sep
    members = [f"media.video{sep}{sep}videos".encode(), f"celery{sep}{sep}celery", b"junk"]
    assert parse_bindings(members, sep) == (("media.video", "videos"), ("celery", "celery"))


def test_unacked_per_queue_follows_bindings_then_routing_keys() -> None:
    routes = {("media", "media.video"): 3, ("celery", "celery"): 2, ("other", "x"): 5}
    bindings = {"media": (("media.video", "videos"),)}
    assert unacked_per_queue(routes, bindings, ["videos", "celery", "idle"]) == {
        "videos": 3,  # routed by the exchange's binding, not named by the key
        "celery": 2,  # no binding known: Celery's default routing, key = queue
        "idle": 0,
    }


# --- instrument -------------------------------------------------------------------------


@pytest.fixture
def clean_signal() -> Iterator[None]:
    uninstrument()
    yield
    uninstrument()


def test_instrument_is_idempotent(clean_signal: None) -> None:
    before = len(before_task_publish.receivers)
    app = Celery(set_as_current=False)
    instrument(app)
    instrument(app)
    instrument(Celery(set_as_current=False))
    assert len(before_task_publish.receivers) == before + 1
    uninstrument()
    assert len(before_task_publish.receivers) == before


def test_instrument_stamps_headers_and_restamps_a_republish(clean_signal: None) -> None:
    instrument(Celery(set_as_current=False))
    headers: dict[str, object] = {"task": "t", PUBLISHED_AT_HEADER: 1.0}
    before_task_publish.send(sender="t", headers=headers, body=(), properties={})
    stamp = headers[PUBLISHED_AT_HEADER]
    assert isinstance(stamp, float)
    assert stamp > 1.0


def test_instrument_needs_a_celery_app(clean_signal: None) -> None:
    with pytest.raises(TypeError, match="Celery app"):
        instrument(object())


# --- IAM actions and SQS errors ---------------------------------------------------------


def test_iam_actions() -> None:
    assert tuple(SqsQueueDepth.iam_actions) == ("sqs:GetQueueUrl", "sqs:GetQueueAttributes")
    assert KombuQueueDepth.iam_actions == ()


@pytest.fixture
def sqs() -> Iterator[tuple[object, Stubber]]:
    # botocore's own stubber: canned AWS replies, the real client and its error parsing.
    client = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_sqs_access_denied_fails_that_queue_only(sqs: tuple[object, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_client_error(
        "get_queue_url", service_error_code="AccessDenied", http_status_code=403
    )
    url = "https://sqs.us-east-1.amazonaws.com/1/dev-other"
    stubber.add_response("get_queue_url", {"QueueUrl": url}, {"QueueName": "dev-other"})
    stubber.add_response(
        "get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "3"}}
    )
    observation = SqsQueueDepth(client, queue_name_prefix="dev-").observe(["celery", "other"])  # type: ignore[arg-type]
    assert observation.errors == {"celery": "reading SQS queue 'dev-celery' failed: AccessDenied"}
    assert observation.per_queue == {"other": 3}


def test_sqs_url_is_looked_up_once(sqs: tuple[object, Stubber]) -> None:
    client, stubber = sqs
    url = "https://sqs.us-east-1.amazonaws.com/1/celery"
    stubber.add_response("get_queue_url", {"QueueUrl": url}, {"QueueName": "celery"})
    for visible in ("4", "6"):
        stubber.add_response(
            "get_queue_attributes",
            {
                "Attributes": {
                    "ApproximateNumberOfMessages": visible,
                    "ApproximateNumberOfMessagesNotVisible": "1",
                }
            },
        )
    adapter = SqsQueueDepth(client)  # type: ignore[arg-type]
    assert adapter.observe(["celery"]).queue_depth == 4
    observation = adapter.observe(["celery"])
    assert (observation.queue_depth, observation.unacked) == (6, 1)
