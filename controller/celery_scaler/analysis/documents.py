"""How reports and simulations look: a table for people, Markdown, JSON, one HTML file.

Each result becomes one `Document` (title, summary lines, tables, notes); every text
format renders that same document, and JSON carries the figures for machines.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from celery_scaler.analysis.replay import CapacitySummary, ScalingReport
from celery_scaler.analysis.simulate import PolicyRun, Simulation


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str = "none"


@dataclass(frozen=True)
class Document:
    title: str
    summary: tuple[str, ...]
    tables: tuple[Table, ...]
    notes: tuple[str, ...]


# --------------------------------------------------------------------------- words


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offset(seconds: float) -> str:
    """Time since a simulation's start as h:mm:ss."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


# --------------------------------------------------------------------------- report


def report_document(report: ScalingReport) -> Document:
    summary = [
        f"{report.metric} ({report.statistic}) from {timestamp(report.start)} to "
        f"{timestamp(report.end)}, read at {report.period}s and replayed through the "
        f"rule table from {report.initial} tasks: {len(report.actions)} scaling actions.",
    ]
    if report.gaps:
        missing = sum(gap.end - gap.start for gap in report.gaps)
        summary.append(
            f"Data missing for {duration(missing)} in {len(report.gaps)} gap(s); "
            "the replay held there."
        )
    capacity_headers: tuple[str, ...] = ("", "replayed")
    summaries: list[CapacitySummary] = [report.replayed]
    if report.real is not None:
        capacity_headers += (f"real ({report.real_source})",)
        summaries.append(report.real)
    capacity = Table(
        "Capacity",
        capacity_headers,
        (
            ("capacity-hours", *(f"{s.capacity_hours:.1f}" for s in summaries)),
            (
                f"time at maxCapacity ({report.max_capacity})",
                *(duration(s.seconds_at_max) for s in summaries),
            ),
            (
                f"time at minCapacity ({report.min_capacity})",
                *(duration(s.seconds_at_min) for s in summaries),
            ),
            ("count changes", *(str(s.changes) for s in summaries)),
            ("time the count is known", *(duration(s.covered_seconds) for s in summaries)),
        ),
    )
    thresholds = Table(
        "Time the metric spent beyond each threshold",
        ("policy", "threshold", "total", "longest stretch"),
        tuple(
            (
                item.policy,
                f"{item.comparison} {item.threshold:g}",
                duration(item.seconds),
                duration(item.longest_seconds),
            )
            for item in report.thresholds
        ),
    )
    gaps = Table(
        "Missing data (the replay holds)",
        ("from", "to", "for"),
        tuple(
            (timestamp(gap.start), timestamp(gap.end), duration(gap.end - gap.start))
            for gap in report.gaps
        ),
        empty="no gaps: every period has a datapoint",
    )
    actions = Table(
        "Scaling actions the controller would have taken",
        ("time (UTC)", "value", "count", "real", "reason (rule)"),
        tuple(
            (
                timestamp(step.time).replace("T", " ").removesuffix("Z"),
                _number(step.value),
                f"{step.decision.current} → {step.decision.desired}",
                _number(step.real),
                step.decision.reason,
            )
            for step in report.actions
            if step.decision is not None
        ),
        empty="none: the controller would have held all along",
    )
    return Document(
        title=f"Dry-run scaling report: pool {report.pool}",
        summary=tuple(summary),
        tables=(capacity, thresholds, gaps, actions),
        notes=report.notes,
    )


def report_json(report: ScalingReport) -> dict[str, Any]:
    def capacity(summary: CapacitySummary | None) -> dict[str, Any] | None:
        if summary is None:
            return None
        return {
            "capacity_hours": round(summary.capacity_hours, 3),
            "seconds_at_max": summary.seconds_at_max,
            "seconds_at_min": summary.seconds_at_min,
            "changes": summary.changes,
            "covered_seconds": summary.covered_seconds,
        }

    return {
        "pool": report.pool,
        "metric": report.metric,
        "statistic": report.statistic,
        "start": timestamp(report.start),
        "end": timestamp(report.end),
        "period_seconds": report.period,
        "initial": report.initial,
        "actions": [
            {
                "time": timestamp(step.time),
                "value": step.value,
                "current": step.decision.current,
                "desired": step.decision.desired,
                "action": step.decision.action.value,
                "rule": step.decision.step,
                "reason": step.decision.reason,
                "real": step.real,
            }
            for step in report.actions
            if step.decision is not None
        ],
        "gaps": [
            {
                "start": timestamp(gap.start),
                "end": timestamp(gap.end),
                "seconds": gap.end - gap.start,
            }
            for gap in report.gaps
        ],
        "thresholds": [
            {
                "policy": item.policy,
                "comparison": item.comparison,
                "threshold": item.threshold,
                "seconds": item.seconds,
                "longest_seconds": item.longest_seconds,
            }
            for item in report.thresholds
        ],
        "replayed": capacity(report.replayed),
        "real": capacity(report.real),
        "real_source": report.real_source,
        "notes": list(report.notes),
        "timeline": [
            [timestamp(step.time), step.value, step.capacity, step.real] for step in report.steps
        ],
    }


# --------------------------------------------------------------------------- simulation


def simulation_document(simulation: Simulation) -> Document:
    runs = simulation.runs
    hours = (simulation.end - simulation.start) / 3600
    policies = Table(
        "Per policy",
        ("", *(run.policy for run in runs)),
        (
            ("how it scales", *(run.description for run in runs)),
            ("task wait p50", *(f"{run.wait_p50:.1f}s" for run in runs)),
            ("task wait p95", *(f"{run.wait_p95:.1f}s" for run in runs)),
            ("task wait max", *(f"{run.wait_max:.1f}s" for run in runs)),
            ("tasks that waited at all", *(f"{run.waited:.1%}" for run in runs)),
            ("worker-hours", *(f"{run.worker_hours:.1f}" for run in runs)),
            ("scaling actions", *(str(len(run.actions)) for run in runs)),
            (
                f"time at maxCapacity ({simulation.max_capacity})",
                *(duration(run.seconds_at_max) for run in runs),
            ),
            ("tasks still waiting at the end", *(str(run.unfinished) for run in runs)),
        ),
    )
    tables = [policies]
    for run in runs:
        tables.append(_actions_table(run, simulation.start))
    return Document(
        title=f"Simulation: pool {simulation.pool}, {simulation.workload} workload",
        summary=(
            f"{hours:g} h of {runs[0].tasks} tasks; the controller passes every "
            f"{simulation.settings.interval:g}s.",
        ),
        tables=tuple(tables),
        notes=simulation.notes,
    )


def _actions_table(run: PolicyRun, start: float, limit: int = 200) -> Table:
    rows = tuple(
        (offset(action.time - start), f"{action.current} → {action.desired}", action.reason)
        for action in run.actions[:limit]
    )
    more = len(run.actions) - limit
    title = f"Scaling actions: {run.policy}"
    if more > 0:
        title += f" (the first {limit}; {more} more in --format json)"
    return Table(title, ("time", "count", "reason"), rows)


def simulation_json(simulation: Simulation) -> dict[str, Any]:
    settings = simulation.settings
    return {
        "pool": simulation.pool,
        "workload": simulation.workload,
        "seconds": simulation.end - simulation.start,
        "settings": {
            "interval": settings.interval,
            "concurrency": settings.concurrency,
            "start_delay": settings.start_delay,
            "mean_duration": settings.mean_duration,
            "seed": settings.seed,
        },
        "policies": [
            {
                "policy": run.policy,
                "description": run.description,
                "tasks": run.tasks,
                "unfinished": run.unfinished,
                "wait_p50": run.wait_p50,
                "wait_p95": run.wait_p95,
                "wait_max": run.wait_max,
                "wait_mean": run.wait_mean,
                "waited": run.waited,
                "worker_hours": run.worker_hours,
                "seconds_at_max": run.seconds_at_max,
                "scaling_actions": len(run.actions),
                "actions": [
                    {
                        "seconds": action.time - simulation.start,
                        "actor": action.actor,
                        "current": action.current,
                        "desired": action.desired,
                        "reason": action.reason,
                    }
                    for action in run.actions
                ],
            }
            for run in simulation.runs
        ],
        "notes": list(simulation.notes),
    }


# --------------------------------------------------------------------------- formats


def print_document(console: Console, document: Document) -> None:
    console.print(Text(document.title, style="bold"))
    for line in document.summary:
        console.print(Text(line), soft_wrap=True)
    for table in document.tables:
        console.print()
        if not table.rows:
            console.print(Text.assemble((f"{table.title}: ", "bold"), table.empty))
            continue
        rich = RichTable(title=table.title, title_justify="left", box=box.SIMPLE_HEAD)
        for header in table.headers:
            rich.add_column(header, overflow="fold")
        for row in table.rows:
            rich.add_row(*(Text(cell) for cell in row))
        console.print(rich)
    if document.notes:
        console.print()
        for note in document.notes:
            console.print(Text(f"note: {note}", style="dim"), soft_wrap=True)


def markdown(document: Document) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# {document.title}", "", *document.summary]
    for table in document.tables:
        lines += ["", f"## {table.title}", ""]
        if not table.rows:
            lines.append(table.empty)
            continue
        lines.append("| " + " | ".join(cell(h) for h in table.headers) + " |")
        lines.append("|" + "---|" * len(table.headers))
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    if document.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in document.notes)]
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
img { max-width: 100%; }
.note { color: #666; font-size: 0.85rem; }
"""


def html_page(document: Document, charts: Sequence[bytes], hint: str | None = None) -> str:
    """One self-contained HTML file: charts inline as base64 PNG, no external resource."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(document.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(document.title)}</h1>",
        *(f"<p>{esc(line)}</p>" for line in document.summary),
    ]
    for chart in charts:
        encoded = base64.b64encode(chart).decode("ascii")
        parts.append(f'<img alt="chart" src="data:image/png;base64,{encoded}">')
    if hint:
        parts.append(f'<p class="note">{esc(hint)}</p>')
    for table in document.tables:
        parts.append(f"<h2>{esc(table.title)}</h2>")
        if not table.rows:
            parts.append(f"<p>{esc(table.empty)}</p>")
            continue
        head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table.rows
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if document.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f'<li class="note">{esc(note)}</li>' for note in document.notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def json_text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
