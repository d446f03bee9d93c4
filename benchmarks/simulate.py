"""How long `celery-scaler simulate` takes for a day: a 24 h trace at 15 s passes.

Builds a 24 h trace CSV (one row a minute, a diurnal load around `--rate` tasks a
second, 10 s tasks) and times the CPU, for DESIGN.md's example pool, of: parsing the
trace, the controller's run (5,760 passes), and the same with `--compare alarm-path`.
CPU seconds of this process (time.process_time), so other work on the machine shows
less than in wall time. Run from the repository root:

    python -m benchmarks.simulate [--rounds 5] [--rate 2 10]

Goal: the controller's run of a 24 h trace (parse + arrivals + simulation) < 1 s of CPU
at 10 tasks a second (864,000 tasks).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from importlib.resources import files

from rich.console import Console
from rich.table import Table

from celery_scaler.analysis.simulate import AlarmPathSettings, SimSettings, simulate
from celery_scaler.analysis.workload import parse_trace
from celery_scaler.core.config import parse_config

GOAL_SECONDS = 1.0
DAY = 24 * 3600


def day_trace(rate: float) -> str:
    """One row a minute: 0.2x the rate at midnight, 1.8x at noon."""
    rows = ["timestamp,count"]
    for minute in range(DAY // 60):
        factor = 1 + 0.8 * math.sin(2 * math.pi * (minute / 1440 - 0.25))
        rows.append(f"{1_714_521_600 + minute * 60},{round(rate * 60 * factor)}")
    return "\n".join(rows) + "\n"


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        action()
        samples.append(time.process_time() - started)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, nargs="+", default=[2.0, 10.0])
    args = parser.parse_args(argv)

    example = files("celery_scaler").joinpath("example.yaml").read_text(encoding="utf-8")
    pool = parse_config(example, "example.yaml").pools[0]
    settings = SimSettings(interval=15.0)
    console = Console()
    table = Table(title="simulate: a 24 h trace at 15 s passes, CPU seconds (median of rounds)")
    for column in ("tasks/s", "tasks", "what", "median s", "min-max s", "goal"):
        table.add_column(column)
    met = True
    for rate in args.rate:
        text = day_trace(rate)

        def controller(text: str = text) -> object:
            return simulate(pool, parse_trace(text, "day.csv"), settings)

        def both(text: str = text) -> object:
            load = parse_trace(text, "day.csv")
            return simulate(pool, load, settings, alarm_path=AlarmPathSettings())

        result = simulate(pool, parse_trace(text, "day.csv"), settings)
        passes = len(result.runs[0].timeline)
        for what, action, goal in (
            (f"controller ({passes} passes)", controller, GOAL_SECONDS),
            ("controller + alarm-path", both, None),
        ):
            samples = timed(action, args.rounds)
            median = statistics.median(samples)
            ok = goal is None or median < goal
            met = met and ok
            table.add_row(
                f"{rate:g}",
                str(result.runs[0].tasks),
                what,
                f"{median:.2f}",
                f"{min(samples):.2f}-{max(samples):.2f}",
                "—" if goal is None else f"< {goal:g} s: {'met' if ok else 'MISSED'}",
            )
    console.print(table)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
