"""How pass results look: JSON lines for machines, a table for people."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from celery_scaler.core.status import PoolStatus
from celery_scaler.engine.reconcile import PassReport, PoolResult

ACTION_STYLE = {"scale_out": "green", "scale_in": "yellow", "hold": "dim"}


def json_lines(results: Sequence[PoolResult]) -> str:
    return "\n".join(json.dumps(result.to_json(), sort_keys=True) for result in results)


def results_table(results: Sequence[PoolResult]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("pool", "service", "metric", "value", "count", "action"):
        table.add_column(column, no_wrap=True)
    for result in results:
        action = result.action.replace("_", "-")
        if result.action != "hold":
            action += " (applied)" if result.applied else " (dry run)" if result.dry_run else ""
        count = _count(result.current)
        if result.desired != result.current:
            count = f"{count} → {_count(result.desired)}"
        table.add_row(
            Text(result.pool),
            Text(f"{result.cluster}/{result.service}"),
            Text(result.metric),
            "—" if result.value is None else f"{result.value:.4g}",
            count,
            Text(action, style=ACTION_STYLE.get(result.action, "")),
        )
    return table


def reasons(results: Sequence[PoolResult]) -> Text:
    """One line per pool under the table: why, and what went wrong."""
    text = Text()
    for result in results:
        text.append(f"{result.pool}: ", style="bold")
        text.append(result.reason)
        if result.error and result.error not in result.reason:
            text.append(f" — error: {result.error}", style="red")
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
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in (
        "pool",
        "service",
        "desired",
        "running",
        "conditions",
        "last action",
        "cooldown",
    ):
        table.add_column(column, no_wrap=column != "last action")
    for status in statuses:
        true = [
            f"Leader={status.leader}" if name == "Leader" and status.leader else name
            for name, value in status.conditions.items()
            if value
        ]
        last = "—"
        if status.last_action and status.last_action_time is not None:
            last = f"{status.last_action.replace('_', '-')} {_ago(now - status.last_action_time)}"
            if status.last_reason:
                last += f": {status.last_reason}"
        if status.error:
            last = status.error
        cooldown = ", ".join(
            f"{name.replace('_', '-')} {left:.0f}s" for name, left in status.cooldowns_left.items()
        )
        table.add_row(
            Text(status.pool),
            Text(f"{status.cluster}/{status.service}"),
            _count(status.current),
            _count(status.running),
            Text(", ".join(true) or "—", style="red" if status.conditions["Degraded"] else ""),
            Text(last),
            cooldown or "—",
        )
    return table


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"
