"""The report's replay: the controller's own pass over recorded history (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from celery_scaler.analysis.replay import (
    DAY,
    HOUR,
    ReportError,
    Series,
    choose_period,
    history_queries,
    minute_resolution,
    replay,
    report_window,
    summarize_capacity,
)
from celery_scaler.core.config import ControllerSpec, WorkerPool
from celery_scaler.core.model import Action
from tests.helpers import T0, design_pool, history


def capacities(values: list[float | None], **kwargs: Any) -> list[int]:
    report = replay(design_pool(), history(values), **kwargs)
    return [step.capacity for step in report.steps]


# --------------------------------------------------------------------------- decisions


def test_cooldowns_run_on_the_replayed_capacity() -> None:
    # The policy's worked example (AWS's scale-out cooldown): +1 at 15s starts a 60s
    # cooldown; within it, +2 counts the 1 already added and adds 1 more; once it has
    # run out, a scale-in of 1; the 300s scale-in cooldown then holds the next one.
    values: list[float | None] = [5, 15, 15, 15, 25, 1, 1, 1]
    assert capacities(values, initial=1) == [1, 2, 2, 2, 3, 2, 2, 2]
    report = replay(design_pool(), history(values), initial=1)
    assert [
        (s.time - T0, s.decision.current, s.decision.desired) for s in report.actions if s.decision
    ] == [
        (15, 1, 2),
        (60, 2, 3),
        (75, 3, 2),
    ]
    in_cooldown = report.steps[6].decision
    assert in_cooldown is not None
    assert "scale-in cooldown" in in_cooldown.reason
    assert report.actions[0].decision is not None
    assert report.actions[0].decision.step == "step [0, 10) → +1"


def test_clamped_to_max_and_min_capacity() -> None:
    assert capacities([40, 40], initial=19) == [20, 20]
    assert capacities([0], initial=1) == [1]


def test_gap_holds_and_never_scales_in() -> None:
    # Every datapoint says scale in; the periods without one must not.
    values: list[float | None] = [0, None, None, None, None, None, None, None, None, None]
    values += [None] * 20 + [0]  # 300s after the first scale-in, the next may happen
    report = replay(design_pool(), history(values), initial=5)
    assert [(s.time - T0, s.capacity) for s in report.actions] == [(0, 4), (450, 3)]
    assert all(step.decision is None for step in report.steps[1:30])
    assert [(gap.start - T0, gap.end - T0) for gap in report.gaps] == [(15, 450)]
    assert any("missing" in note for note in report.notes)


def test_gap_in_a_scale_out_holds_too() -> None:
    report = replay(design_pool(), history([25, None, None, None, None, 25]), initial=2)
    assert [step.capacity for step in report.steps] == [4, 4, 4, 4, 4, 6]


def test_starts_from_the_real_count_and_sets_it_beside() -> None:
    report = replay(design_pool(), history([5, 5, 25, 5], real=[3, 3, 3, 4]))
    assert report.initial == 3
    assert report.real_source == "CeleryMetrics current_capacity"
    assert [(s.capacity, s.real) for s in report.steps] == [(3, 3), (3, 3), (5, 3), (5, 4)]
    assert report.real is not None
    assert report.real.capacity_hours == pytest.approx((3 * 45 + 4 * 15) / HOUR)
    assert report.replayed.capacity_hours == pytest.approx((3 * 30 + 5 * 30) / HOUR)


def test_without_a_real_count_it_starts_at_min_capacity() -> None:
    report = replay(design_pool(), history([5]))
    assert report.initial == 1
    assert report.real is None
    assert "minCapacity" in report.notes[0]


def test_time_beyond_each_threshold() -> None:
    report = replay(design_pool(), history([12, 12, None, 12, 5, 1, 1, 1], period=60))
    out, scale_in = report.thresholds
    assert (out.policy, out.seconds, out.longest_seconds) == ("scaleOut", 180, 120)
    assert (scale_in.policy, scale_in.seconds, scale_in.longest_seconds) == ("scaleIn", 180, 180)


def test_time_at_max_and_min() -> None:
    summary = summarize_capacity([(0, 1.0), (60, 20.0), (180, None), (240, 20.0)], 300, 1, 20)
    assert summary.seconds_at_min == 60
    assert summary.seconds_at_max == 120 + 60
    assert summary.covered_seconds == 240
    assert summary.capacity_hours == pytest.approx((60 + 20 * 180) / HOUR)
    assert summary.changes == 1


def test_replayed_actions_are_the_controllers_hold_reasons() -> None:
    report = replay(design_pool(), history([5]), initial=3)
    decision = report.steps[0].decision
    assert decision is not None
    assert decision.action is Action.HOLD
    assert decision.reason == "backlog_per_task 5 is within thresholds: holding at 3"


# --------------------------------------------------------------------------- CloudWatch rules


@pytest.mark.parametrize(
    ("interval", "age", "period"),
    [
        (15, HOUR, 20),  # high resolution, 1, 5, 10, 20 or 30 s: the first >= the interval
        (1, HOUR, 1),
        (5, 2 * HOUR, 5),
        (30, HOUR, 30),
        (45, HOUR, 60),
        (90, HOUR, 120),  # else a multiple of 60
        (15, 3 * HOUR + 1, 60),  # sub-minute data is kept 3 hours
        (15, 15 * DAY, 60),
        (15, 15 * DAY + 1, 300),  # 1-minute data 15 days
        (400, 20 * DAY, 600),
        (15, 63 * DAY + 1, 3600),  # 5-minute data 63 days, then hours
        (15, 455 * DAY, 3600),
    ],
)
def test_period_follows_retention(interval: float, age: float, period: int) -> None:
    now = T0
    assert choose_period(interval, now - age, now) == period


def test_older_than_retention_is_an_error() -> None:
    with pytest.raises(ReportError, match="455 days"):
        choose_period(15, T0 - 456 * DAY, T0)


def test_standard_resolution_data_is_recognised() -> None:
    assert minute_resolution(Series(((T0, 1.0), (T0 + 60, 1.0), (T0 + 180, 2.0))), 20)
    assert not minute_resolution(Series(((T0, 1.0), (T0 + 20, 1.0))), 20)
    assert not minute_resolution(Series(((T0, 1.0), (T0 + 60, 1.0))), 60)


# --------------------------------------------------------------------------- the window


def test_window_defaults_to_a_day_and_takes_since() -> None:
    assert report_window(None, None, None, T0) == (T0 - DAY, T0)
    assert report_window("90m", None, None, T0) == (T0 - 5400, T0)


def test_window_from_start_and_end() -> None:
    # Naive times are UTC.
    assert report_window(None, "2023-11-14T22:00:00Z", "2023-11-14T22:10:00", T0) == (
        T0 - 13 * 60,
        T0 - 3 * 60,
    )
    assert report_window(None, "2023-11-14T23:00:00+01:00", None, T0) == (T0 - 13 * 60, T0)
    assert report_window(None, str(T0 - 100), str(T0 + 100), T0) == (T0 - 100, T0)


@pytest.mark.parametrize(
    ("since", "start", "end", "message"),
    [
        ("24h", "2023-11-14T00:00:00Z", None, "not both"),
        (None, None, "2023-11-14T00:00:00Z", "--end needs --start"),
        (None, "yesterday", None, "'yesterday' is not a timestamp"),
        (None, "2023-11-14T22:10:00Z", "2023-11-14T22:00:00Z", "before"),
        ("soon", None, None, "expected a duration"),
        ("0s", None, None, "longer than 0s"),
    ],
)
def test_window_errors(since: str | None, start: str | None, end: str | None, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        report_window(since, start, end, T0)


# --------------------------------------------------------------------------- several policies


def latency_pool() -> WorkerPool:
    """DESIGN's backlog steps and a target tracking policy on latency (no cooldowns)."""
    tracking = {"targetValue": 30, "scaleOutCooldown": "0s", "scaleInCooldown": "0s"}
    return design_pool(
        policies=[
            {"name": "latency", "metric": "queue_latency_seconds", "targetTracking": tracking}
        ]
    )


def test_each_policys_metric_is_read_once() -> None:
    queries = history_queries(latency_pool(), ControllerSpec())
    assert [(q.id, q.name, q.statistic) for q in queries][:2] == [
        ("metric", "backlog_per_task", "Average"),
        ("metric1", "queue_latency_seconds", "Average"),
    ]


def test_a_pool_with_two_policies_is_replayed_on_both_metrics() -> None:
    backlog = history([5, 5, 5, None, 5])  # within the backlog's thresholds throughout
    latency = Series(((T0, 10), (T0 + 15, 90), (T0 + 30, 20), (T0 + 45, 90)))
    report = replay(latency_pool(), replace(backlog, others={"queue_latency_seconds": latency}))
    # 10 asks for ceil(1 x 10 / 30) = 1, the count already; 90 scales out to
    # ceil(1 x 90 / 30) = 3; 20 would take it to 2, but the backlog's policy does not
    # agree; at 45 s the backlog is missing: a gap; at 60 s latency is: a gap too.
    assert [s.capacity for s in report.steps] == [1, 3, 3, 3, 3]
    assert [s.decision is None for s in report.steps] == [False, False, False, True, True]
    (action,) = report.actions
    assert action.decision is not None
    assert action.decision.policy == "latency"
    assert action.decision.reason.startswith("latency: queue_latency_seconds 90 > target 30")
    assert [(t.policy, t.comparison, t.threshold, t.seconds) for t in report.thresholds] == [
        ("scaleOut", "≥", 10, 0),
        ("scaleIn", "≤", 2, 0),
        ("latency targetTracking (queue_latency_seconds)", ">", 30, 30),
        ("latency targetTracking (queue_latency_seconds)", "<", 27, 30),
    ]


# --------------------------------------------------------------------------- fallback, schedules


def test_a_gap_is_a_failed_pass_and_the_fallback_applies_after_the_threshold() -> None:
    pool = design_pool(fallback={"capacity": 4, "failureThreshold": 2})
    report = replay(pool, history([5, None, None, None, 5]), initial=2)
    assert [step.capacity for step in report.steps] == [2, 2, 4, 4, 4]
    raised = report.steps[2].decision
    assert raised is not None
    assert raised.reason.startswith("fallback after 2 failed passes: ")
    assert any("applies the fallback (currentReplicasIfHigher)" in note for note in report.notes)
    # Without a fallback a gap holds and is no pass at all, as before.
    held = replay(design_pool(), history([5, None, None, None, 5]), initial=2)
    assert [step.decision is None for step in held.steps] == [False, True, True, True, False]


def test_scheduled_bounds_apply_in_the_replay_and_in_its_summary() -> None:
    # From T0 + 60 s on, a schedule raises minCapacity to 5.
    raise_at = "at(2023-11-14T22:14:00)"
    pool = design_pool(schedules=[{"name": "busy", "schedule": raise_at, "minCapacity": 5}])
    report = replay(pool, history([5] * 8), initial=2)
    assert [step.capacity for step in report.steps] == [2, 2, 2, 2, 5, 5, 5, 5]
    # At 2 the count is above the pool's own minCapacity 1; at 5, from T0 + 60 s, it is at
    # the schedule's: four periods of 15 s at the minimum.
    assert report.replayed.seconds_at_min == 60
    assert any("follow the schedules (busy)" in note for note in report.notes)
