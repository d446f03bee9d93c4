"""Conditions are remembered since they began, announced once, and kept on the service."""

from __future__ import annotations

from dataclasses import replace

import pytest

from celery_scaler.core.conditions import Condition, note_conditions, observed_conditions
from celery_scaler.core.model import BrokerObservation, Observation, PoolMemory, WorkerSnapshot
from celery_scaler.core.state import CONDITIONS, memory_from_tags, memory_to_tags
from celery_scaler.core.status import pool_status
from tests.helpers import design_pool, observation

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


def busy(name: str, reserved: int, concurrency: int = 1) -> WorkerSnapshot:
    """A worker running a task in every slot, holding `reserved` prefetched messages."""
    return WorkerSnapshot(
        name=name,
        queues=frozenset({"q"}),
        active=concurrency,
        reserved=reserved,
        scheduled=0,
        revoked=0,
        concurrency=concurrency,
        prefetch_count=4 * concurrency,
    )


def test_prefetch_hoarding_names_the_workers_and_the_settings() -> None:
    obs = observation([busy("w1@h", 4), busy("w2@h", 3), busy("w3@h", 1)], {"q": 0})
    held = observed_conditions(obs)
    assert set(held) == {Condition.PREFETCH_HOARDING}
    sentence = held[Condition.PREFETCH_HOARDING]
    assert sentence.startswith("8 prefetched tasks wait on workers busy in every slot")
    assert "w1@h holds 4 for 1 slot, prefetch_count 4, w2@h holds 3 for 1 slot" in sentence
    assert "w3@h" not in sentence, "one per slot is not hoarding"
    assert "worker_prefetch_multiplier = 1 and task_acks_late = True" in sentence
    assert "worker_disable_prefetch = True" in sentence


def test_prefetch_hoarding_names_a_few_workers_and_counts_the_rest() -> None:
    workers = [busy(f"w{number}@h", 2) for number in range(5)]
    sentence = observed_conditions(observation(workers, {"q": 0}))[Condition.PREFETCH_HOARDING]
    assert "w2@h holds 2 for 1 slot, prefetch_count 4 and 2 more)" in sentence
    assert "w3@h" not in sentence


@pytest.mark.parametrize(
    "obs",
    [
        observation([busy("w1@h", 4)], {"q": 1}),  # the queue still shows work
        observation([busy("w1@h", 4, concurrency=4)], {"q": 0}),  # one per slot
        observation(None, {"q": 0}),  # inspect failed
        Observation(broker=None, workers=(busy("w1@h", 4),), service=None),
    ],
)
def test_no_prefetch_hoarding(obs: Observation) -> None:
    assert Condition.PREFETCH_HOARDING not in observed_conditions(obs)


def test_prefetch_hoarding_is_announced_once_and_kept_for_status() -> None:
    hoarding = observation([busy("w1@h", 4)], {"q": 0}, desired=1)
    memory, events = note_conditions(PoolMemory(), observed_conditions(hoarding), now=100.0)
    (event,) = events
    assert event.startswith("PrefetchHoarding: 4 prefetched tasks")
    assert hoarding.service is not None
    service = replace(hoarding.service, tags=memory_to_tags(memory))
    status = pool_status(design_pool(), service, 110.0)
    assert status.conditions[Condition.PREFETCH_HOARDING] is True

    memory, events = note_conditions(memory, observed_conditions(hoarding), now=115.0)
    assert events == ()

    drained = observation([busy("w1@h", 0)], {"q": 0}, desired=1)
    memory, events = note_conditions(memory, observed_conditions(drained), now=130.0)
    assert events == ("PrefetchHoarding cleared",)


def broker_observation(**figures: object) -> Observation:
    broker = BrokerObservation(queue_depth=0, per_queue={"q": 0, "r": 0}, **figures)  # type: ignore[arg-type]
    return replace(observation([], {"q": 0}), broker=broker)


def test_clock_skew_names_the_queue_and_the_seconds() -> None:
    held = observed_conditions(broker_observation(per_queue_skew={"q": 300.4}))
    assert set(held) == {Condition.CLOCK_SKEW}
    assert "'q' 300s ahead" in held[Condition.CLOCK_SKEW]
    assert "queue_latency_seconds are unknown" in held[Condition.CLOCK_SKEW]


def test_queue_missing_names_the_queues() -> None:
    held = observed_conditions(broker_observation(missing=frozenset({"r", "q"})))
    assert set(held) == {Condition.QUEUE_MISSING}
    assert held[Condition.QUEUE_MISSING].startswith("the broker has no queue 'q', 'r': ")


def test_a_healthy_broker_shows_no_condition() -> None:
    assert observed_conditions(broker_observation(per_queue_unstamped={"q": 3})) == {}
