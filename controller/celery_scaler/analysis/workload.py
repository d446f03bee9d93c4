"""Task arrivals for the simulator: a trace file or a named pattern (pure, seeded).

A trace is CSV rows `timestamp, count[, mean duration]`: `count` tasks are enqueued
during [timestamp, next timestamp), spread uniformly at random; the last row lasts as
long as the one before it. Timestamps are ISO 8601 (UTC unless they say otherwise) or
seconds; a header row is allowed. A pattern is a Poisson process whose rate changes
minute by minute around a mean rate.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from itertools import repeat, starmap

from celery_scaler.analysis.replay import DAY, HOUR, ReportError, parse_timestamp
from celery_scaler.core.config import parse_duration

MINUTE = 60.0


class Pattern(StrEnum):
    STEADY = "steady"
    BURST = "burst"
    DIURNAL = "diurnal"
    SPIKY = "spiky"


PATTERN_HELP = {
    Pattern.STEADY: "the mean rate all the time",
    Pattern.BURST: "half the mean rate, with 15 minutes at 4x every 2 hours",
    Pattern.DIURNAL: "a day's sine wave from 0.2x (midnight) to 1.8x (noon) the mean rate",
    Pattern.SPIKY: "half the mean rate, plus batches of 10 minutes' worth of tasks "
    "enqueued at once, on average every 20 minutes",
}


@dataclass(frozen=True)
class Segment:
    """Tasks enqueued during [start, end)."""

    start: float
    end: float
    tasks: float
    """Exactly this many (a trace, a batch), or the mean of a Poisson count (a pattern)."""
    poisson: bool = False
    mean_duration: float | None = None
    """The tasks' mean run time; None: the simulation's default."""


@dataclass(frozen=True)
class Workload:
    name: str
    segments: tuple[Segment, ...]
    """In time order, never overlapping, so arrivals come out sorted."""

    @property
    def start(self) -> float:
        return self.segments[0].start

    @property
    def end(self) -> float:
        return self.segments[-1].end


@dataclass(frozen=True)
class Arrivals:
    times: list[float]
    durations: list[float]


def arrivals(workload: Workload, mean_duration: float, rng: random.Random) -> Arrivals:
    """Every task's enqueue time (sorted) and run time (exponential around its mean)."""
    times: list[float] = []
    durations: list[float] = []
    uniform, log = rng.random, math.log  # the hot loops: one call per task
    for segment in workload.segments:
        first = len(times)
        start, span = segment.start, segment.end - segment.start
        if not segment.poisson:
            draws = _draws(uniform, int(segment.tasks))
            times += sorted([start + span * draw for draw in draws])
        elif segment.tasks > 0 and span > 0:
            gap = span / segment.tasks
            time = start - gap * log(1.0 - uniform())
            while time < segment.end:
                times.append(time)
                time -= gap * log(1.0 - uniform())
        # -mean once, not once a task: the same product, as `-mean * x` is `(-mean) * x`.
        scale = -(segment.mean_duration or mean_duration)
        draws = _draws(uniform, len(times) - first)
        durations += [scale * log(1.0 - draw) for draw in draws]
    return Arrivals(times, durations)


def _draws(uniform: Callable[[], float], count: int) -> list[float]:
    """`count` calls of `uniform`, in order: the draws a loop calling it would get,
    made by itertools at C speed rather than one interpreted call a draw."""
    return list(starmap(uniform, repeat((), count)))


# --------------------------------------------------------------------------- patterns


def pattern(name: Pattern, rate: float, duration: float, rng: random.Random) -> Workload:
    """A named pattern around `rate` tasks per second, minute by minute, for `duration`."""
    if rate <= 0:
        raise ReportError(f"--rate must be above 0 tasks per second, got {rate:g}")
    if duration < MINUTE:
        raise ReportError("--duration must be at least 1m")
    factor: Callable[[float], float] = _FACTORS[name]
    segments: list[Segment] = []
    for index in range(math.ceil(duration / MINUTE)):
        start = index * MINUTE
        end = min(start + MINUTE, duration)
        segments.append(Segment(start, end, rate * factor(start) * (end - start), poisson=True))
        if name is Pattern.SPIKY and rng.random() < MINUTE / (20 * MINUTE):
            segments.append(Segment(end, end, round(rate * 10 * MINUTE)))
    return Workload(name.value, tuple(segments))


def _burst(time: float) -> float:
    return 4.0 if HOUR <= time % (2 * HOUR) < HOUR + 15 * MINUTE else 0.5


def _diurnal(time: float) -> float:
    return 1.0 + 0.8 * math.sin(2 * math.pi * (time / DAY - 0.25))


_FACTORS: dict[Pattern, Callable[[float], float]] = {
    Pattern.STEADY: lambda _: 1.0,
    Pattern.BURST: _burst,
    Pattern.DIURNAL: _diurnal,
    Pattern.SPIKY: lambda _: 0.5,
}


# --------------------------------------------------------------------------- traces


def parse_trace(text: str, source: str) -> Workload:
    """A trace file's rows as segments; every error names the line."""
    rows: list[tuple[int, float, float, float | None]] = []
    header_seen = False
    for line, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in fields]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and not header_seen and not any(c.isdigit() for c in cells[0]):
            header_seen = True  # a header row such as `timestamp,count`
            continue
        where = f"{source} line {line}"
        if len(cells) not in (2, 3):
            raise ReportError(f"{where}: expected `timestamp, count[, mean duration]`")
        time = _timestamp(cells[0], where)
        count = _count(cells[1], where)
        mean = _duration(cells[2], where) if len(cells) == 3 and cells[2] else None
        if rows and time <= rows[-1][1]:
            raise ReportError(f"{where}: timestamps must increase ({cells[0]} is not later)")
        rows.append((line, time, count, mean))
    if not rows:
        raise ReportError(f"{source}: no rows; expected `timestamp, count[, mean duration]`")
    segments = []
    for index, (_, time, count, mean) in enumerate(rows):
        if index + 1 < len(rows):
            end = rows[index + 1][1]
        else:
            end = time + (time - rows[index - 1][1] if index else MINUTE)
        segments.append(Segment(time, end, count, mean_duration=mean))
    return Workload(source, tuple(segments))


def _timestamp(cell: str, where: str) -> float:
    try:
        return parse_timestamp(cell)
    except ValueError as exc:
        raise ReportError(f"{where}: {exc}") from None


def _count(cell: str, where: str) -> float:
    try:
        count = float(cell)
    except ValueError:
        count = -1.0
    if not math.isfinite(count) or count < 0 or count != int(count):
        raise ReportError(f"{where}: count {cell!r} is not a whole number of tasks")
    return count


def _duration(cell: str, where: str) -> float:
    try:
        seconds = parse_duration(cell)
    except ValueError as exc:
        raise ReportError(f"{where}: mean duration: {exc}") from None
    if seconds <= 0:
        raise ReportError(f"{where}: mean duration must be above 0s")
    return seconds


def make_workload(
    trace_text: str | None,
    trace_name: str,
    pattern_name: str | None,
    rate: float,
    duration: float,
    seed: int,
) -> Workload:
    """The workload a user named: a trace file's text, or a pattern (seeded)."""
    if trace_text is not None:
        return parse_trace(trace_text, trace_name)
    names = [p.value for p in Pattern]
    if pattern_name not in names:
        raise ReportError(f"--pattern {pattern_name!r} is not one of {', '.join(names)}")
    return pattern(Pattern(pattern_name), rate, duration, random.Random(seed))
