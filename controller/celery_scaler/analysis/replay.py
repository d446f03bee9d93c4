"""What the controller would have done over a recorded metric history (pure).

The history is replayed pass by pass through the controller's own policy functions
(`controller_pass`: policy.plan_pass, then after_scaling); the capacity a
pass decides is the capacity the next pass sees, so cooldowns run as they would have.
A period without a datapoint is a gap: the controller never scales on missing data, so
the replay holds there, invents nothing, and the report says where data was missing. A
pool with several policies is replayed on each policy's metric (a gap when any is missing);
a metric is read once, with the statistic of the first policy that reads it.

CloudWatch's rules decide how finely history can be read (GetMetricData, MetricStat):
data points under 60 s exist for 3 hours (only for metrics published with
StorageResolution 1), 60 s for 15 days, 300 s for 63 days, 3600 s for 455 days; a
high-resolution period is 1, 5, 10, 20 or 30 s, any other a multiple of 60.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from celery_scaler.core.config import (
    DEFAULT_POLICY,
    ControllerSpec,
    ScalingPolicySpec,
    Statistic,
    WorkerPool,
    WorkerPoolSpec,
    parse_duration,
)
from celery_scaler.core.model import Action, Decision, Observation, PoolMemory, ServiceObservation
from celery_scaler.core.policy import after_scaling, plan_pass
from celery_scaler.core.schedules import Bounds

HOUR = 3600.0
DAY = 86400.0
# (oldest age the resolution is kept for, its period); ages beyond the last are gone.
RETENTION: tuple[tuple[float, int], ...] = (
    (3 * HOUR, 1),
    (15 * DAY, 60),
    (63 * DAY, 300),
    (455 * DAY, 3600),
)
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
REAL_COUNT_STALENESS = 300.0
"""How long a real desired count is carried forward past its datapoint (Container
Insights publishes once a minute; a longer silence is unknown, not unchanged)."""


class ReportError(Exception):
    """A report or simulation a user asked for that cannot be made; the message is for a person."""


def parse_timestamp(text: str) -> float:
    """ISO 8601 (UTC unless it says otherwise) or epoch seconds; raises ValueError."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a timestamp (ISO 8601 or seconds)") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a timestamp (ISO 8601 or seconds)")
    return seconds


DEFAULT_SINCE = 24 * 3600.0


def report_window(
    since: str | None, start: str | None, end: str | None, now: float
) -> tuple[float, float]:
    """The (start, end) a user asked for with --since or --start/--end; raises ReportError."""
    if since is not None and (start is not None or end is not None):
        raise ReportError("use --since or --start/--end, not both")
    if end is not None and start is None:
        raise ReportError("--end needs --start")
    try:
        if start is None:
            back = DEFAULT_SINCE if since is None else parse_duration(since)
            if back <= 0:
                raise ValueError("--since must be longer than 0s")
            return now - back, now
        begin = parse_timestamp(start)
        finish = now if end is None else min(parse_timestamp(end), now)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    if begin >= finish:
        raise ReportError("--start must be before --end (and before now)")
    return begin, finish


# --------------------------------------------------------------------------- the pass


def controller_pass(
    spec: WorkerPoolSpec,
    obs: Observation,
    metrics: Mapping[str, float],
    memory: PoolMemory,
    now: float,
    *,
    interval: float,
) -> tuple[Decision, PoolMemory]:
    """One controller pass over an observation, its write assumed to succeed.

    The same sequence as the reconcile pass, without the I/O: the report's replay and
    the simulator decide through here, never through a second implementation.
    `interval` is the time between these passes (the replay's period, say).
    """
    decision, memory, _events, _errors = plan_pass(
        spec, obs, metrics, memory, now, interval=interval
    )
    return decision, after_scaling(spec, memory, decision, now)


NO_DATA = "no data recorded for this period"
"""Why a replayed pass in a gap of the history failed."""


def service_at(capacity: int) -> ServiceObservation:
    """A settled ECS service at `capacity`, as a replay or the alarm path sees it."""
    return ServiceObservation(desired=capacity, running=capacity, pending=0, deploying=False)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class MetricQuery:
    """One metric to read: GetMetricData's MetricStat, by name."""

    id: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str


@dataclass(frozen=True)
class Series:
    """Datapoints in time order: (epoch seconds, value)."""

    points: tuple[tuple[float, float], ...] = ()


class HistorySource(Protocol):
    def read(
        self, queries: Sequence[MetricQuery], start: float, end: float, period: int
    ) -> dict[str, Series]:
        """Every query's datapoints in [start, end) at `period`; raises AdapterError."""
        ...


# The real desired count, best source first: ECS's desiredCount as the controller saw it
# each pass (true in dry runs too), the controller's decision (true when it acts), and
# ECS Container Insights.
REAL_COUNT_SOURCES = ("current_capacity", "desired_capacity", "ecs_desired_task_count")


def history_queries(pool: WorkerPool, controller: ControllerSpec) -> list[MetricQuery]:
    """The pool's metric and the real desired count's sources, as the controller names them.

    Ids are GetMetricData ids: a lower-case letter, then letters, digits and `_`.
    """
    namespace = controller.cloudwatch.namespace
    by_pool = (("Pool", pool.name),)
    spec = pool.spec
    return [
        *(
            MetricQuery(_metric_id(index), namespace, metric, by_pool, statistic.value)
            for index, (metric, statistic) in enumerate(read_metrics(spec).items())
        ),
        MetricQuery("current_capacity", namespace, "current_capacity", by_pool, "Average"),
        MetricQuery("desired_capacity", namespace, "desired_capacity", by_pool, "Average"),
        MetricQuery(
            "ecs_desired_task_count",
            "ECS/ContainerInsights",
            "DesiredTaskCount",
            (("ClusterName", spec.ecs.cluster), ("ServiceName", spec.ecs.service)),
            "Average",
        ),
    ]


def read_metrics(spec: WorkerPoolSpec) -> dict[str, Statistic]:
    """Each metric the pool's policies read, the first policy's first, with the statistic
    of the first policy that reads it."""
    found: dict[str, Statistic] = {}
    for policy in spec.scaling_policies:
        found.setdefault(policy.metric.value, policy.statistic)
    return found


def _metric_id(index: int) -> str:
    # The first keeps its id of old; GetMetricData ids: a lower-case letter, then more.
    return "metric" if index == 0 else f"metric{index}"


def choose_period(interval: float, start: float, now: float) -> int:
    """The finest GetMetricData period that still has data from `start` and no empty buckets.

    Never finer than the controller's interval: a bucket shorter than the time between
    passes would be empty and read as a gap.
    """
    age = max(0.0, now - start)
    finest = next((period for oldest, period in RETENTION if age <= oldest), None)
    if finest is None:
        raise ReportError("CloudWatch keeps no metric data older than 455 days; start later")
    if finest == 1 and interval <= HIGH_RESOLUTION_PERIODS[-1]:
        return next(period for period in HIGH_RESOLUTION_PERIODS if period >= interval)
    unit = max(finest, 60)
    return max(unit, math.ceil(interval / unit) * unit)


def minute_resolution(series: Series, period: int) -> bool:
    """Sub-minute buckets that only ever hold whole minutes: standard-resolution data."""
    if period >= 60 or len(series.points) < 2:
        return False
    return all(time % 60 == 0 for time, _ in series.points)


@dataclass(frozen=True)
class History:
    """A pool's recorded metric and, when known, its real desired count."""

    start: float
    end: float
    period: int
    metric: Series
    """The first policy's metric (the pool's own)."""
    real: Series | None = None
    real_source: str | None = None
    others: Mapping[str, Series] = field(default_factory=dict)
    """The other metrics the pool's policies read, by name."""


def read_history(
    source: HistorySource,
    pool: WorkerPool,
    controller: ControllerSpec,
    start: float,
    end: float,
    now: float,
) -> History:
    """Read the pool's history at the finest period CloudWatch still has; raises AdapterError."""
    period = choose_period(controller.interval, start, now)
    # Whole periods only: the one still running has not all its data yet.
    start, end = _aligned(start, period), _aligned(end, period)
    if end <= start:
        raise ReportError(f"the time asked for is shorter than one {period}s period")
    queries = history_queries(pool, controller)
    found = source.read(queries, start, end, period)
    if minute_resolution(found.get("metric", Series()), period):
        # Published without StorageResolution 1: read whole minutes, or two buckets in
        # three would look like gaps.
        period = 60
        start, end = _aligned(start, period), _aligned(end, period)
        found = source.read(queries, start, end, period)
    real = next((name for name in REAL_COUNT_SOURCES if found.get(name, Series()).points), None)
    source_name = {query.id: f"{query.namespace} {query.name}" for query in queries}
    metrics = list(read_metrics(pool.spec))
    return History(
        start=start,
        end=end,
        period=period,
        metric=found.get("metric", Series()),
        real=found[real] if real else None,
        real_source=source_name[real] if real else None,
        others={
            name: found.get(_metric_id(index), Series())
            for index, name in enumerate(metrics)
            if index > 0
        },
    )


def _aligned(time: float, period: int) -> float:
    return math.floor(time / period) * period


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReplayStep:
    """One replayed pass (one period of history)."""

    time: float
    value: float | None
    """The (first policy's) metric's datapoint; None where data is missing (a gap)."""
    capacity: int
    """The replayed desired count after this pass."""
    real: float | None
    """The real desired count then, where known."""
    decision: Decision | None
    """None in a gap: no pass was replayed."""


@dataclass(frozen=True)
class Gap:
    start: float
    end: float


@dataclass(frozen=True)
class ThresholdTime:
    """How long a metric was beyond a point where a policy acts (a step alarm's threshold,
    a target, 0.9 of a target)."""

    policy: str
    """`scaleOut`, `scaleIn`, `targetTracking`; another policy's with its name and metric."""
    comparison: str
    threshold: float
    seconds: float
    longest_seconds: float
    metric: str = ""
    scales_out: bool = True


@dataclass(frozen=True)
class CapacitySummary:
    capacity_hours: float
    seconds_at_max: float
    seconds_at_min: float
    changes: int
    covered_seconds: float
    """How much of the time the count was known."""


@dataclass(frozen=True)
class ScalingReport:
    """What the controller would have done for one pool over a stretch of history."""

    pool: str
    metric: str
    statistic: str
    start: float
    end: float
    period: int
    min_capacity: int
    max_capacity: int
    initial: int
    steps: tuple[ReplayStep, ...]
    gaps: tuple[Gap, ...]
    thresholds: tuple[ThresholdTime, ...]
    replayed: CapacitySummary
    real: CapacitySummary | None
    real_source: str | None
    notes: tuple[str, ...]

    @property
    def actions(self) -> tuple[ReplayStep, ...]:
        return tuple(
            step
            for step in self.steps
            if step.decision is not None and step.decision.action is not Action.HOLD
        )


def summarize_capacity(
    points: Sequence[tuple[float, float | None]],
    end: float,
    low: int,
    high: int,
    bounds: Callable[[float], Bounds] | None = None,
) -> CapacitySummary:
    """A step function (each count holds until the next point, None = unknown) summed up.

    `bounds` gives the bounds in force at a time where schedules move them (else `low`
    and `high` hold throughout): time at the minimum is time at the minimum then.
    """
    hours = at_max = at_min = covered = 0.0
    changes = 0
    previous: float | None = None
    for (time, count), (after, _) in zip(points, [*points[1:], (end, None)], strict=True):
        if count is None:
            continue
        if bounds is not None:
            in_force = bounds(time)
            low, high = in_force.min_capacity, in_force.max_capacity
        held = max(0.0, min(after, end) - time)
        covered += held
        hours += count * held / HOUR
        at_max += held if count >= high else 0.0
        at_min += held if count <= low else 0.0
        changes += previous is not None and round(count) != round(previous)
        previous = count
    return CapacitySummary(hours, at_max, at_min, changes, covered)


def replay(pool: WorkerPool, history: History, *, initial: int | None = None) -> ScalingReport:
    """Replay `history` pass by pass through the pool's rule table."""
    spec = pool.spec
    period = history.period
    metric = spec.scaling_policies[0].metric.value
    count = max(1, math.ceil((history.end - history.start) / period))
    grid = [history.start + index * period for index in range(count)]
    by_metric = {
        name: _on_grid(series, history.start, period, count)
        for name, series in {metric: history.metric, **history.others}.items()
    }
    # A period where any policy's metric is missing is a gap: the pass would fail.
    values = [
        by_metric[metric][index] if all(v[index] is not None for v in by_metric.values()) else None
        for index in range(count)
    ]
    real = _carried_forward(history.real, grid) if history.real else [None] * count

    notes = [
        "the metric is replayed as recorded: had the fleet been sized as replayed, a "
        "metric that depends on it (backlog_per_task, busy_ratio) would have read differently",
        "busy workers (safeScaleIn), rollouts and inspect replies are not in the history; "
        "the replay cannot hold a scale-in for them as the controller would",
    ]
    statistics = read_metrics(spec)
    for policy in spec.scaling_policies:
        if policy.statistic is not statistics[policy.metric.value]:
            notes.append(
                f"policy {policy.name} reads {policy.metric.value} ({policy.statistic.value}); "
                f"it is replayed from the {statistics[policy.metric.value].value} recorded for "
                "another policy"
            )
    if initial is None:
        initial = round(real[0]) if real[0] is not None else spec.min_capacity
        why = f"the real count ({history.real_source})" if real[0] is not None else "minCapacity"
        notes.insert(0, f"the replay starts at {initial} tasks: {why} at the start")

    capacity = initial
    memory = PoolMemory()
    steps: list[ReplayStep] = []
    for index, (time, value, known) in enumerate(zip(grid, values, real, strict=True)):
        if value is None and spec.fallback.applies:
            # A period the controller published nothing for is a pass that failed to read:
            # after failureThreshold of them the fallback applies, as it would have.
            failed = Observation(None, None, service_at(capacity), errors=(NO_DATA,))
            decision, memory = controller_pass(spec, failed, {}, memory, time, interval=period)
            capacity = decision.desired
            steps.append(ReplayStep(time, None, capacity, known, decision))
            continue
        if value is None:
            steps.append(ReplayStep(time, None, capacity, known, None))
            continue
        obs = Observation(broker=None, workers=None, service=service_at(capacity))
        recorded = {name: v for name, on in by_metric.items() if (v := on[index]) is not None}
        decision, memory = controller_pass(spec, obs, recorded, memory, time, interval=period)
        capacity = decision.desired
        steps.append(ReplayStep(time, value, capacity, known, decision))

    gaps = _gaps(grid, values, period)
    if gaps and spec.fallback.applies:
        notes.append(
            "where data is missing each period is a failed pass: the replay holds, and after "
            f"{spec.fallback.failure_threshold} of them applies the fallback "
            f"({spec.fallback.behavior.value}), as the controller would"
        )
    elif gaps:
        notes.append(
            "where data is missing the replay holds, as the controller holds on missing data"
        )
    low, high = spec.min_capacity, spec.max_capacity
    bounds = spec.bounds_at if spec.schedules else None
    if spec.schedules:
        names = ", ".join(schedule.name for schedule in spec.schedules)
        notes.append(
            f"minCapacity and maxCapacity follow the schedules ({names}) as they fired; the "
            "time at the minimum and the maximum counts the bounds in force then"
        )
    return ScalingReport(
        pool=pool.name,
        metric=metric,
        statistic=spec.statistic.value,
        start=history.start,
        end=history.end,
        period=period,
        min_capacity=low,
        max_capacity=high,
        initial=initial,
        steps=tuple(steps),
        gaps=gaps,
        thresholds=tuple(
            found
            for policy in spec.scaling_policies
            for found in _threshold_times(policy, by_metric[policy.metric.value], period)
        ),
        replayed=summarize_capacity(
            [(s.time, float(s.capacity)) for s in steps], history.end, low, high, bounds
        ),
        real=(
            summarize_capacity(list(zip(grid, real, strict=True)), history.end, low, high, bounds)
            if history.real
            else None
        ),
        real_source=history.real_source,
        notes=tuple(notes),
    )


def _on_grid(series: Series, start: float, period: int, count: int) -> list[float | None]:
    values: list[float | None] = [None] * count
    for time, value in series.points:
        index = round((time - start) / period)
        if 0 <= index < count:
            values[index] = value
    return values


def _carried_forward(series: Series, grid: Sequence[float]) -> list[float | None]:
    """The real count at each grid time: the latest datapoint, if recent enough."""
    result: list[float | None] = []
    points = series.points
    index = -1
    for time in grid:
        while index + 1 < len(points) and points[index + 1][0] <= time:
            index += 1
        fresh = index >= 0 and time - points[index][0] <= REAL_COUNT_STALENESS
        result.append(points[index][1] if fresh else None)
    return result


def _gaps(grid: Sequence[float], values: Sequence[float | None], period: int) -> tuple[Gap, ...]:
    gaps: list[Gap] = []
    for time, value in zip(grid, values, strict=True):
        if value is not None:
            continue
        if gaps and gaps[-1].end == time:
            gaps[-1] = Gap(gaps[-1].start, time + period)
        else:
            gaps.append(Gap(time, time + period))
    return tuple(gaps)


def _threshold_times(
    policy: ScalingPolicySpec, values: Sequence[float | None], period: int
) -> tuple[ThresholdTime, ...]:
    metric = policy.metric.value
    tracking = policy.target_tracking
    points: list[tuple[str, str, float, bool]] = []  # (rule, comparison, threshold, out)
    if policy.scale_out is not None:
        points.append(("scaleOut", "≥", policy.scale_out.threshold, True))
    if policy.scale_in is not None:
        points.append(("scaleIn", "≤", policy.scale_in.threshold, False))
    if tracking is not None:
        points.append(("targetTracking", ">", tracking.target_value, True))
        if not tracking.disable_scale_in:
            points.append(("targetTracking", "<", tracking.scale_in_below, False))
    found: list[ThresholdTime] = []
    for rule, comparison, threshold, out in points:
        total = longest = run = 0.0
        for value in values:
            beyond = value is not None and _beyond(value, comparison, threshold)
            run = run + period if beyond else 0.0
            total += period if beyond else 0.0
            longest = max(longest, run)
        name = rule if policy.name == DEFAULT_POLICY else f"{policy.name} {rule} ({metric})"
        found.append(ThresholdTime(name, comparison, threshold, total, longest, metric, out))
    return tuple(found)


def _beyond(value: float, comparison: str, threshold: float) -> bool:
    return {
        "≥": value >= threshold,
        "≤": value <= threshold,
        ">": value > threshold,
        "<": value < threshold,
    }[comparison]
