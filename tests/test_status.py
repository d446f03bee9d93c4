"""`celery-scaler status` from a service's tags: the cooldowns each policy counts (pure)."""

from __future__ import annotations

from typing import Any

from celery_scaler.core.conditions import note_conditions
from celery_scaler.core.model import Drain, PoolMemory, ScaleOutCooldown, ServiceObservation
from celery_scaler.core.state import memory_to_tags
from celery_scaler.core.status import pool_status
from tests.helpers import design_pool

NOW = 1_763_700_000.0  # a whole second, as tags keep them
STARTED = PoolMemory(
    scale_out_cooldown=ScaleOutCooldown(NOW - 30, 1), scale_in_cooldown_started=NOW - 100
)


def cooldowns(memory: PoolMemory, **changes: Any) -> dict[str, float]:
    service = ServiceObservation(
        desired=3, running=3, pending=0, deploying=False, tags=memory_to_tags(memory)
    )
    return pool_status(design_pool(**changes), service, NOW).cooldowns_left


def test_one_policy_shows_each_cooldown_once() -> None:
    # DESIGN's pool: scale-out cooldown 60s, scale-in 300s.
    assert cooldowns(STARTED) == {"scale_out": 30.0, "scale_in": 200.0}
    assert cooldowns(PoolMemory()) == {}


def test_policies_that_count_a_cooldown_differently_are_shown_each() -> None:
    latency = {
        "name": "latency",
        "metric": "queue_latency_seconds",
        "targetTracking": {"targetValue": 30, "scaleOutCooldown": "120s"},
    }
    # Scale-out: 60s for the pool's own, 120s for latency; scale-in: 300s for both.
    assert cooldowns(STARTED, policies=[latency]) == {
        "default/scale_out": 30.0,
        "latency/scale_out": 90.0,
        "scale_in": 200.0,
    }


def test_a_policy_that_never_scales_in_shows_no_scale_in_cooldown() -> None:
    burst = {
        "name": "burst",
        "metric": "queue_depth",
        "scaleOut": {
            "threshold": 100,
            "cooldown": "60s",
            "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 5}],
        },
    }
    assert cooldowns(STARTED, policies=[burst]) == {"scale_out": 30.0, "scale_in": 200.0}


def test_a_drain_in_progress_shows_with_its_workers() -> None:
    drain = Drain(current=3, desired=2, started=NOW - 40, workers=("celery@a",))
    memory, _ = note_conditions(PoolMemory(drain=drain), {}, NOW - 40)
    service = ServiceObservation(3, 3, 0, False, tags=memory_to_tags(memory))
    status = pool_status(design_pool(), service, NOW)
    assert status.conditions["Draining"] is True
    assert status.drain == {
        "from": 3,
        "to": 2,
        "since": NOW - 40,
        "workers": ["celery@a"],
        "phase": "draining",
    }
