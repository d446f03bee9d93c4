"""How long observing the workers takes: CeleryInspector against one broadcast and
against Celery's own inspect.

Starts 4 and then 32 live workers on Redis (prefork, concurrency 1), each consuming
`--queues` queues, and times, in the same run and against the same workers:

- "one broadcast": a single command (`ping`) to every worker on the inspector's own
  connection, until all of them answered: the least a round can cost;
- `CeleryInspector.inspect(expected={queues: N})` as the controller runs it: the state
  commands (stats, active, reserved) and the queue membership kept from the first round
  (scheduled and revoked are asked only when a pool scales on them: not here);
- "the original approach": five sequential `app.control.inspect(timeout=1.0)` calls
  (stats, active, reserved, scheduled, revoked), each of which waits its full timeout;

first with every worker alive, then with one worker SIGSTOPped (hung; ECS still counts
it, so it is expected). Run from the repository root:

    python -m benchmarks.observe_pass [--rounds 15] [--workers 4 32] [--queues 1]

Goals: all alive, a round <= 2x one broadcast at 4 workers and <= 0.25 s at any count;
<= inspect timeout + 0.5 s with one hung; the original >= 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from rich.console import Console
from rich.table import Table

from celery_scaler.adapters.celery_inspect import Command, inspector_for
from celery_scaler.core.config import mask_url

ORIGINAL_COMMANDS = ("stats", "active", "reserved", "scheduled", "revoked")


@dataclass(frozen=True)
class Result:
    workers: int
    scenario: str
    approach: str
    samples: tuple[float, ...]
    goal: str
    met: bool

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=10, method="inclusive")[8]


def timed(action: Callable[[], object], rounds: int) -> tuple[float, ...]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return tuple(samples)


def original_pass(app: Celery, timeout: float) -> None:
    """What the controller replaces: one command after the other, each a full timeout."""
    inspect = app.control.inspect(timeout=timeout)
    for command in ORIGINAL_COMMANDS:
        getattr(inspect, command)()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--broker", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--queues", type=int, default=1, help="queues each worker consumes")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per measurement")
    parser.add_argument(
        "--original-rounds",
        type=int,
        default=None,
        help="rounds of the original (≥ 5 s each; 0 skips it)",
    )
    parser.add_argument("--timeout", type=float, default=1.0, help="inspect timeout, seconds")
    parser.add_argument("--pool", choices=["prefork", "threads", "solo"], default="prefork")
    args = parser.parse_args(argv)
    original_rounds = args.rounds if args.original_rounds is None else args.original_rounds

    # The worker helpers live with the tests; this script runs from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.workers import start_workers

    # Piped into a file or CI log, rich would wrap the table to 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 110)
    results: list[Result] = []
    # A control exchange of the run's own: workers of anything else on this broker
    # (tests running meanwhile) neither answer nor count as the expected workers.
    control = f"bench-{uuid.uuid4().hex[:8]}"
    client = Celery("benchmark-original", broker=args.broker, set_as_current=False)
    client.conf.control_exchange = control
    for count in args.workers:
        started = time.perf_counter()
        queues = [f"{control}-queue-{index}" for index in range(args.queues)]
        with (
            start_workers(
                args.broker,
                count,
                queues,
                pool=args.pool,
                control_exchange=control,
                start_timeout=180,
            ) as fleet,
            # As the composition root builds it for pools scaling on queue_depth.
            inspector_for(
                args.broker, args.timeout, control_exchange=control, metrics={"queue_depth"}
            ) as inspector,
        ):
            console.print(
                f"{count} workers ({args.pool}, concurrency 1) up in "
                f"{time.perf_counter() - started:.1f} s"
            )
            expected = {frozenset(queues): count}
            inspector.inspect(expected)  # connect and learn the names, as a running controller has

            def ours(expected: dict[frozenset[str], int] = expected) -> object:
                return inspector.inspect(expected)

            def broadcast(count: int = count) -> object:
                # The inspector's own round machinery (private): one command, every reply.
                return inspector._send(
                    {"ping": Command("ping")}, lambda replies: len(replies.get("ping", {})) >= count
                )

            def original() -> None:
                original_pass(client, args.timeout)

            hung_goal = args.timeout + 0.5
            for scenario in ("all alive", "one hung"):
                hang = fleet.paused(fleet[0]) if scenario == "one hung" else nullcontext()
                with hang:
                    # Side by side: a broadcast, then a round, and again.
                    pairs = [
                        (timed(broadcast, 1)[0], timed(ours, 1)[0]) for _ in range(args.rounds)
                    ]
                    original_samples = timed(original, original_rounds) if original_rounds else ()
                one = tuple(b for b, _ in pairs)
                ours_samples = tuple(o for _, o in pairs)
                if scenario == "all alive":
                    ratio = statistics.median(ours_samples) / statistics.median(one)
                    goal, met = "≤ 0.25 s", statistics.median(ours_samples) <= 0.25
                    if count <= 4:
                        goal, met = f"≤ 2x broadcast ({ratio:.1f}x)", met and ratio <= 2.0
                    results.append(Result(count, scenario, "one broadcast", one, "—", True))
                else:
                    goal = f"≤ {hung_goal:g} s"
                    met = statistics.median(ours_samples) <= hung_goal
                results += [
                    Result(count, scenario, "CeleryInspector", ours_samples, goal, met),
                ]
                if original_samples:
                    results.append(
                        Result(
                            count,
                            scenario,
                            "original",
                            original_samples,
                            "≥ 5 s",
                            statistics.median(original_samples) >= 5.0,
                        )
                    )
                console.print(f"  {scenario}: measured")
    client.close()

    table = Table(
        title=f"Observation pass, inspect timeout {args.timeout:g} s, {args.queues} queue(s) "
        f"per worker, {mask_url(args.broker)}",
        caption="original: five sequential app.control.inspect() calls "
        "(stats, active, reserved, scheduled, revoked)",
    )
    for column in ("workers", "scenario", "approach", "rounds", "median s", "p90 s", "goal", "met"):
        right = column.endswith((" s", "rounds"))
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for result in results:
        table.add_row(
            str(result.workers),
            result.scenario,
            result.approach,
            str(len(result.samples)),
            f"{result.median:.3f}",
            f"{result.p90:.3f}",
            result.goal,
            "yes" if result.met else "NO",
        )
    console.print(table)
    return 0 if all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
