"""The observation values: one broker read serves every pool, each pool sees its own queues."""

from __future__ import annotations

from celery_scaler.core.model import BrokerObservation


def test_a_pool_sees_only_its_own_queues_problems() -> None:
    everything = BrokerObservation(
        queue_depth=5,
        per_queue={"a": 5},
        errors={"b": "WRONGTYPE Operation against a key holding the wrong kind of value"},
        missing=frozenset({"c"}),
        per_queue_skew={"b": 20.0},
    )
    assert everything.subset(["a"]).problems() == ()
    assert everything.subset(["a"]).queue_depth == 5
    assert everything.subset(["a", "b"]).problems() == (
        "queue 'b': WRONGTYPE Operation against a key holding the wrong kind of value",
    )
    assert everything.subset(["b"]).per_queue == {}, "a queue that failed reads no depth"
    assert everything.subset(["c", "a"]).problems() == (
        "the broker has no queue 'c': not read as an empty queue",
    )


def test_a_pools_unacked_count_is_known_only_when_each_of_its_queues_is() -> None:
    everything = BrokerObservation(
        queue_depth=0, per_queue={"a": 0, "b": 0}, unacked=4, per_queue_unacked={"a": 4}
    )
    assert everything.subset(["a"]).unacked == 4
    assert everything.subset(["a", "b"]).unacked is None, "b's count is unknown, not 0"
    assert BrokerObservation(queue_depth=0, per_queue={"a": 0}).subset(["a"]).unacked is None
