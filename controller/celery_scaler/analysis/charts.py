"""Charts of a report or a simulation as PNG bytes (matplotlib, the `report` extra).

matplotlib is imported only when a chart is drawn, through its object-oriented API
with the Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

import io
import math
from datetime import UTC
from typing import TYPE_CHECKING

from celery_scaler.analysis.replay import ReportError, ScalingReport
from celery_scaler.analysis.simulate import Simulation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "charts need matplotlib: pip install 'celery-scaler[report]'"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
OUT_COLOR, IN_COLOR, GAP_COLOR = "#d62728", "#1f77b4", "#bbbbbb"


class ChartsUnavailable(ReportError):
    """matplotlib is not installed."""


def _figure(rows: int, height: float) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ChartsUnavailable(INSTALL_HINT) from None

    figure = Figure(figsize=(11, height), dpi=100, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return figure, list(axes)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _when(seconds: float) -> float:
    """Epoch seconds as matplotlib's date number (days since its 1970 epoch)."""
    return seconds / 86400.0


def report_chart(report: ScalingReport) -> bytes:
    """The metric against its thresholds, and the replayed beside the real desired count."""
    figure, (metric_ax, count_ax) = _figure(2, 6.0)
    times = [_when(step.time) for step in report.steps]
    values = [math.nan if step.value is None else step.value for step in report.steps]
    metric_ax.plot(times, values, color="#333333", linewidth=1.0, label=report.metric)
    # Only the thresholds on the metric drawn: another policy's metric has its own scale.
    for item in (t for t in report.thresholds if t.metric in ("", report.metric)):
        color = OUT_COLOR if item.scales_out else IN_COLOR
        metric_ax.axhline(
            item.threshold,
            color=color,
            linestyle="--",
            linewidth=1.0,
            label=f"{item.policy} threshold {item.threshold:g}",
        )
    for number, gap in enumerate(report.gaps):
        for ax in (metric_ax, count_ax):
            ax.axvspan(
                _when(gap.start),
                _when(gap.end),
                color=GAP_COLOR,
                alpha=0.35,
                linewidth=0,
                label="no data" if number == 0 and ax is metric_ax else None,
            )
    metric_ax.set_ylabel(f"{report.metric}\n({report.statistic}, {report.period}s)")
    metric_ax.set_title(f"{report.pool}: {report.metric} replayed through the rule table")
    _legend(metric_ax)

    stairs = [*times, _when(report.end)]
    count_ax.stairs(
        [step.capacity for step in report.steps],
        stairs,
        color=COLORS[0],
        linewidth=1.6,
        label="replayed desired count",
        baseline=None,
    )
    if report.real_source is not None:
        real = [math.nan if step.real is None else step.real for step in report.steps]
        count_ax.stairs(
            real,
            stairs,
            color="#ff7f0e",
            linewidth=1.4,
            linestyle="--",
            label=f"real ({report.real_source})",
            baseline=None,
        )
    for action in report.actions:
        assert action.decision is not None
        out = action.decision.desired > action.decision.current
        count_ax.plot(
            _when(action.time),
            action.decision.desired,
            marker="^" if out else "v",
            color=OUT_COLOR if out else IN_COLOR,
            markersize=5,
            linestyle="none",
        )
    _capacity_limits(count_ax, report.min_capacity, report.max_capacity)
    count_ax.set_ylabel("ECS tasks")
    count_ax.set_xlabel("time (UTC)")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    count_ax.xaxis.set_major_locator(locator)
    formatter = ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    count_ax.xaxis.set_major_formatter(formatter)
    _legend(count_ax)
    return _png(figure)


def simulation_chart(simulation: Simulation) -> bytes:
    """Arrivals, then queue depth and workers over time for every policy simulated."""
    figure, (load_ax, queue_ax, workers_ax) = _figure(3, 7.5)
    start = simulation.start

    def hours(seconds: float) -> float:
        return (seconds - start) / 3600.0

    minutes = simulation.arrivals_per_minute
    load_ax.fill_between(
        [hours(time) for time, _ in minutes],
        [count for _, count in minutes],
        step="post",
        color="#999999",
        linewidth=0,
    )
    load_ax.set_ylabel("tasks enqueued\nper minute")
    load_ax.set_title(f"{simulation.pool}: simulated {simulation.workload} workload")

    for color, run in zip(COLORS, simulation.runs, strict=False):
        times = [hours(point.time) for point in run.timeline]
        queue_ax.plot(
            times,
            [point.queue_depth for point in run.timeline],
            color=color,
            linewidth=1.0,
            label=f"{run.policy} (p95 wait {run.wait_p95:.0f}s)",
        )
        for counts, width, style, label in (
            (
                [point.running for point in run.timeline],
                1.4,
                "-",
                f"{run.policy} running ({run.worker_hours:.0f} worker-hours)",
            ),
            ([point.desired for point in run.timeline], 0.9, ":", f"{run.policy} desired"),
        ):
            workers_ax.step(
                times,
                counts,
                where="post",
                color=color,
                linewidth=width,
                linestyle=style,
                label=label,
            )
    queue_ax.set_ylabel("queue depth\n(tasks waiting)")
    _legend(queue_ax)
    _capacity_limits(workers_ax, None, simulation.max_capacity)
    workers_ax.set_ylabel("workers\n(ECS tasks)")
    workers_ax.set_xlabel("hours since start")
    _legend(workers_ax)
    return _png(figure)


def _legend(ax: Axes) -> None:
    # Beside the plot, never over the lines.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _capacity_limits(ax: Axes, low: int | None, high: int) -> None:
    ax.axhline(high, color="#777777", linewidth=0.8, linestyle="-.", label=f"maxCapacity {high}")
    if low is not None:
        ax.axhline(low, color="#777777", linewidth=0.8, linestyle=":", label=f"minCapacity {low}")
    ax.set_ylim(bottom=0, top=high * 1.15 + 1)
