"""Scheduled actions: a pool's bounds set at given times, as AWS's scheduled scaling (pure).

An Application Auto Scaling scheduled action sets the scalable target's MinCapacity,
MaxCapacity or both at its time; the values then hold until another action sets them
again (AWS "does not keep track of previous values and revert back" after an action). So
a window is two actions: one raising minCapacity at 08:00, one lowering it at 20:00.

Here that is a pure function of time (`bounds_at`): each bound in force at `now` is the
one set by the latest action that fired at or before `now` and sets that bound, else the
pool's own. Every cron occurrence in the past counts as fired (the configuration has no
creation time), and an `at(...)` fires once. No state is kept, so a restarted controller,
the report's replay and the simulator all see the same bounds at the same time.

Expressions are AWS's for Application Auto Scaling, in a time zone (UTC by default):

- `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time;
- `cron(Minutes Hours Day-of-month Month Day-of-week Year)`: EventBridge's six fields,
  with `* , - /` everywhere, `?` in one of the two day fields (it must be in one of them),
  `L` and `W` in the day of the month (`L`, `15W`, `LW`), `L` and `#` in the day of the
  week (`6L`: the month's last Friday, `2#1`: its first Monday). Days of the week run
  1-7 from Sunday (SUN-SAT); months 1-12 (JAN-DEC); years 1970-2199.

A wall-clock time that a daylight-saving change skips fires as if the clock had not
moved (02:30 on a spring-forward night is 03:30 summer time); one it repeats fires once,
the first time. Times are to the minute: a cron fires at second 0.

No I/O apart from zoneinfo's reading of the time zone database (the standard library's);
time is an argument.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIRST_YEAR, LAST_YEAR = 1970, 2199
"""The years EventBridge's cron expressions take."""

_MONTHS = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_WEEK = {**_DAYS, "L": 7}
"""`L` alone in the day of the week is its last day, Saturday (as in Quartz)."""
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_DAY_OF_MONTH = re.compile(r"^(?:(\d{1,2})W|LW|L)$")
_DAY_OF_WEEK = re.compile(r"^(\w{1,3})(?:(L)|#([1-5]))$")


@dataclass(frozen=True)
class Cron:
    """A parsed `cron(...)`: the values each field allows; one day field is None (`?`)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: frozenset[int]
    days_of_month: frozenset[int] | None
    """Plain days; None: `?`."""
    month_rules: tuple[str, ...] = ()
    """`L`, `LW`, `15W`: days that depend on the month."""
    days_of_week: frozenset[int] | None = None
    """1 (Sunday) to 7; None: `?`."""
    week_rules: tuple[tuple[int, int], ...] = ()
    """(weekday 1-7, nth 1-5, or 0 for the month's last such day)."""

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        if self.days_of_week is None:
            assert self.days_of_month is not None
            return day.day in self.days_of_month or any(
                _month_rule_day(rule, day.year, day.month) == day.day for rule in self.month_rules
            )
        weekday = _aws_weekday(day)
        return weekday in self.days_of_week or any(
            weekday == wanted and _is_nth(day, nth) for wanted, nth in self.week_rules
        )


@dataclass(frozen=True)
class At:
    """A parsed `at(...)`: one wall-clock time."""

    text: str
    when: datetime
    """Naive: read in the action's time zone."""


Expression = Cron | At


@dataclass(frozen=True)
class ScheduledAction:
    """One scheduled action of a pool: when, in which zone, and the bounds it sets."""

    name: str
    expression: Expression
    timezone: str
    min_capacity: int | None
    max_capacity: int | None


@dataclass(frozen=True)
class Bounds:
    """The bounds in force, and which scheduled action set each (None: the pool's own)."""

    min_capacity: int
    max_capacity: int
    min_from: str | None = None
    max_from: str | None = None

    def label(self, bound: str) -> str:
        """`minCapacity`, or `minCapacity (schedule 'x')` when a schedule set it."""
        source = self.min_from if bound == "minCapacity" else self.max_from
        return bound if source is None else f"{bound} (schedule {source!r})"

    @property
    def scheduled(self) -> tuple[str, ...]:
        """The schedules whose bounds are in force, in order, each once."""
        return tuple(dict.fromkeys(s for s in (self.min_from, self.max_from) if s is not None))


def parse_expression(text: str) -> Expression:
    """`at(...)` or `cron(...)` as AWS writes them; ValueError says what is wrong."""
    text = text.strip()
    at = _AT.match(text)
    if at is not None:
        try:
            return At(text, datetime.fromisoformat(at.group(1)))
        except ValueError:
            raise ValueError(f"{text!r}: not a real date and time") from None
    cron = _CRON.match(text)
    if cron is None:
        if text.startswith("rate("):
            raise ValueError(
                "rate(...) is not supported: its ticks count from when AWS created the action, "
                "which a configuration file does not have; write cron(...) or at(...)"
            )
        raise ValueError(
            f"expected at(yyyy-mm-ddThh:mm:ss) or cron(Minutes Hours Day-of-month Month "
            f"Day-of-week Year), got {text!r}"
        )
    parsed = _parse_cron(text, cron.group(1).split())
    if _next_day(parsed, date(FIRST_YEAR, 1, 1), forward=True) is None:
        raise ValueError(f"{text!r} never fires (no such day in {FIRST_YEAR}-{LAST_YEAR})")
    return parsed


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: an IANA name such as UTC, Europe/Paris, America/New_York"
        ) from None


def last_fired(action: ScheduledAction, now: float) -> float | None:
    """When the action last fired at or before `now` (epoch seconds), None if never."""
    return _last_fired(action.expression, action.timezone, int(now // 60))


def next_fires(action: ScheduledAction, now: float) -> float | None:
    """When the action next fires after `now`, None if never again."""
    expression, tz = action.expression, zone(action.timezone)
    if isinstance(expression, At):
        time = _instant(expression.when, tz)
        return time if time > now else None
    start = datetime.fromtimestamp(now, tz).date() - timedelta(days=1)
    for day in _days(expression, start, forward=True):
        times = _times_on(expression, action.timezone, day)
        index = bisect_right(times, now)
        if index < len(times):
            return times[index]
    return None


def bounds_at(
    min_capacity: int, max_capacity: int, actions: Sequence[ScheduledAction], now: float
) -> Bounds:
    """The bounds in force at `now`: each the latest fired action's that sets it, else own.

    Actions firing at the same minute apply in their order (the later one wins). Should
    the result cross (one action raised minCapacity above a maxCapacity set earlier), the
    bound set last wins and the other is moved to it, as setting it again would do.
    """
    if not actions and min_capacity <= max_capacity:
        # No schedule (most pools), asked every pass: the pool's own, nothing to search.
        return Bounds(min_capacity, max_capacity)
    # (when it fired, its order, the bound, the action's name); the pool's own never fired.
    low: tuple[float, int, int, str | None] = (float("-inf"), -1, min_capacity, None)
    high: tuple[float, int, int, str | None] = (float("-inf"), -1, max_capacity, None)
    for index, action in enumerate(actions):
        fired = last_fired(action, now)
        if fired is None:
            continue
        if action.min_capacity is not None and (fired, index) > low[:2]:
            low = (fired, index, action.min_capacity, action.name)
        if action.max_capacity is not None and (fired, index) > high[:2]:
            high = (fired, index, action.max_capacity, action.name)
    minimum, maximum = low[2], high[2]
    if minimum > maximum:
        if low[:2] > high[:2]:
            maximum, high = minimum, low
        else:
            minimum, low = maximum, high
    return Bounds(minimum, maximum, low[3], high[3])


def next_action(
    actions: Sequence[ScheduledAction], now: float
) -> tuple[ScheduledAction, float] | None:
    """The action that fires next after `now`, and when (the first in order on a tie)."""
    upcoming = [(time, i) for i, a in enumerate(actions) if (time := next_fires(a, now))]
    if not upcoming:
        return None
    time, index = min(upcoming)
    return actions[index], time


# --- evaluation ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _last_fired(expression: Expression, timezone: str, minute: int) -> float | None:
    # By the minute: a pass every few seconds (or the simulator's thousands) asks again
    # within the same minute, where the answer cannot change.
    now = minute * 60.0 + 59.999
    tz = zone(timezone)
    if isinstance(expression, At):
        time = _instant(expression.when, tz)
        return time if time <= now else None
    start = datetime.fromtimestamp(now, tz).date() + timedelta(days=1)
    for day in _days(expression, start, forward=False):
        times = _times_on(expression, timezone, day)
        index = bisect_right(times, now)
        if index:
            return times[index - 1]
    return None


@lru_cache(maxsize=4096)
def _times_on(cron: Cron, timezone: str, day: date) -> tuple[float, ...]:
    """Every firing of `cron` on a local `day`, as sorted epoch seconds."""
    tz = zone(timezone)
    return tuple(
        sorted(
            _instant(datetime(day.year, day.month, day.day, hour, minute), tz)
            for hour in cron.hours
            for minute in cron.minutes
        )
    )


def _instant(local: datetime, tz: ZoneInfo) -> float:
    # fold=0: a skipped time reads with the offset before the change (so it fires as if
    # the clock had not moved), a repeated one as its first occurrence.
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC).timestamp()


def _days(cron: Cron, start: date, *, forward: bool) -> Iterator[date]:
    """The days `cron` fires on, from `start` on (or back), within its years."""
    day: date | None = start
    while day is not None:
        day = _next_day(cron, day, forward=forward)
        if day is None:
            return
        yield day
        day = _step(day, forward)


def _next_day(cron: Cron, start: date, *, forward: bool) -> date | None:
    """The first day from `start` (inclusive) on which `cron` fires, going either way.

    Whole years and months that the expression excludes are skipped, so an expression
    that fires rarely (one year, or 29 February) is found at once.
    """
    years = sorted(cron.years, reverse=not forward)
    for year in years:
        if (forward and year < start.year) or (not forward and year > start.year):
            continue
        months = sorted(cron.months, reverse=not forward)
        for month in months:
            if year == start.year and (
                (forward and month < start.month) or (not forward and month > start.month)
            ):
                continue
            last = calendar.monthrange(year, month)[1]
            days = range(1, last + 1) if forward else range(last, 0, -1)
            for number in days:
                day = date(year, month, number)
                if (forward and day < start) or (not forward and day > start):
                    continue
                if cron.fires_on(day):
                    return day
    return None


def _step(day: date, forward: bool) -> date | None:
    try:
        return day + timedelta(days=1 if forward else -1)
    except OverflowError:
        return None


def _aws_weekday(day: date) -> int:
    """1 (Sunday) to 7 (Saturday), as EventBridge numbers them."""
    return (day.weekday() + 1) % 7 + 1


def _is_nth(day: date, nth: int) -> bool:
    """Whether `day` is its weekday's nth in the month (0: the last)."""
    if nth == 0:
        return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
    return (day.day - 1) // 7 + 1 == nth


def _month_rule_day(rule: str, year: int, month: int) -> int:
    """The day of the month `L`, `LW` or `nW` names in this month."""
    last = calendar.monthrange(year, month)[1]
    if rule == "L":
        return last
    wanted = last if rule == "LW" else min(int(rule[:-1]), last)
    weekday = date(year, month, wanted).weekday()  # Monday 0
    if weekday < 5:
        return wanted
    # The nearest weekday, never into another month (as Quartz, whose syntax this is).
    if weekday == 5:
        return wanted - 1 if wanted > 1 else wanted + 2
    return wanted + 1 if wanted < last else wanted - 2


# --- parsing ------------------------------------------------------------------------------


def _parse_cron(text: str, fields: list[str]) -> Cron:
    if len(fields) != 6:
        raise ValueError(
            f"{text!r}: a cron expression has six fields (Minutes Hours Day-of-month Month "
            f"Day-of-week Year), not {len(fields)}"
        )
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError(
            f"{text!r}: exactly one of Day-of-month and Day-of-week must be '?' (as AWS "
            "requires): write '?' in the one that does not choose the day"
        )
    days_of_month: frozenset[int] | None = None
    month_rules: tuple[str, ...] = ()
    days_of_week: frozenset[int] | None = None
    week_rules: tuple[tuple[int, int], ...] = ()
    if dom != "?":
        plain, special = _split(dom, _DAY_OF_MONTH)
        days_of_month = _values(text, "Day-of-month", plain, 1, 31) if plain else frozenset()
        for rule in special:
            if rule.endswith("W") and rule != "LW" and not 1 <= int(rule[:-1]) <= 31:
                raise ValueError(f"{text!r}: Day-of-month {rule!r}: the day lies in 1-31")
        month_rules = tuple(special)
    else:
        plain, special = _split(dow, _DAY_OF_WEEK)
        days_of_week = _values(text, "Day-of-week", plain, 1, 7, _WEEK) if plain else frozenset()
        rules = []
        for rule in special:
            match = _DAY_OF_WEEK.match(rule)
            assert match is not None
            weekday = _number(text, "Day-of-week", match.group(1), 1, 7, _DAYS)
            rules.append((weekday, 0 if match.group(2) else int(match.group(3))))
        week_rules = tuple(rules)
    return Cron(
        text=text,
        minutes=tuple(sorted(_values(text, "Minutes", minute, 0, 59))),
        hours=tuple(sorted(_values(text, "Hours", hour, 0, 23))),
        months=_values(text, "Month", month, 1, 12, _MONTHS),
        years=_values(text, "Year", year, FIRST_YEAR, LAST_YEAR),
        days_of_month=days_of_month,
        month_rules=month_rules,
        days_of_week=days_of_week,
        week_rules=week_rules,
    )


def _split(field: str, special: re.Pattern[str]) -> tuple[str, list[str]]:
    """The field's plain items (joined again) and its `L`/`W`/`#` items."""
    items = field.upper().split(",")
    rules = [item for item in items if special.match(item)]
    plain = [item for item in items if not special.match(item)]
    return ",".join(plain), rules


def _values(
    text: str,
    name: str,
    field: str,
    low: int,
    high: int,
    names: dict[str, int] | None = None,
) -> frozenset[int]:
    values: set[int] = set()
    for item in field.upper().split(","):
        spread, _, step_text = item.partition("/")
        step = _number(text, name, step_text, 1, high - low + 1) if step_text else 1
        if spread == "*":
            first, last = low, high
        elif "-" in spread:
            start, _, end = spread.partition("-")
            first = _number(text, name, start, low, high, names)
            last = _number(text, name, end, low, high, names)
            if first > last:
                raise ValueError(
                    f"{text!r}: {name} range {spread!r} runs backwards; write it as two "
                    "ranges (e.g. FRI-SAT,SUN-MON)"
                )
        else:
            first = _number(text, name, spread, low, high, names)
            # `5/10`: from 5 on, every 10; `5` alone is just 5.
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(
    text: str, name: str, item: str, low: int, high: int, names: dict[str, int] | None = None
) -> int:
    item = item.upper()
    if names is not None and item in names:
        return names[item]
    if not item.isdigit():
        spelled = {"Month": " or JAN-DEC", "Day-of-week": " or SUN-SAT"}.get(name, "")
        raise ValueError(f"{text!r}: {name} {item!r} is not one of {low}-{high}{spelled}")
    value = int(item)
    if not low <= value <= high:
        raise ValueError(f"{text!r}: {name} {value} is outside {low}-{high}")
    return value
