"""Controller state on the service's tags (pure)."""

from __future__ import annotations

from celery_scaler.core.model import (
    Action,
    Drain,
    LastAction,
    PendingWrite,
    PoolMemory,
    ScaleOutCooldown,
)
from celery_scaler.core.state import (
    DRAIN,
    DRAIN_WORKERS,
    FAILURES,
    LAST_DESIRED,
    LAST_REASON,
    PAUSED,
    PENDING_WRITE,
    SCALE_IN_COOLDOWN,
    SCALE_OUT_COOLDOWN,
    is_paused,
    memory_from_tags,
    memory_to_tags,
    tag_changes,
    tag_text,
    tag_value,
    tags_after,
)

T = 1_763_700_000.0  # a whole second, as tags keep them


def test_round_trip_keeps_everything_a_restart_needs() -> None:
    memory = PoolMemory(
        samples={"default": ((T, 3.0),)},
        scale_out_cooldown=ScaleOutCooldown(T - 30, 2),
        scale_in_cooldown_started=T - 100,
        last_desired=6,
        consecutive_failures=2,
        last_action=LastAction(Action.SCALE_OUT, T - 30, "queue_depth 63 ≥ 50: 4 → 6"),
    )
    back = memory_from_tags(memory_to_tags(memory))
    assert back.scale_out_cooldown == memory.scale_out_cooldown
    assert back.scale_in_cooldown_started == memory.scale_in_cooldown_started
    assert (back.last_desired, back.consecutive_failures) == (6, 2)
    assert back.last_action is not None
    assert (back.last_action.action, back.last_action.time) == (Action.SCALE_OUT, T - 30)
    assert back.samples == {}  # the window starts anew after a restart


def test_tag_values_keep_to_aws_alphabet_and_length() -> None:
    reason = "queue_depth 63 ≥ 50 (step [10, 20) → +2): 4 → 6; a=b, 50%"
    value = tag_value(reason)
    assert all(c.isalnum() or c in " _.:/=+-@" for c in value)
    assert tag_text(value) == reason, "the reason reads back with its symbols"
    long = tag_value("≥" * 400)
    assert len(long) <= 256
    assert tag_text(long) == "≥" * (256 // 9), "cut between characters, never inside an escape"
    assert tag_text("queue_depth 63 at or above 50") == "queue_depth 63 at or above 50"


def test_only_differences_are_written_and_cleared_state_is_removed() -> None:
    memory = PoolMemory(last_desired=4)
    current = {LAST_DESIRED: "4", SCALE_IN_COOLDOWN: "2025-01-01T00:00:00Z", "team": "data"}
    assert tag_changes(memory, current) == ({}, [SCALE_IN_COOLDOWN])
    assert tag_changes(memory.evolve(last_desired=5), {LAST_DESIRED: "4"}) == (
        {LAST_DESIRED: "5"},
        [],
    )


def test_hand_edited_tags_are_ignored_not_trusted() -> None:
    memory = memory_from_tags(
        {SCALE_OUT_COOLDOWN: "yesterday +2", LAST_DESIRED: "six", FAILURES: "-", LAST_REASON: "x"}
    )
    assert memory == PoolMemory()


def test_paused() -> None:
    assert is_paused({PAUSED: "true"})
    assert is_paused({PAUSED: " True "})
    assert not is_paused({PAUSED: "false"})
    assert not is_paused({})


def test_an_outage_writes_the_failures_tag_when_it_matters_not_every_pass() -> None:
    """First failure (Degraded), the fallback threshold, recovery: three writes in all."""
    threshold = 3
    current: dict[str, str] = {}
    written: list[str | None] = []
    for failures in (1, 2, 3, 4, 5, 6, 0):
        to_set, to_remove = tag_changes(
            PoolMemory(consecutive_failures=failures), current, threshold
        )
        if to_set or to_remove:
            written.append(to_set.get(FAILURES))
        current.update(to_set)
        for key in to_remove:
            del current[key]
    assert written == ["1", "3", None]
    assert memory_from_tags({FAILURES: "3"}).consecutive_failures == threshold, (
        "a restarted controller keeps the fallback it had reached"
    )


def test_a_pending_write_is_one_tag_emptied_once_the_state_is_written() -> None:
    before = PoolMemory(last_desired=2)
    intent = before.evolve(pending=PendingWrite(Action.SCALE_OUT, 2, 5, T))
    to_set, to_remove = tag_changes(intent, memory_to_tags(before))
    assert (to_set, to_remove) == ({PENDING_WRITE: "scale_out 2 to 5 2025-11-21T04:40:00Z"}, [])
    assert memory_from_tags(memory_to_tags(intent)).pending == intent.pending
    written = tags_after(memory_to_tags(before), to_set, to_remove)
    # After UpdateService: the new state, and the intent emptied, in one TagResource (no
    # UntagResource); an empty intent is none, and is not written again.
    done = before.evolve(last_desired=5)
    to_set, to_remove = tag_changes(done, written)
    assert (to_set, to_remove) == ({LAST_DESIRED: "5", PENDING_WRITE: ""}, [])
    settled = tags_after(written, to_set, to_remove)
    assert memory_from_tags(settled).pending is None
    assert tag_changes(done, settled) == ({}, [])
    for garbage in ("scale_out 2 5 2025-11-21T04:40:00Z", "grow 2 to 5 2025-11-21T04:40:00Z"):
        assert memory_from_tags({PENDING_WRITE: garbage}).pending is None


def test_a_drain_survives_a_restart_whatever_its_number_of_workers() -> None:
    # Ten workers named as the README asks (celery@<task id>): more than one tag holds.
    workers = tuple(f"celery@{index:032x}" for index in range(10))
    drain = Drain(current=12, desired=2, started=T - 60, workers=workers)
    tags = memory_to_tags(PoolMemory(drain=drain))
    assert tags[DRAIN] == "12 to 2 2025-11-21T04:39:00Z"
    assert all(len(value) <= 256 for value in tags.values())
    assert f"{DRAIN_WORKERS}-2" in tags
    assert memory_from_tags(tags).drain == drain
    removing = Drain(12, 2, T - 60, workers[:1], removing=T)
    assert memory_from_tags(memory_to_tags(PoolMemory(drain=removing))).drain == removing
    # Over: every drain tag goes, the extra ones included.
    to_set, to_remove = tag_changes(PoolMemory(), tags)
    assert (to_set, sorted(to_remove)) == ({}, sorted(tags))


def test_a_drain_tag_that_does_not_parse_is_ignored() -> None:
    for header in ("12 to", "x to 2 2025-11-21T04:39:00Z", "12 to 2 yesterday"):
        tags = {DRAIN: header, DRAIN_WORKERS: "celery@a"}
        assert memory_from_tags(tags).drain is None
    assert memory_from_tags({DRAIN: "12 to 2 2025-11-21T04:39:00Z"}).drain is None
