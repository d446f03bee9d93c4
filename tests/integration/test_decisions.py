"""Scaling decisions through the real path: the CLI or a Reconciler with the real adapters,
real Redis and the local AWS API (docs/semantics.md, docs/faults.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import ServiceObservation
from celery_scaler.core.ports import ServiceClient
from celery_scaler.core.state import CONDITIONS, LAST_DESIRED, PENDING_WRITE
from celery_scaler.engine.reconcile import PoolResult
from celery_scaler.local.aws_api import LocalAws
from tests import aws_calls
from tests.helpers import desired_count, json_lines, pool_config, publish, run, write

pytestmark = pytest.mark.integration

NO_COOLDOWN_IN = {
    "threshold": 0,
    "cooldown": 0,
    "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
}
"""Scale in by 1 on an empty queue, at once."""


def reconcile_once(path: Path) -> dict[str, Any]:
    """`celery-scaler reconcile --once --output json`: the pool's line."""
    result = run("reconcile", "--once", "--output", "json", "--config", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = json_lines(result.stdout)
    return line


def service_tags(aws: LocalAws, cluster: str) -> dict[str, str]:
    ecs = aws.client("ecs")
    (service,) = ecs.describe_services(cluster=cluster, services=["workers"])["services"]
    tags = ecs.list_tags_for_resource(resourceArn=service["serviceArn"])["tags"]
    return {tag["key"]: tag["value"] for tag in tags}


def set_count(aws: LocalAws, cluster: str, count: int) -> None:
    """A person (or another tool) setting the desired count."""
    aws.client("ecs").update_service(cluster=cluster, service="workers", desiredCount=count)


# --- 7a: a count lowered by hand inside a scale-out cooldown ------------------------------


def test_a_count_lowered_by_hand_in_a_scale_out_cooldown_is_scaled_out_again(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    publish(redis_url, queue, 30)  # 30 ≥ 5, offset 25: the +3 step; cooldown 300s
    path = write(tmp_path, pool_config(redis_url, cluster, queue, control_exchange=unique))
    first = reconcile_once(path)
    assert (first["action"], first["desired"], first["applied"]) == ("scale_out", 5, True)

    set_count(aws, cluster, 2)  # someone removes the 3 tasks, 30 messages still wait
    second = reconcile_once(path)
    assert (second["action"], second["current"], second["desired"], second["applied"]) == (
        "scale_out",
        2,
        5,
        True,
    ), second["reason"]
    assert second["events"] == [
        "desiredCount changed outside the controller: 5 → 2; taken as current, scale-in "
        "cooldown started; the scale-out cooldown now counts 0 added, not 3"
    ]
    assert desired_count(aws, cluster) == 5


# --- 7b: above maxCapacity while the fallback applies --------------------------------------


def test_a_failing_pool_above_max_capacity_is_brought_down_to_it(
    tmp_path: Path, aws: LocalAws, unique: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=8)
    # Nothing listens on port 1: the pass fails, and the fallback applies at once.
    text = pool_config(
        "redis://127.0.0.1:1/0",
        cluster,
        "q",
        maxCapacity=6,
        fallback={"capacity": 3, "failureThreshold": 1},
    )
    line = reconcile_once(write(tmp_path, text))
    assert line["error"]
    assert (line["action"], line["current"], line["desired"], line["applied"]) == (
        "scale_in",
        8,
        6,
        True,
    ), line["reason"]
    assert str(line["reason"]).startswith(
        "fallback after 1 failed passes: 8 is above maxCapacity: 8 → 6 "
        "(fallback.capacity 3 is not above it): "
    )
    assert desired_count(aws, cluster) == 6


# --- 7d: a write whose state tags were never written ----------------------------------------


@dataclass
class StopsAfterUpdateService:
    """The real ECS adapter, except that the tag write right after an UpdateService fails
    once: a controller that stopped between the two."""

    inner: ServiceClient
    armed: bool = False

    def describe(self, cluster: str, service: str) -> ServiceObservation:
        return self.inner.describe(cluster, service)

    def describe_many(
        self, cluster: str, services: Sequence[str]
    ) -> Mapping[str, ServiceObservation | AdapterError]:
        return self.inner.describe_many(cluster, services)

    def set_desired_count(self, cluster: str, service: str, count: int) -> None:
        self.inner.set_desired_count(cluster, service, count)
        self.armed = True

    def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None:
        if self.armed:
            self.armed = False
            raise AdapterError("ECS TagResource: the controller stopped before this write")
        self.inner.write_tags(arn, tags, remove)


def test_a_write_whose_state_was_not_recorded_is_not_an_external_change(
    aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    config = parse_config(
        pool_config(redis_url, cluster, queue, control_exchange=unique, minCapacity=2), "test"
    )
    t0 = time.time()

    def one_pass(now: float, *, stops: bool = False) -> PoolResult:
        """A pass of a new controller process (nothing remembered but the tags)."""
        reconciler = build(config)
        if stops:
            reconciler.ecs = StopsAfterUpdateService(reconciler.ecs)
        (result,) = reconciler.reconcile(now).results
        return result

    quiet = one_pass(t0)  # an empty queue at minCapacity: the count is recorded
    assert (quiet.action, service_tags(aws, cluster)[LAST_DESIRED]) == ("hold", "2")

    publish(redis_url, queue, 30)
    crashed = one_pass(t0 + 15, stops=True)
    assert (crashed.action, crashed.desired, crashed.applied) == ("scale_out", 5, True)
    assert "the controller stopped before this write" in str(crashed.error)
    left = service_tags(aws, cluster)
    assert (left[LAST_DESIRED], left[PENDING_WRITE].split()[:4]) == (
        "2",
        ["scale_out", "2", "to", "5"],
    )

    # The next controller: its own write, with the cooldown it started (+3 of +3 added).
    after = one_pass(t0 + 30)
    assert after.events == ()
    assert (after.action, after.current, after.desired) == ("hold", 5, 5)
    assert "3 already added in cooldown" in after.reason
    tags = service_tags(aws, cluster)
    assert (tags[LAST_DESIRED], tags.get(PENDING_WRITE, "")) == ("5", "")

    # A real change by someone else after such a stop is still one: past the cooldown the
    # controller writes 5 → 8 and stops again, then a person sets 6.
    again = one_pass(t0 + 400, stops=True)
    assert (again.action, again.desired, again.applied) == ("scale_out", 8, True)
    set_count(aws, cluster, 6)
    changed = one_pass(t0 + 415)
    assert changed.events == (
        "desiredCount changed outside the controller: 5 → 6; taken as current, "
        "scale-in cooldown started",
    )
    assert service_tags(aws, cluster).get(PENDING_WRITE, "") == ""


def test_a_scaling_action_is_three_ecs_writes(
    aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    config = parse_config(pool_config(redis_url, cluster, queue, control_exchange=unique), "test")
    publish(redis_url, queue, 30)
    since = aws_calls.mark()
    (result,) = build(config).reconcile(time.time()).results
    assert (result.action, result.desired, result.applied) == ("scale_out", 5, True)
    writes = [
        aws_calls.operation_of(entry)
        for entry in aws_calls.entries(since)
        if aws_calls.operation_of(entry) in {"TagResource", "UntagResource", "UpdateService"}
        and cluster in aws_calls.body_of(entry)
    ]
    # The intent, the count, then the state with the intent emptied in the same request.
    assert writes == ["TagResource", "UpdateService", "TagResource"]
    tags = service_tags(aws, cluster)
    assert (tags[LAST_DESIRED], tags[PENDING_WRITE]) == ("5", "")


# --- 8: workers that do not answer inspect ---------------------------------------------------


def test_unanswered_workers_do_not_hold_a_broker_only_pool_without_safe_scale_in(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)  # 3 running, no worker answers
    text = pool_config(
        redis_url,
        cluster,
        queue,
        control_exchange=unique,
        safeScaleIn=False,
        # Drained, the scale-in would wait for a worker to drain: none answers.
        drainScaleIn=False,
        scaleIn=NO_COOLDOWN_IN,
    )
    line = reconcile_once(write(tmp_path, text))
    assert (line["action"], line["desired"], line["applied"]) == ("scale_in", 2, True), line
    assert line["observed"]["unanswered_workers"] == 3
    assert line["conditions"] == []
    assert desired_count(aws, cluster) == 2


def test_unanswered_workers_hold_scale_in_visibly_and_loudly_once_it_lasts(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    from tests.workers import start_workers

    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    # safeScaleIn on (its default): the floor of busy workers needs every worker's answer.
    path = write(
        tmp_path,
        pool_config(redis_url, cluster, queue, control_exchange=unique, scaleIn=NO_COOLDOWN_IN),
    )
    with start_workers(redis_url, 1, [queue], control_exchange=unique):
        line = reconcile_once(path)  # 2 tasks run; 1 worker answers
        assert (line["action"], line["desired"]) == ("hold", 2)
        assert "only 1 of 2 running workers answered inspect" in str(line["reason"])
        assert line["conditions"] == ["WorkersUnreachable"]
        assert line["observed"]["unanswered_workers"] == 1
        (event,) = line["events"]
        assert event.startswith("WorkersUnreachable: only 1 of 2 running workers answered")
        assert line["warnings"] == []

        status = run("status", "--output", "json", "--config", str(path))
        assert json.loads(status.stdout)["conditions"]["WorkersUnreachable"] is True

        # Held for a day (as the tag says, after any restart): every pass warns, and the
        # count still holds; the warning fails nothing (exit 0, no error).
        day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
        arn = aws.client("ecs").describe_services(cluster=cluster, services=["workers"])
        aws.client("ecs").tag_resource(
            resourceArn=arn["services"][0]["serviceArn"],
            tags=[{"key": CONDITIONS, "value": f"WorkersUnreachable={day_ago}"}],
        )
        result = run("reconcile", "--once", "--output", "json", "--config", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        (last,) = json_lines(result.stdout)
        line = dict(last)
        (warning,) = line["warnings"]
        assert warning.startswith("WorkersUnreachable has held for 864")
        assert "longer than 300s: only 1 of 2 running workers answered inspect" in warning
        assert (line["action"], line["desired"], line["error"]) == ("hold", 2, None)
        assert line["events"] == []
        logged = [json.loads(entry) for entry in result.stderr.splitlines()]
        (pool_line,) = [entry for entry in logged if entry["event"] == "pool_reconciled"]
        assert pool_line["level"] == "warning"
    assert desired_count(aws, cluster) == 2


# --- several policies: the second policy's metric scales the pool out -------------------


def test_a_pool_with_two_policies_scales_out_on_the_second_and_the_line_names_it(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    publish(redis_url, queue, 30)  # 30 waiting: under the depth policy's 100
    per_task = {
        "name": "per-task",
        "metric": "backlog_per_task",
        "targetTracking": {"targetValue": 5},
    }
    text = pool_config(
        redis_url,
        cluster,
        queue,
        control_exchange=unique,
        scaleOut={
            "threshold": 100,
            "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
        },
        policies=[per_task],
    )
    line = reconcile_once(write(tmp_path, text))
    # 30 messages over 2 tasks: 15 a task, 3 times the target: ceil(2 x 15 / 5) = 6.
    assert (line["action"], line["current"], line["desired"], line["applied"]) == (
        "scale_out",
        2,
        6,
        True,
    ), line["reason"]
    assert (line["policy"], line["metric"], line["value"]) == ("per-task", "backlog_per_task", 15)
    assert line["reason"] == (
        "per-task: backlog_per_task 15 > target 5 (ceil(2 * 15 / 5) = 6): 2 → 6"
    )
    assert desired_count(aws, cluster) == 6
    assert service_tags(aws, cluster)[LAST_DESIRED] == "6"
