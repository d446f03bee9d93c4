"""The pure half of the inspect adapter: parsing recorded replies, pools, round bookkeeping."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from celery_scaler.adapters.celery_inspect import (
    COMMANDS,
    STATE,
    CeleryInspector,
    RoundReplies,
    inspector_for,
    parse_replies,
    round_complete,
    unconfirmed,
)
from celery_scaler.core.metrics import workers_in_pool
from celery_scaler.core.model import WorkerSnapshot

# Recorded from `celery worker -c 1` (prefork) on Redis, trimmed to the fields read.
STATS: dict[str, Any] = {
    "total": {"tests.sleep": 3, "tests.noop": 4},
    "pid": 7747,
    "uptime": 4,
    "pool": {
        "implementation": "celery.concurrency.prefork:TaskPool",
        "max-concurrency": 1,
        "processes": [7749],
    },
    "prefetch_count": 1,
    "rusage": {"utime": 0.45, "stime": 0.10, "maxrss": 54300},
}
ACTIVE_QUEUES: list[dict[str, Any]] = [
    {"name": "orders", "exchange": {"name": "orders", "type": "direct"}, "routing_key": "orders"},
    {"name": "w1.own", "exchange": {"name": "w1.own", "type": "direct"}, "routing_key": "w1.own"},
]
TASK_INFO: dict[str, Any] = {
    "id": "6f1f4c1e-0c36-4d7e-9a31-1d2b0b8f6a10",
    "name": "tests.sleep",
    "args": [60],
    "kwargs": {},
    "hostname": "w1@host",
    "time_start": 1717000000.0,
    "acknowledged": True,
    "worker_pid": 7749,
}


def recorded(**workers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Replies by command then worker; each worker's replies default to an idle worker."""
    idle = {
        "stats": STATS,
        "active": [],
        "reserved": [],
        "scheduled": [],
        "revoked": [],
        "active_queues": ACTIVE_QUEUES,
    }
    replies: dict[str, dict[str, Any]] = {command: {} for command in COMMANDS}
    for name, overrides in workers.items():
        for command, reply in {**idle, **overrides}.items():
            if reply is not None:
                replies[command][name] = copy.deepcopy(reply)
    return replies


def snapshot(name: str, queues: set[str], active: int = 0) -> WorkerSnapshot:
    return WorkerSnapshot(
        name=name,
        queues=frozenset(queues),
        active=active,
        reserved=0,
        scheduled=0,
        revoked=0,
        concurrency=1,
    )


class TestParseReplies:
    def test_an_idle_worker(self) -> None:
        assert parse_replies(recorded(**{"w1@host": {}})) == (
            WorkerSnapshot(
                name="w1@host",
                queues=frozenset({"orders", "w1.own"}),
                active=0,
                reserved=0,
                scheduled=0,
                revoked=0,
                concurrency=1,
                max_rss_kb=54300,
                processed_total=7,
                uptime_seconds=4,  # tells a restarted worker's counter from a reset one
                prefetch_count=1,
            ),
        )

    def test_counts_are_list_lengths(self) -> None:
        replies = recorded(
            **{
                "w1@host": {
                    "active": [TASK_INFO],
                    "reserved": [TASK_INFO, TASK_INFO],
                    "scheduled": [
                        {"eta": "2024-06-01T00:00:00", "priority": 6, "request": TASK_INFO}
                    ],
                    # revoked answers with bare task ids
                    "revoked": ["a1", "b2", "c3", "d4"],
                }
            }
        )
        (worker,) = parse_replies(replies)
        assert (worker.active, worker.reserved, worker.scheduled, worker.revoked) == (1, 2, 1, 4)
        assert worker.busy

    @pytest.mark.parametrize("missing", ["active_queues", "active", "reserved"])
    def test_a_worker_missing_a_required_reply_is_left_out(self, missing: str) -> None:
        replies = recorded(**{"w1@host": {}, "w2@host": {missing: None}})
        assert [w.name for w in parse_replies(replies)] == ["w1@host"]

    def test_an_error_reply_counts_as_no_reply(self) -> None:
        # What a worker sends when the command raised on it (kombu.pidbox.Node.dispatch).
        replies = recorded(**{"w1@host": {"active": {"error": "KeyError('x')"}}})
        assert parse_replies(replies) == ()

    def test_without_stats_the_worker_is_reported_with_defaults(self) -> None:
        (worker,) = parse_replies(recorded(**{"w1@host": {"stats": None, "scheduled": None}}))
        assert (worker.concurrency, worker.max_rss_kb, worker.processed_total) == (0, None, 0)
        assert worker.scheduled == 0

    def test_a_consumer_not_started_has_no_prefetch_count(self) -> None:
        stats = {**STATS, "prefetch_count": "N/A"}
        (worker,) = parse_replies(recorded(**{"w1@host": {"stats": stats}}))
        assert worker.prefetch_count is None

    def test_a_pool_without_max_concurrency_reports_zero(self) -> None:
        stats = {**STATS, "pool": {"implementation": "celery.concurrency.solo:TaskPool"}}
        (worker,) = parse_replies(recorded(**{"w1@host": {"stats": stats}}))
        assert worker.concurrency == 0

    def test_a_fresh_worker_has_processed_nothing(self) -> None:
        (worker,) = parse_replies(recorded(**{"w1@host": {"stats": {**STATS, "total": {}}}}))
        assert worker.processed_total == 0

    def test_queues_kept_from_an_earlier_round(self) -> None:
        # No active_queues asked this round: each worker's queues as kept; a worker whose
        # queues are neither answered nor kept is left out, as one that did not answer.
        replies = recorded(
            **{"w1@host": {"active_queues": None}, "w2@host": {"active_queues": None}}
        )
        kept = {"w1@host": frozenset({"orders"})}
        (worker,) = parse_replies(replies, kept)
        assert (worker.name, worker.queues) == ("w1@host", frozenset({"orders"}))

    def test_this_rounds_active_queues_reply_wins_over_what_was_kept(self) -> None:
        replies = recorded(**{"w1@host": {}})
        (worker,) = parse_replies(replies, {"w1@host": frozenset({"old"})})
        assert worker.queues == frozenset({"orders", "w1.own"})

    def test_a_count_the_round_did_not_ask_is_unknown_not_zero(self) -> None:
        replies = recorded(**{"w1@host": {"scheduled": None, "revoked": None}})
        (worker,) = parse_replies(replies, asked=STATE)
        assert (worker.scheduled, worker.revoked) == (None, None)
        (worker,) = parse_replies(replies, asked=(*STATE, "scheduled"))
        assert (worker.scheduled, worker.revoked) == (0, None)

    def test_workers_are_sorted_by_name(self) -> None:
        replies = recorded(**{"b@host": {}, "c@host": {}, "a@host": {}})
        assert [w.name for w in parse_replies(replies)] == ["a@host", "b@host", "c@host"]

    def test_no_replies(self) -> None:
        assert parse_replies({}) == ()


class TestWorkersInPool:
    workers = (
        snapshot("a@h", {"orders", "a.own"}),
        snapshot("b@h", {"orders", "emails"}),
        snapshot("c@h", {"emails"}),
    )

    @pytest.mark.parametrize(
        ("queues", "names"),
        [
            (["orders"], ["a@h", "b@h"]),
            (["emails"], ["b@h", "c@h"]),
            (["emails", "orders"], ["a@h", "b@h", "c@h"]),
            (["reports"], []),
            ([], []),
        ],
    )
    def test_any_overlap_makes_a_member(self, queues: list[str], names: list[str]) -> None:
        assert [w.name for w in workers_in_pool(self.workers, queues)] == names


ORDERS = frozenset({"orders"})
EMAILS = frozenset({"emails"})


class TestRoundComplete:
    def answered(
        self, consumers: dict[str, str], commands: tuple[str, ...] = COMMANDS
    ) -> dict[str, Any]:
        """Every command answered by each worker; worker name → its queues, comma-separated."""
        replies: dict[str, Any] = {
            command: {name: [] for name in consumers} for command in commands
        }
        if "active_queues" in replies:
            replies["active_queues"] = {
                name: [{"name": queue} for queue in queues.split(",")]
                for name, queues in consumers.items()
            }
        return replies

    @pytest.mark.parametrize(
        ("consumers", "expected", "known", "complete"),
        [
            # Nothing to wait for: the round takes its whole timeout.
            ({}, {}, (), False),
            ({"a": "orders"}, {}, (), False),
            ({"a": "orders"}, {ORDERS: 0}, (), False),
            # A pool's running count, in workers consuming one of its queues.
            ({"a": "orders", "b": "orders"}, {ORDERS: 2}, (), True),
            ({"a": "orders"}, {ORDERS: 2}, (), False),
            ({"a": "orders", "b": "orders", "c": "orders"}, {ORDERS: 2}, (), True),
            # Workers of another pool, or of none, count for no one else.
            ({"a": "orders", "x": "emails", "y": "emails"}, {ORDERS: 2}, (), False),
            ({"a": "orders", "x": "reports", "y": "reports"}, {ORDERS: 2}, (), False),
            # Every pool its own count.
            ({"a": "orders", "x": "emails"}, {ORDERS: 1, EMAILS: 1}, (), True),
            ({"a": "orders", "b": "orders"}, {ORDERS: 1, EMAILS: 1}, (), False),
            ({"a": "orders", "b": "orders"}, {ORDERS: 2, EMAILS: 0}, (), True),
            # A worker on both queues is each pool's (as workers_in_pool has it).
            ({"ax": "orders,emails"}, {ORDERS: 1, EMAILS: 1}, (), True),
            # A pool of several queues: any of them.
            ({"a": "orders", "x": "emails"}, {ORDERS | EMAILS: 2}, (), True),
            # The workers of the previous round, each by name, whatever their queues.
            ({"a": "orders", "b": "orders"}, {}, ("a", "b"), True),
            ({"a": "orders", "c": "orders"}, {}, ("a", "b"), False),
            ({"a": "orders", "x": "emails"}, {ORDERS: 1}, ("a", "x"), True),
            ({"a": "orders"}, {ORDERS: 1}, ("a", "x"), False),
            # Both: the pool's count, and everyone known.
            ({"a": "orders", "b": "orders"}, {ORDERS: 3}, ("a", "b"), False),
            ({"a": "orders", "b": "orders", "c": "orders"}, {ORDERS: 3}, ("a", "b"), True),
            ({"a": "orders", "c": "orders", "d": "orders"}, {ORDERS: 3}, ("a", "b"), False),
        ],
    )
    def test_table(
        self,
        consumers: dict[str, str],
        expected: dict[frozenset[str], int],
        known: tuple[str, ...],
        complete: bool,
    ) -> None:
        assert round_complete(self.answered(consumers), expected, known) is complete

    def test_every_command_must_be_answered(self) -> None:
        replies = self.answered({"a": "orders", "b": "orders"}, commands=COMMANDS[1:])
        assert not round_complete(replies, {ORDERS: 2}, ())
        replies[COMMANDS[0]] = {"a": [], "b": []}
        assert round_complete(replies, {ORDERS: 2}, ())

    def test_a_reply_in_error_still_answers(self) -> None:
        # The worker will not answer that command again: waiting for it is pointless.
        replies = self.answered({"a": "orders"})
        replies["active"]["a"] = {"error": "boom"}
        assert round_complete(replies, {ORDERS: 1}, ())

    def test_a_worker_whose_queues_are_unknown_counts_for_no_pool(self) -> None:
        # Its active_queues failed: answered, so not waited for by name, but of no pool.
        replies = self.answered({"a": "orders", "b": "orders"})
        replies["active_queues"]["b"] = {"error": "boom"}
        assert not round_complete(replies, {ORDERS: 2}, ())
        assert round_complete(replies, {ORDERS: 1}, ("a", "b"))

    def test_a_round_of_the_state_commands_goes_by_kept_queues(self) -> None:
        replies = self.answered({"a": "orders", "b": "orders"}, commands=STATE)
        kept = {"a": ORDERS}
        # b's queues are unknown: not yet one of the pool's, nor done as a known worker.
        assert not round_complete(replies, {ORDERS: 2}, (), STATE, kept)
        assert not round_complete(replies, {ORDERS: 1}, ("a", "b"), STATE, kept)
        assert round_complete(replies, {ORDERS: 1}, ("a",), STATE, kept)
        # Its directed active_queues reply comes in.
        replies["active_queues"] = {"b": [{"name": "orders"}]}
        assert round_complete(replies, {ORDERS: 2}, ("a", "b"), STATE, kept)

    def test_only_the_rounds_own_commands_are_waited_for(self) -> None:
        replies = self.answered({"a": "orders"}, commands=(*STATE, "active_queues"))
        assert not round_complete(replies, {ORDERS: 1}, ())  # scheduled, revoked: not asked
        assert round_complete(replies, {ORDERS: 1}, (), STATE)


class TestRoundReplies:
    def test_routes_by_ticket(self) -> None:
        round_replies = RoundReplies.new()
        tickets = {command: ticket for ticket, command in round_replies.tickets.items()}
        assert round_replies.add({"a@h": []}, {"ticket": tickets["active"]}, now=0.0)
        assert round_replies.add({"a@h": STATS}, {"ticket": tickets["stats"]}, now=0.0)
        assert round_replies.replies == {"active": {"a@h": []}, "stats": {"a@h": STATS}}
        assert round_replies.workers == {"a@h"}

    def test_ignores_other_tickets_expired_and_malformed_replies(self) -> None:
        round_replies = RoundReplies.new(["active"])
        (ticket,) = round_replies.tickets
        assert not round_replies.add({"a@h": []}, {"ticket": "another-round"}, now=0.0)
        assert not round_replies.add({"a@h": []}, {}, now=0.0)
        assert not round_replies.add({"a@h": []}, {"ticket": ticket, "expires": 10.0}, now=11.0)
        assert not round_replies.add(["a@h"], {"ticket": ticket}, now=0.0)
        assert round_replies.replies == {}
        assert round_replies.add({"a@h": []}, {"ticket": ticket, "expires": 10.0}, now=9.0)
        # kombu sends 0 for "no expiry".
        assert round_replies.add({"b@h": []}, {"ticket": ticket, "expires": 0}, now=9.0)
        assert round_replies.workers == {"a@h", "b@h"}

    def test_tickets_are_unique_per_command_and_round(self) -> None:
        first, second = RoundReplies.new(), RoundReplies.new()
        assert sorted(first.tickets.values()) == sorted(COMMANDS)
        assert not set(first.tickets) & set(second.tickets)


class TestCeleryInspector:
    def test_needs_no_aws_permission(self) -> None:
        assert CeleryInspector.iam_actions == ()

    def test_rejects_a_timeout_of_zero(self) -> None:
        with pytest.raises(ValueError, match="longer than 0s"):
            inspector_for("redis://127.0.0.1:6379/0", 0)

    def test_shows_the_broker_without_its_password(self) -> None:
        inspector = inspector_for("redis://:hunter2@broker.internal:6379/0", 1.0)
        assert inspector.broker == "redis://:***@broker.internal:6379/0"
        assert inspector.known_workers == frozenset()


def test_a_control_round_names_each_worker_that_did_not_confirm() -> None:
    labels = ["cancel_consumer a", "cancel_consumer b"]
    replies = {
        "cancel_consumer a": {
            "w1": {"ok": "no longer consuming from 'a'"},
            "w2": {"error": "unknown"},
            "w3": {"ok": "x"},
        },
        "cancel_consumer b": {"w1": {"ok": "no longer consuming from 'b'"}, "w2": {"ok": "x"}},
    }
    assert unconfirmed(replies, labels, ["w1", "w2", "w3"]) == [
        "w2: unknown",
        "w3 did not answer",
    ]
