"""How the closed-loop and scale-in benchmarks print their results: one table, the goals,
each contender's desired-count timeline, and the same table as Markdown on request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def print_results(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    goal_lines: Iterable[str],
    timelines: Iterable[tuple[str, Sequence[tuple[float, int, int]]]],
    *,
    markdown: bool,
) -> None:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in goal_lines:
        console.print(line, highlight=False)
    for name, timeline in timelines:
        steps = ", ".join(f"{t:.0f}s {old}→{new}" for t, old, new in timeline)
        console.print(f"{name} desired count: {steps}", highlight=False, soft_wrap=True)
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(row) + " |")
