"""Scheduled actions (core/schedules.py) against AWS's scheduled scaling and EventBridge's cron.

[UG-SCHED] Application Auto Scaling User Guide, "How scheduled scaling works": an action
           sets MinCapacity and/or MaxCapacity at its time; "does not keep track of previous
           values and revert back to those previous values after the end time".
[UG-CRON]  "Schedule recurring scaling actions using cron expressions": six fields, Minutes
           Hours Day_of_Month Month Day_of_Week Year; `30 6 ? * MON *` every Monday 06:30.
[EB-CRON]  Amazon EventBridge, cron expressions reference: `?` in one day field, `L`, `W`,
           `#`, days of the week 1-7 from SUN.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from celery_scaler.core.schedules import (
    Bounds,
    ScheduledAction,
    bounds_at,
    last_fired,
    next_action,
    next_fires,
    parse_expression,
)


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def shown(time: float | None) -> str | None:
    return None if time is None else datetime.fromtimestamp(time, UTC).strftime("%Y-%m-%d %H:%M")


def action(
    schedule: str,
    low: int | None = None,
    high: int | None = None,
    *,
    name: str = "a",
    timezone: str = "UTC",
) -> ScheduledAction:
    return ScheduledAction(name, parse_expression(schedule), timezone, low, high)


WEDNESDAY = utc("2026-03-04T10:00:00")


# --------------------------------------------------------------------------- when it fires


@pytest.mark.parametrize(
    ("schedule", "timezone", "last", "following"),
    [
        # [UG-CRON]: every weekday at 08:00, here in Paris (UTC+1 in March before the 29th).
        ("cron(0 8 ? * MON-FRI *)", "Europe/Paris", "2026-03-04 07:00", "2026-03-05 07:00"),
        ("cron(30 6 ? * MON *)", "UTC", "2026-03-02 06:30", "2026-03-09 06:30"),
        # Days of the week count from Sunday = 1 [EB-CRON]: 2 is Monday.
        ("cron(30 6 ? * 2 *)", "UTC", "2026-03-02 06:30", "2026-03-09 06:30"),
        ("cron(0/15 * * * ? *)", "UTC", "2026-03-04 10:00", "2026-03-04 10:15"),
        ("cron(0 8 L * ? *)", "UTC", "2026-02-28 08:00", "2026-03-31 08:00"),
        ("cron(0 8 15W * ? *)", "UTC", "2026-02-16 08:00", "2026-03-16 08:00"),  # 15th: Sunday
        ("cron(0 8 ? * 6L *)", "UTC", "2026-02-27 08:00", "2026-03-27 08:00"),  # last Friday
        ("cron(0 8 ? * 2#1 *)", "UTC", "2026-03-02 08:00", "2026-04-06 08:00"),  # first Monday
        ("cron(0 8 29 2 ? *)", "UTC", "2024-02-29 08:00", "2028-02-29 08:00"),
        ("cron(0 8 * * ? 2020)", "UTC", "2020-12-31 08:00", None),
        ("at(2026-03-04T09:00:00)", "America/New_York", None, "2026-03-04 14:00"),
        ("at(2026-03-04T09:00:00)", "UTC", "2026-03-04 09:00", None),
    ],
)
def test_when_an_action_fires(
    schedule: str, timezone: str, last: str | None, following: str | None
) -> None:
    scheduled = action(schedule, 1, timezone=timezone)
    assert shown(last_fired(scheduled, WEDNESDAY)) == last
    assert shown(next_fires(scheduled, WEDNESDAY)) == following


def test_a_time_skipped_by_daylight_saving_fires_as_if_the_clock_had_not_moved() -> None:
    # New York springs forward at 02:00 on 2026-03-08: 02:30 does not exist that day.
    nightly = action("cron(30 2 * * ? *)", 1, timezone="America/New_York")
    assert shown(next_fires(nightly, utc("2026-03-08T00:00:00"))) == "2026-03-08 07:30"
    assert shown(next_fires(nightly, utc("2026-03-09T00:00:00"))) == "2026-03-09 06:30"


def test_a_time_repeated_by_daylight_saving_fires_once() -> None:
    # New York falls back at 02:00 on 2026-11-01: 01:30 happens twice; it fires the first.
    nightly = action("cron(30 1 * * ? *)", 1, timezone="America/New_York")
    first = next_fires(nightly, utc("2026-11-01T04:00:00"))
    assert shown(first) == "2026-11-01 05:30"
    assert first is not None
    assert shown(next_fires(nightly, first)) == "2026-11-02 06:30"


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("cron(0 8 * * * *)", "exactly one of Day-of-month and Day-of-week must be '?'"),
        ("cron(0 8 ? * ? *)", "exactly one of Day-of-month and Day-of-week must be '?'"),
        ("cron(0 8 * *)", "six fields"),
        ("cron(61 8 * * ? *)", "Minutes 61 is outside 0-59"),
        ("cron(0 8 ? * FRI-MON *)", "runs backwards"),
        ("cron(0 8 ? * FUN *)", "is not one of 1-7 or SUN-SAT"),
        ("cron(0 8 30 2 ? *)", "never fires"),
        ("cron(0 8 * * ? 1969)", "Year 1969 is outside 1970-2199"),
        ("at(2026-02-30T00:00:00)", "not a real date and time"),
        ("rate(5 minutes)", "rate(...) is not supported"),
        ("0 8 * * *", "expected at(yyyy-mm-ddThh:mm:ss) or cron("),
    ],
)
def test_expressions_aws_would_refuse_or_that_never_fire_are_refused(
    schedule: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(schedule)


# --------------------------------------------------------------------------- the bounds in force

MORNING = action("cron(0 8 ? * MON-FRI *)", 5, name="business-hours")
EVENING = action("cron(0 20 ? * MON-FRI *)", 1, name="evening")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # [UG-SCHED]: the bounds an action set hold until another action sets them again.
        ("2026-03-04T10:00:00", Bounds(5, 20, "business-hours", None)),
        ("2026-03-04T21:00:00", Bounds(1, 20, "evening", None)),
        # The weekend: Friday evening's action still holds.
        ("2026-03-07T12:00:00", Bounds(1, 20, "evening", None)),
        ("2026-03-09T08:00:00", Bounds(5, 20, "business-hours", None)),
    ],
)
def test_the_latest_action_that_fired_sets_each_bound(now: str, expected: Bounds) -> None:
    assert bounds_at(1, 20, [MORNING, EVENING], utc(now)) == expected


def test_without_any_action_fired_the_pools_own_bounds_apply() -> None:
    later = action("at(2030-01-01T00:00:00)", 8, 9)
    assert bounds_at(1, 20, [later], WEDNESDAY) == Bounds(1, 20)


def test_each_bound_comes_from_the_latest_action_that_sets_it() -> None:
    ceiling = action("at(2026-03-01T00:00:00)", None, 12, name="ceiling")
    floor = action("at(2026-03-02T00:00:00)", 3, None, name="floor")
    bounds = bounds_at(1, 20, [ceiling, floor], WEDNESDAY)
    assert bounds == Bounds(3, 12, "floor", "ceiling")
    assert bounds.label("minCapacity") == "minCapacity (schedule 'floor')"
    assert bounds.scheduled == ("floor", "ceiling")


def test_actions_at_the_same_minute_apply_in_their_order() -> None:
    first = action("at(2026-03-04T08:00:00)", 4, name="first")
    second = action("at(2026-03-04T08:00:00)", 6, name="second")
    assert bounds_at(1, 20, [first, second], WEDNESDAY).min_capacity == 6
    assert bounds_at(1, 20, [second, first], WEDNESDAY).min_capacity == 4


def test_bounds_that_cross_follow_the_bound_set_last() -> None:
    high_floor = action("at(2026-03-01T00:00:00)", 10, name="high-floor")
    low_ceiling = action("at(2026-03-02T00:00:00)", None, 4, name="low-ceiling")
    assert bounds_at(1, 20, [high_floor, low_ceiling], WEDNESDAY) == Bounds(
        4, 4, "low-ceiling", "low-ceiling"
    )
    later_floor = action("at(2026-03-03T00:00:00)", 10, name="later-floor")
    assert bounds_at(1, 20, [low_ceiling, later_floor], WEDNESDAY) == Bounds(
        10, 10, "later-floor", "later-floor"
    )


def test_the_next_action_is_the_earliest_to_fire() -> None:
    upcoming = next_action([EVENING, MORNING], WEDNESDAY)
    assert upcoming is not None
    scheduled, time = upcoming
    assert (scheduled.name, shown(time)) == ("evening", "2026-03-04 20:00")
    assert next_action([action("at(2020-01-01T00:00:00)", 2)], WEDNESDAY) is None
