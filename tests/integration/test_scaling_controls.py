"""Schedules, people's pause tags, fallback behaviours and scale to zero, through the CLI on
real Redis and the local AWS API (docs/semantics.md, docs/faults.md, docs/configuration.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from celery_scaler.local.aws_api import LocalAws
from tests.helpers import desired_count, json_lines, pool_config, publish, run, write

pytestmark = pytest.mark.integration

NO_WORKERS = {"safeScaleIn": False}
"""For a scale-in on a service without real workers (the local ECS runs none here): nobody
to count as busy. (Where scale-ins drain their workers first, nobody to drain either: add
`"drainScaleIn": False` here; tests/integration/test_scale_to_zero.py has real workers.)"""

UNREACHABLE = "redis://127.0.0.1:1/0"
"""Nothing listens there: every pass on it fails to read the broker (and inspect)."""


def reconcile_once(path: Path) -> dict[str, Any]:
    """`celery-scaler reconcile --once --output json`: the pool's line."""
    result = run("reconcile", "--once", "--output", "json", "--config", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = json_lines(result.stdout)
    return line


def tag_service(aws: LocalAws, cluster: str, tags: dict[str, str]) -> None:
    """A person putting tags on the pool's service."""
    ecs = aws.client("ecs")
    (service,) = ecs.describe_services(cluster=cluster, services=["workers"])["services"]
    ecs.tag_resource(
        resourceArn=service["serviceArn"],
        tags=[{"key": key, "value": value} for key, value in tags.items()],
    )


def at(offset: float) -> str:
    """`at(...)` for now + offset seconds, in UTC."""
    when = datetime.fromtimestamp(time.time() + offset, UTC)
    return f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"


# --- scheduled actions -----------------------------------------------------------------------


def test_a_schedule_whose_window_covers_now_raises_min_capacity_and_the_pass_scales_out(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=1)
    # A window as AWS makes one: an action raising minCapacity (it fired an hour ago) and
    # one lowering it again (it fires in an hour).
    schedules = [
        {"name": "busy-hours", "schedule": at(-3600), "minCapacity": 4},
        {"name": "quiet-hours", "schedule": at(3600), "minCapacity": 1},
    ]
    path = write(tmp_path, pool_config(redis_url, cluster, queue, schedules=schedules))
    line = reconcile_once(path)
    assert (line["action"], line["current"], line["desired"], line["applied"]) == (
        "scale_out",
        1,
        4,
        True,
    ), line["reason"]
    # The empty queue's scale-in step asks for 0; the schedule's minCapacity says 4.
    assert "0 clamped to minCapacity (schedule 'busy-hours') 4" in str(line["reason"])
    assert line["bounds"] == {"min_capacity": 4, "max_capacity": 10, "schedules": ["busy-hours"]}
    assert desired_count(aws, cluster) == 4

    result = run("status", "-o", "json", "--config", str(path))
    (status,) = json_lines(result.stdout)
    assert (status["min_capacity"], status["max_capacity"]) == (4, 10)
    assert status["bounds_from"] == {"minCapacity": "busy-hours"}
    upcoming = status["next_schedule"]
    assert isinstance(upcoming, dict)
    assert (upcoming["name"], upcoming["minCapacity"]) == ("quiet-hours", 1)
    assert 0 < float(upcoming["time"]) - time.time() <= 3600
    table = run("status", "--config", str(path), env={"COLUMNS": "120"})
    assert "bounds [4, 10] (minCapacity from 'busy-hours')" in table.stdout
    assert "next schedule 'quiet-hours' in" in table.stdout


# --- pause tags ------------------------------------------------------------------------------


def test_paused_scale_in_holds_a_scale_in_and_lets_a_scale_out_through(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    tag_service(aws, cluster, {"celery-scaler.io/paused-scale-in": "true"})
    path = write(tmp_path, pool_config(redis_url, cluster, queue, **NO_WORKERS))
    held = reconcile_once(path)  # an empty queue: the scale-in table asks for 2
    assert (held["action"], held["desired"], held["applied"]) == ("hold", 3, False)
    assert str(held["reason"]).startswith(
        "scale-in paused by the tag celery-scaler.io/paused-scale-in=true: holding at 3"
    )
    publish(redis_url, queue, 8)
    out = reconcile_once(path)
    assert (out["action"], out["desired"], out["applied"]) == ("scale_out", 4, True)
    assert desired_count(aws, cluster) == 4


def test_paused_scale_out_holds_a_scale_out_and_lets_a_scale_in_through(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    tag_service(aws, cluster, {"celery-scaler.io/paused-scale-out": "true"})
    scale_in = {
        "threshold": 0,
        "cooldown": 0,
        "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
    }
    path = write(tmp_path, pool_config(redis_url, cluster, queue, scaleIn=scale_in, **NO_WORKERS))
    down = reconcile_once(path)
    assert (down["action"], down["desired"], down["applied"]) == ("scale_in", 2, True)
    publish(redis_url, queue, 8)
    held = reconcile_once(path)
    assert (held["action"], held["desired"], held["applied"]) == ("hold", 2, False)
    assert "scale-out paused by the tag celery-scaler.io/paused-scale-out=true" in str(
        held["reason"]
    )
    assert desired_count(aws, cluster) == 2


def test_paused_replicas_sets_the_count_and_holds_it(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=5)
    tag_service(aws, cluster, {"celery-scaler.io/paused-replicas": "2"})
    publish(redis_url, queue, 30)  # the policy alone would go to 8
    path = write(tmp_path, pool_config(redis_url, cluster, queue, **NO_WORKERS))
    first = reconcile_once(path)
    assert (first["action"], first["current"], first["desired"], first["applied"]) == (
        "scale_in",
        5,
        2,
        True,
    )
    assert first["reason"] == "paused by the tag celery-scaler.io/paused-replicas=2: 5 → 2"
    second = reconcile_once(path)
    assert (second["action"], second["desired"]) == ("hold", 2)
    assert desired_count(aws, cluster) == 2

    (status,) = json_lines(run("status", "-o", "json", "--config", str(path)).stdout)
    conditions = status["conditions"]
    assert isinstance(conditions, dict)
    assert conditions["Paused"] is True
    assert status["paused"] == ["celery-scaler.io/paused-replicas=2"]


# --- fallback.behavior -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fallback", "count", "desired", "words"),
    [
        ({"capacity": 3}, 1, 3, "desired is max(current 1, fallback.capacity 3) = 3"),
        ({"capacity": 3, "behavior": "static"}, 6, 3, "desired is fallback.capacity 3 (static)"),
        (
            {"capacity": 3, "behavior": "currentReplicasIfLower"},
            6,
            3,
            "desired is min(current 6, fallback.capacity 3) = 3",
        ),
        (
            {"capacity": 3, "behavior": "currentReplicasIfLower"},
            2,
            2,
            "(min(current 2, fallback.capacity 3) = 2)",
        ),
        ({"behavior": "currentReplicas"}, 6, 6, "(fallback.behavior currentReplicas)"),
    ],
)
def test_each_fallback_behavior_applies_after_failure_threshold_failed_passes(
    tmp_path: Path,
    aws: LocalAws,
    unique: str,
    fallback: dict[str, Any],
    count: int,
    desired: int,
    words: str,
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=count)
    # No workers: with the broker down inspect is down too, and safeScaleIn would hold
    # any lower count for the busy workers it cannot see (its own test is in test_policy).
    text = pool_config(
        UNREACHABLE, cluster, "q", fallback={**fallback, "failureThreshold": 2}, **NO_WORKERS
    )
    path = write(tmp_path, text)
    first = reconcile_once(path)  # 1 failed pass of 2: hold
    assert (first["action"], first["desired"], first["failures"]) == ("hold", count, 1)
    assert first["error"]
    second = reconcile_once(path)  # the failures tag carries the count over
    assert second["failures"] == 2
    assert second["desired"] == desired, second["reason"]
    assert str(second["reason"]).startswith("fallback after 2 failed passes: ")
    assert words in str(second["reason"])
    assert second["applied"] is (desired != count)
    assert desired_count(aws, cluster) == desired


# --- scale to zero ---------------------------------------------------------------------------


def test_scale_to_zero_activates_on_a_message_and_returns_to_zero_once_drained(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=0)
    text = pool_config(redis_url, cluster, queue, minCapacity=0, activation=0, **NO_WORKERS)
    path = write(tmp_path, text)
    idle = reconcile_once(path)
    assert (idle["action"], idle["desired"]) == ("hold", 0)
    assert idle["reason"] == "queue_depth 0 ≤ activation 0: holding at 0"

    publish(redis_url, queue, 1)
    woken = reconcile_once(path)
    assert (woken["action"], woken["current"], woken["desired"], woken["applied"]) == (
        "scale_out",
        0,
        1,
        True,
    )
    assert woken["reason"] == "queue_depth 1 > activation 0: 0 → 1"

    redis.Redis.from_url(redis_url).delete(queue)  # a worker took the message: drained
    back = reconcile_once(path)
    assert (back["action"], back["current"], back["desired"], back["applied"]) == (
        "scale_in",
        1,
        0,
        True,
    ), back["reason"]
    assert back["reason"] == "queue_depth 0 ≤ activation 0: 1 → 0"
    assert desired_count(aws, cluster) == 0
    assert back["bounds"] == {"min_capacity": 0, "max_capacity": 10, "schedules": []}
