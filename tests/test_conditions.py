"""Conditions are remembered since they began, announced once, and kept on the service."""

from __future__ import annotations

from celery_scaler.core.conditions import Condition, note_conditions
from celery_scaler.core.model import PoolMemory
from celery_scaler.core.state import CONDITIONS, memory_from_tags, memory_to_tags

SKEW = Condition.CLOCK_SKEW


def test_a_condition_is_announced_when_it_appears_and_when_it_clears() -> None:
    memory, events = note_conditions(PoolMemory(), {SKEW: "stamped 300s ahead"}, now=100.0)
    assert events == ("ClockSkew: stamped 300s ahead",)
    assert memory.conditions == {SKEW: 100.0}

    memory, events = note_conditions(memory, {SKEW: "stamped 290s ahead"}, now=115.0)
    assert events == (), "a condition that goes on is not announced again"
    assert memory.conditions == {SKEW: 100.0}, "it holds since it began"

    memory, events = note_conditions(memory, {}, now=130.0)
    assert events == ("ClockSkew cleared",)
    assert memory.conditions == {}


def test_conditions_survive_a_restart_through_the_service_tag() -> None:
    memory = PoolMemory(
        conditions={SKEW: 1_700_000_000.0, Condition.QUEUE_MISSING: 1_700_000_100.0}
    )
    tags = memory_to_tags(memory)
    assert tags[CONDITIONS] == "ClockSkew=2023-11-14T22:13:20Z QueueMissing=2023-11-14T22:15:00Z"
    assert memory_from_tags(tags).conditions == memory.conditions
    assert CONDITIONS not in memory_to_tags(PoolMemory()), "no condition, no tag"
    assert memory_from_tags({CONDITIONS: "garbled"}).conditions == {}
