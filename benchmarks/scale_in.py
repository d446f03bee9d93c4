"""Scale-in that never kills a task: long tasks, bursts, the honest local ECS, every contender.

One load, one fleet of real Celery workers (`local/fleet.py`, playing ECS as harshly as
ECS: on scale-in it stops tasks chosen at random among those without scale-in
protection, SIGTERM then SIGKILL after the task's 30 s stopTimeout), each contender in
turn on a fresh service. The load, in real-world time (`Load` below): tasks of 2 to 6
minutes arriving one a minute for 24 minutes, bursts of 16 at 2 and 14 minutes, then
8 quiet minutes: between the bursts and in the tail every contender scales in while
long tasks still run. Each ECS task is a worker of concurrency 2. Every task's fate comes from the
fleet's ledger: completed, interrupted (a SIGKILL cut it short), redelivered, lost.

Contenders:

1. `celery-scaler`: target tracking on backlog_per_task (running, prefetched and waiting
   tasks per ECS task) at 70 % of the slots, cooldowns 60 s out and 120 s in, a pass every
   15 s, draining on (the default for Redis; with it `safeScaleIn` is off, as a drained
   busy worker finishes its tasks anyway);
2. `celery-scaler (no drain)`: the same with `drainScaleIn: false` and `safeScaleIn` on,
   the best a pool can do without draining;
3. `original` (emulated): a step table on backlog_per_task (`STEP_TABLE`) published every
   60 s to a CloudWatch alarm (2 of 2 datapoints) driving an Application Auto Scaling step
   policy, 300 s cooldowns (`analysis/simulate.py AlarmPathActor`, as in the closed-loop
   benchmark);
4. `target tracking, 20 s CPU` (emulated): AWS's newest native path, target tracking on
   ECSServiceAverageCPUUtilizationHighResolution (20-second datapoints) at 70 %, its two
   alarms (3 datapoints above the target, 15 below 90 % of it, `AlarmPathActor`), its
   300 s cooldowns; CPU is taken as busy slots over slots, as for CPU-bound tasks (the
   case most favourable to it);
5. `celery-ecs-autoscaler` 1.0.0 and 6. `ecs-celery-autoscaler` 0.1.0 (PyPI), run as in
   the closed-loop benchmark (the second protects its busy tasks through the ECS agent
   endpoint the fleet serves per task).

Every duration is divided by `--factor` (default 24) and reported back in real-world
seconds; inspect timeouts are not compressed. One contender runs about 80 s of load, the
whole benchmark (with the peers' installation) about 10 minutes on 2 cores; each
contender's run is cut off after its load plus 2 minutes.

    python -m benchmarks.scale_in [--factor 24] [--only NAME ...] [--seed N] [--json]

`--json` prints one JSON object: `{"contenders": {"<name>": {"tasks", "completed",
"interrupted", "redelivered", "lost", "scale_ins", "worker_seconds", "p95_wait_s"}},
"floor_worker_seconds"}`, the last the fewest worker-seconds that complete the load
(its tasks' run time over the slots of an ECS task).

Goal: celery-scaler interrupts and loses 0 tasks, scales in, and uses at most 1.1x the
worker-seconds of the best contender that does interrupt tasks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.closed_loop import (
    PEERS,
    REPO_ROOT,
    STOP_TIMEOUT,
    Run,
    celery_ecs_autoscaler,
    contender_fleet,
    ecs_celery_autoscaler,
    install_peers,
)
from benchmarks.report import print_results
from rich.console import Console

SERVICE, QUEUE = "workers", "long"
MIN, MAX, CONCURRENCY = 1, 8, 2
DRAINING = "celery-scaler"
NO_DRAIN = "celery-scaler (no drain)"
ORIGINAL = "original"
TRACKING = "target tracking, 20 s CPU"
CONTENDERS = (DRAINING, NO_DRAIN, ORIGINAL, TRACKING, *PEERS)


@dataclass(frozen=True)
class Load:
    """The load, in real-world seconds."""

    duration: float = 1440.0
    """Tasks arrive for this long; the run then goes on for `tail` with none."""
    tail: float = 480.0
    every: float = 60.0
    bursts: tuple[tuple[float, int], ...] = ((120.0, 16), (840.0, 16))
    """(when, how many tasks)."""
    shortest: float = 120.0
    longest: float = 360.0
    start_delay: float = 45.0

    def tasks(self, seed: int) -> list[tuple[float, float]]:
        """(when it is sent, how long it runs) for every task, in order, seeded."""
        rng = random.Random(seed)
        sent = [index * self.every for index in range(int(self.duration // self.every))]
        sent += [at for at, count in self.bursts for _ in range(count)]
        return [(at, rng.uniform(self.shortest, self.longest)) for at in sorted(sent)]

    def describe(self) -> str:
        bursts = ", ".join(f"{count} at {at / 60:g} min" for at, count in self.bursts)
        return (
            f"{self.duration / 60:g} min of tasks running {self.shortest / 60:g}-"
            f"{self.longest / 60:g} min, one every {self.every:g} s, bursts of {bursts}, then "
            f"{self.tail / 60:g} min without; ECS task start {self.start_delay:g} s, "
            f"stopTimeout {STOP_TIMEOUT:g} s; {MIN}..{MAX} ECS tasks of concurrency {CONCURRENCY}"
        )


LOAD = Load()


def pool_config(run: Run, policy: str) -> str:
    """The pool's configuration, every duration compressed."""
    s = run.seconds
    return f"""\
apiVersion: celery-scaler/v1
kind: Controller
spec: {{broker: '{run.broker}', interval: {s(15.0)}, inspectTimeout: 0.5s,
       cloudwatch: {{enabled: false}}, prometheus: {{enabled: false}}}}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: bench}}
spec:
  ecs: {{cluster: {run.cluster}, service: {SERVICE}}}
  queues: [{QUEUE}]
  minCapacity: {MIN}
  maxCapacity: {MAX}
  drainTimeout: {s(600.0)}
{policy}"""


def step_table(run: Run, cooldown: float) -> str:
    """The original setup's step policy (its alarms drive it; nothing drains)."""
    s = run.seconds
    return f"""\
  drainScaleIn: false
  metric: backlog_per_task
  scaleOut:
    threshold: 3
    cooldown: {s(min(cooldown, 60.0))}
    steps:
      - {{metricIntervalLowerBound: 0, metricIntervalUpperBound: 3, scalingAdjustment: 1}}
      - {{metricIntervalLowerBound: 3, scalingAdjustment: 3}}
  scaleIn:
    threshold: 1
    cooldown: {s(cooldown)}
    steps:
      - {{metricIntervalUpperBound: 0, scalingAdjustment: -1}}
"""


STEP_TABLE = "backlog_per_task ≥ 3: +1, ≥ 6: +3; ≤ 1: -1"


def tracking(run: Run, drain: bool) -> str:
    """celery-scaler's policy here: target tracking on the backlog per ECS task (running,
    prefetched and waiting tasks), at 70 % of its slots, as a user of it would scale."""
    s = run.seconds
    # Draining keeps every busy worker's task from being stopped, so the busy-worker floor
    # (safeScaleIn) only holds idle capacity back; without draining it is the best a pool
    # can do, and stays on.
    return f"""\
  drainScaleIn: {"true" if drain else "false"}
  safeScaleIn: {"false" if drain else "true"}
  metric: backlog_per_task
  targetTracking: {{targetValue: {TARGET * CONCURRENCY}, scaleOutCooldown: {s(60.0)},
                   scaleInCooldown: {s(120.0)}}}
"""


TARGET = 0.7
"""70 % of the slots: AWS's CPU target for the native path, the backlog target for ours."""


def celery_scaler(drain: bool) -> Callable[[Run], Callable[[], None]]:
    def start(run: Run) -> Callable[[], None]:
        from celery_scaler.compose import build
        from celery_scaler.core.config import parse_config
        from celery_scaler.engine.runner import run_forever

        config = parse_config(pool_config(run, tracking(run, drain)), "bench")
        reconciler = build(config)
        return lambda: run_forever(reconciler, run.stop, [])

    return start


@dataclass(frozen=True)
class Alarms:
    """One set of CloudWatch alarms on a policy, and which way their decisions may go."""

    policy: str
    """The pool's policy, as configuration lines."""
    every: float
    """Seconds between datapoints (publish interval and alarm period), real-world."""
    datapoints: int
    """Of as many periods, all breaching."""
    direction: Literal["both", "out", "in"] = "both"


def alarm_path(run: Run, alarms: Sequence[Alarms]) -> Callable[[], None]:
    """CloudWatch alarms and Application Auto Scaling, emulated
    (`analysis/simulate.py AlarmPathActor`), acting on the real service."""
    from celery_scaler.analysis.simulate import AlarmPathActor, AlarmPathSettings
    from celery_scaler.compose import build
    from celery_scaler.core.config import parse_config
    from celery_scaler.core.model import Action

    start = time.time()
    actors = []
    for each in alarms:
        config = parse_config(pool_config(run, each.policy), "bench")
        settings = AlarmPathSettings(
            publish_interval=run.seconds(each.every),
            period=run.seconds(each.every),
            evaluation_periods=each.datapoints,
            datapoints_to_alarm=each.datapoints,
        )
        actors.append((AlarmPathActor(config.pools[0].spec, settings, start), each.direction))
    # What gets published is read as the controller reads it (a dry run).
    observer = build(parse_config(pool_config(run, alarms[0].policy), "bench"))
    wanted = {"both": {Action.SCALE_OUT, Action.SCALE_IN}}
    wanted |= {"out": {Action.SCALE_OUT}, "in": {Action.SCALE_IN}}

    def loop() -> None:
        while not run.stop.is_set():
            now = time.time()
            due = [(actor, way) for actor, way in actors if now >= actor.next_time]
            if due:
                observation = observer.reconcile(now, dry_run=True).observations["bench"]
                for actor, way in due:
                    decision = actor.act(now, observation)
                    if decision is not None and decision.action in wanted[way]:
                        run.ecs.update_service(
                            cluster=run.cluster, service=SERVICE, desiredCount=decision.desired
                        )
            soonest = min(actor.next_time for actor, _ in actors)
            run.stop.wait(max(0.0, min(0.05, soonest - time.time())))

    return loop


def original(run: Run) -> Callable[[], None]:
    """The metric published every 60 s, 2 of 2 datapoints, the step policy, 300 s cooldowns."""
    return alarm_path(run, [Alarms(step_table(run, 300.0), 60.0, 2)])


def target_tracking(run: Run) -> Callable[[], None]:
    """AWS's two target tracking alarms on 20-second datapoints: 3 above the target scale
    out, 15 below 90 % of it scale in (each its own alarm, so each its own actor: a scale
    the other made is a count changed outside it, as Application Auto Scaling reads the
    current capacity)."""
    s = run.seconds
    policy = f"""\
  drainScaleIn: false
  safeScaleIn: false
  metric: busy_ratio
  targetTracking: {{targetValue: {TARGET}, scaleOutCooldown: {s(300.0)},
                   scaleInCooldown: {s(300.0)}}}
"""
    return alarm_path(
        run,
        [Alarms(policy, 20.0, 3, direction="out"), Alarms(policy, 20.0, 15, direction="in")],
    )


STARTERS: dict[str, Callable[[Run], Callable[[], None]]] = {
    DRAINING: celery_scaler(drain=True),
    NO_DRAIN: celery_scaler(drain=False),
    ORIGINAL: original,
    TRACKING: target_tracking,
    "celery-ecs-autoscaler": celery_ecs_autoscaler,
    "ecs-celery-autoscaler": ecs_celery_autoscaler,
}


@dataclass
class Result:
    name: str
    ran: bool
    note: str = ""
    tasks: int = 0
    completed: int = 0
    interrupted: int = 0
    redelivered: int = 0
    lost: int = 0
    scale_ins: int = 0
    worker_seconds: float = 0.0
    p95_wait_s: float | None = None
    unfinished: int = 0
    """Tasks neither completed nor lost when the run ended (still queued or running)."""
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    """(real-world seconds into the run, old, new) for every desiredCount change."""

    def figures(self) -> dict[str, Any]:
        keys = ("tasks", "completed", "interrupted", "redelivered", "lost", "scale_ins")
        found: dict[str, Any] = {key: getattr(self, key) for key in keys}
        found["worker_seconds"] = round(self.worker_seconds)
        found["p95_wait_s"] = None if self.p95_wait_s is None else round(self.p95_wait_s, 1)
        return found


def run_contender(name: str, factor: float, peers: Path, seed: int) -> Result:
    """One contender over the load, from a fresh service at the minimum."""
    from celery_scaler.adapters.celery_inspect import inspector_for
    from celery_scaler.adapters.retries import wait_until
    from celery_scaler.analysis.simulate import percentile
    from celery_scaler.local.aws_api import local_aws
    from celery_scaler.local.demo import RedisServer, TaskSender

    sys.path.insert(0, str(peers))
    load = LOAD
    with RedisServer() as redis_server, local_aws() as aws:
        os.environ.update(aws.env)
        cluster = "bench-scale-in"
        aws.create_service(cluster, SERVICE, MIN)
        env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(peers)])}
        run = Run(name, factor, cluster, redis_server.url, aws.client("ecs"), threading.Event())
        run.queue, run.service, run.min, run.max = QUEUE, SERVICE, MIN, MAX
        run.concurrency = CONCURRENCY
        fleet = contender_fleet(aws, run, load.start_delay, env, seed)
        sender = TaskSender(redis_server.url, QUEUE, "bench.report")
        plan = [(run.seconds(at), run.seconds(length)) for at, length in load.tasks(seed)]
        with fleet:
            with inspector_for(redis_server.url, 0.5) as inspector:
                expected = {frozenset([QUEUE]): MIN}
                if not wait_until(lambda: bool(inspector.inspect(expected)), 60, every=0.2):
                    raise TimeoutError("the first worker did not answer")
            contender = threading.Thread(target=STARTERS[name](run), daemon=True)
            started = time.time()
            used_before = fleet.worker_seconds(started)
            contender.start()
            end = started + run.seconds(load.duration + load.tail)
            for at, length in plan:
                run.stop.wait(max(0.0, started + at - time.time()))
                sender.send(length)
            run.stop.wait(max(0.0, end - time.time()))
            run.stop.set()
            contender.join(10)
            used = fleet.worker_seconds(end) - used_before
            changes = fleet.desired_changes()
            scale_ins = sum(1 for _, old, new in changes if new < old)
            records = sender.records()
        fates = fleet.fates()
        sender.close()

    first: dict[float, float] = {}
    for record in records:  # a redelivered task reports each start: its first counts
        first[record.enqueued_at] = min(
            first.get(record.enqueued_at, record.started), record.started
        )
    waits = sorted(start - sent for sent, start in first.items())
    unfinished = len(plan) - fates.completed - fates.lost
    return Result(
        name=name,
        ran=True,
        tasks=len(plan),
        completed=fates.completed,
        interrupted=fates.interrupted,
        redelivered=fates.redelivered,
        lost=fates.lost,
        scale_ins=scale_ins,
        worker_seconds=used * factor,
        p95_wait_s=None if not waits else (percentile(waits, 0.95) or 0.0) * factor,
        unfinished=unfinished,
        timeline=[((t - started) * factor, old, new) for t, old, new in changes],
    )


def run_all(names: list[str], factor: float, seed: int, console: Console | None) -> list[Result]:
    peers = Path(tempfile.mkdtemp(prefix="celery-scaler-bench-peers-"))
    failed = install_peers(peers) if set(names) & set(PEERS) else {}
    results = []
    budget = (LOAD.duration + LOAD.tail) / factor + 120
    for name in names:
        if name in failed:
            results.append(Result(name, ran=False, note=f"did not install: {failed[name]}"))
            continue
        if console is not None:
            console.print(f"running {name} …", highlight=False)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            try:
                process = subprocess.run(
                    [sys.executable, "-m", "benchmarks.scale_in", "--one", name,
                     "--factor", str(factor), "--seed", str(seed), "--peers", str(peers),
                     "--out", out.name],
                    cwd=REPO_ROOT,
                    capture_output=True,
                    text=True,
                    timeout=budget,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                results.append(Result(name, ran=False, note=f"did not end within {budget:.0f}s"))
                continue
            text = Path(out.name).read_text()
        if process.returncode != 0 or not text:
            why = (process.stderr.strip().splitlines() or ["no output"])[-1]
            results.append(Result(name, ran=False, note=f"did not run: {why}"))
            continue
        results.append(Result(**json.loads(text)))
    return results


HEADERS = [
    "contender", "tasks", "completed", "interrupted", "redelivered", "lost", "unfinished",
    "scale-ins", "worker-seconds", "p95 wait", "worker-s vs celery-scaler",
]  # fmt: skip


def table_rows(results: list[Result]) -> list[list[str]]:
    base = next((r for r in results if r.name == DRAINING and r.ran), None)
    rows = []
    for r in results:
        if not r.ran:
            rows.append([r.name, *["—"] * (len(HEADERS) - 2), r.note])
            continue
        ratio = f"{r.worker_seconds / base.worker_seconds:.2f}x" if base else "—"
        wait = "—" if r.p95_wait_s is None else f"{r.p95_wait_s:,.0f}s"
        rows.append(
            [
                r.name,
                str(r.tasks),
                str(r.completed),
                str(r.interrupted),
                str(r.redelivered),
                str(r.lost),
                str(r.unfinished),
                str(r.scale_ins),
                f"{r.worker_seconds:,.0f}",
                wait,
                ratio,
            ]
        )
    return rows


def floor_worker_seconds(seed: int) -> float:
    """The fewest worker-seconds that complete the load: its tasks' own run time, with
    every slot of every ECS task busy all the time (no start-up, no idle slot)."""
    return sum(runs for _, runs in LOAD.tasks(seed)) / CONCURRENCY


def goals(results: list[Result], floor: float) -> list[str]:
    ran = {r.name: r for r in results if r.ran}
    ours = ran.get(DRAINING)
    if ours is None:
        return ["celery-scaler did not run"]
    lines = [
        f"celery-scaler interrupts 0 tasks: {ours.interrupted} — {_met(ours.interrupted == 0)}",
        f"celery-scaler loses 0 tasks: {ours.lost} — {_met(ours.lost == 0)}",
        f"celery-scaler scales in: {ours.scale_ins} scale-ins — {_met(ours.scale_ins > 0)}",
    ]
    interrupting = [r for name, r in ran.items() if name != DRAINING and r.interrupted]
    if not interrupting:
        return [*lines, "no other contender interrupted a task"]
    # The fewest worker-seconds of all that interrupt; then per task completed, since a
    # contender that leaves tasks undone or loses them saves workers too.
    best = min(interrupting, key=lambda r: r.worker_seconds)
    ratio = ours.worker_seconds / best.worker_seconds
    undone = f", {best.completed} of {best.tasks} tasks completed" if best.unfinished else ""
    lines.append(
        f"worker-seconds ≤ 1.1x the best contender that interrupts tasks ({best.name}"
        f"{undone}): {ratio:.2f}x — {_met(ratio <= 1.1)}"
    )
    if 1.1 * best.worker_seconds < floor:
        lines.append(
            f"  which no contender can meet by completing the load: its tasks need at least "
            f"{floor:,.0f} worker-seconds, {floor / best.worker_seconds:.2f}x {best.name}'s"
        )
    done = [r for r in interrupting if r.completed]
    if done and ours.completed:
        cheapest = min(done, key=lambda r: r.worker_seconds / r.completed)
        per = (ours.worker_seconds / ours.completed) / (
            cheapest.worker_seconds / cheapest.completed
        )
        lines.append(
            f"the same per task completed ({cheapest.name}): {per:.2f}x — {_met(per <= 1.1)}"
        )
    return lines


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=24.0, help="time compression")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--seed", type=int, default=1, help="the load's and ECS's choices")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--one", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if args.one:
        result = run_contender(args.one, args.factor, args.peers, args.seed)
        args.out.write_text(json.dumps(asdict(result)))
        return

    console = None if args.json else Console()
    if console is not None:
        console.print(f"load: {LOAD.describe()}; time compressed {args.factor:g}x", highlight=False)
        console.print(
            f"celery-scaler: target tracking, backlog_per_task {TARGET * CONCURRENCY:g}; "
            f"original: {STEP_TABLE}",
            highlight=False,
        )
    results = run_all(args.only, args.factor, args.seed, console)
    floor = floor_worker_seconds(args.seed)
    if console is None:
        contenders = {r.name: r.figures() if r.ran else {"error": r.note} for r in results}
        print(json.dumps({"contenders": contenders, "floor_worker_seconds": round(floor)}))
        return
    rows = table_rows(results)
    timelines = [(r.name, r.timeline) for r in results if r.ran]
    print_results(
        console,
        "scale-in (times in real-world seconds)",
        HEADERS,
        rows,
        goals(results, floor),
        timelines,
        markdown=args.markdown,
    )


if __name__ == "__main__":
    main()
