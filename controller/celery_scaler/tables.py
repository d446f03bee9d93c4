"""How pass results look: JSON lines for machines, a table for people."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from celery_scaler.core.config import DEFAULT_POLICY
from celery_scaler.core.status import PoolStatus
from celery_scaler.engine.reconcile import PassReport, PoolResult

ACTION_STYLE = {"scale_out": "green", "scale_in": "yellow", "hold": "dim"}


def json_lines(results: Sequence[PoolResult]) -> str:
    return "\n".join(json.dumps(result.to_json(), sort_keys=True) for result in results)


def results_table(results: Sequence[PoolResult]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # At 80 columns the names give way (they fold), never the numbers or the action.
    table.add_column("pool", overflow="fold")
    table.add_column("service", overflow="fold")
    table.add_column("metric", overflow="fold")
    for column in ("value", "count", "action"):
        table.add_column(column, no_wrap=True)
    for result in results:
        # Spelled as in the JSON line (`scale_out`), so one word finds both.
        action = result.action
        if result.action != "hold":
            action += " (applied)" if result.applied else " (dry run)" if result.dry_run else ""
        count = _count(result.current)
        if result.desired != result.current:
            count = f"{count} → {_count(result.desired)}"
        table.add_row(
            Text(result.pool),
            Text(f"{result.cluster}/{result.service}"),
            Text(_metric(result)),
            "—" if result.value is None else f"{result.value:.4g}",
            count,
            Text(action, style=ACTION_STYLE.get(result.action, "")),
        )
    return table


def _metric(result: PoolResult) -> str:
    """The metric the decision read, and the policy that read it unless it is the pool's own."""
    if result.policy is None or result.policy == DEFAULT_POLICY:
        return result.metric
    return f"{result.metric} ({result.policy})"


def reasons(results: Sequence[PoolResult]) -> Text:
    """One line per pool under the table: why, and what went wrong."""
    text = Text()
    for result in results:
        text.append(f"{result.pool}: ", style="bold")
        text.append(result.reason)
        if result.error and result.error not in result.reason:
            text.append(f" — error: {result.error}", style="red")
        for warning in result.warnings:
            text.append(f" — warning: {warning}", style="yellow")
        text.append("\n")
    return text


def _count(count: int | None) -> str:
    return "—" if count is None else str(count)


def print_report(console: Console, report: PassReport, *, output: str) -> None:
    results = report.results
    if output == "json":
        # Plain print: one object per line, no wrapping or markup from rich.
        print(json_lines(results), flush=True)
    else:
        console.print(results_table(results))
        console.print(reasons(results), end="", soft_wrap=True)


def status_table(statuses: Sequence[PoolStatus], now: float) -> Table:
    """One row a pool; the last action and its reason on lines of their own below.

    A reason is a sentence: as a column it would wrap each pool over many lines at 80.
    """
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("pool", overflow="fold")
    table.add_column("service", overflow="fold")
    for column in ("desired", "running"):
        table.add_column(column, no_wrap=True)
    table.add_column("conditions", overflow="fold")
    table.add_column("cooldown", no_wrap=True)
    for status in statuses:
        true = [
            f"Leader={status.leader}" if name == "Leader" and status.leader else name
            for name, value in status.conditions.items()
            if value
        ]
        cooldown = ", ".join(f"{name} {left:.0f}s" for name, left in status.cooldowns_left.items())
        table.add_row(
            Text(status.pool),
            Text(f"{status.cluster}/{status.service}"),
            _count(status.current),
            _count(status.running),
            Text(", ".join(true) or "—", style="red" if status.conditions["Degraded"] else ""),
            cooldown or "—",
        )
    return table


def last_actions(statuses: Sequence[PoolStatus], now: float) -> Text:
    """One line per pool under the status table: its last action and why, or its error."""
    text = Text()
    for status in statuses:
        text.append(f"{status.pool}: ", style="bold")
        if status.error:
            text.append(status.error, style="red")
        elif status.last_action and status.last_action_time is not None:
            text.append(f"{status.last_action} {_ago(now - status.last_action_time)}")
            if status.last_reason:
                text.append(f": {status.last_reason}")
        else:
            text.append("no action yet", style="dim")
        text.append("\n")
        scheduling = _scheduling(status, now)
        if scheduling:
            text.append(f"{status.pool}: ", style="bold")
            text.append(scheduling, style="cyan")
            text.append("\n")
    return text


def _scheduling(status: PoolStatus, now: float) -> str:
    """The bounds a schedule set, the next scheduled action and the pause tags, if any."""
    said = []
    if status.bounds_from:
        sources = ", ".join(f"{b} from {name!r}" for b, name in status.bounds_from.items())
        said.append(f"bounds [{status.min_capacity}, {status.max_capacity}] ({sources})")
    upcoming = status.next_schedule
    if upcoming is not None:
        sets = ", ".join(
            f"{bound} {upcoming[bound]}"
            for bound in ("minCapacity", "maxCapacity")
            if upcoming[bound] is not None
        )
        said.append(f"next schedule {upcoming['name']!r} {_in(upcoming['time'] - now)}: {sets}")
    if status.paused:
        said.append(" ".join(status.paused))
    return "; ".join(said)


def _in(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"in {seconds / size:.0f}{unit}"
    return f"in {max(seconds, 0):.0f}s"


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"
