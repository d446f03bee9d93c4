"""Closed loop: one load trace, one fleet of real Celery workers, each autoscaler in turn.

Every contender scales the same ECS service (the local AWS API) whose desiredCount the
local fleet turns into real `celery worker` processes, under the same trace: a trickle
of tasks, a burst, the trickle again. Contenders:

1. celery-scaler with a step table (`STEP_TABLE` below), a pass every 15 s;
2. the original approach: a metric published every 60 s, a CloudWatch alarm (period
   60 s, 2 of 2 evaluation periods), an Application Auto Scaling step policy with the
   same steps and a 300 s cooldown. CloudWatch alarms and AAS do not run locally: this
   is an emulation of their documented semantics (`celery_scaler.analysis.simulate.AlarmPathActor`,
   the model the simulator uses), on the same metric, acting on the real service;
3. `celery-ecs-autoscaler` 1.0.0 (PyPI; polls the queue and ECS), its defaults, driven
   through its public `run_target_once` every `poll_seconds` (15 s);
4. `ecs-celery-autoscaler` 0.1.0 (PyPI; in-app, Celery signals plus a 30 s loop),
   installed in the publisher and in every worker as its README says; each worker
   protects its own task through the ECS agent's task-protection endpoint, which the
   local fleet serves per task from the local AWS API (`local/ecs_agent.py`).

The PyPI packages are installed with `pip install --no-deps --target` into a throwaway
directory (their dependencies, boto3, celery and redis, are the project's own), never
into the project's environment.

The fleet plays ECS as ECS plays it (`local/fleet.py`): on scale-in it stops tasks
chosen at random among the unprotected ones, SIGTERM then SIGKILL after the task's 30 s
stopTimeout; the tasks it cuts short are counted (`tasks interrupted`).

Every duration of every contender and of the fleet (intervals, periods, cooldowns,
task run time, the 45 s ECS task start, the stopTimeout) is divided by `--factor`; network timeouts
(inspect replies) are not, as message latency does not compress. Reported times are
multiplied back: they read as real-world seconds.

    python -m benchmarks.closed_loop [--factor 20] [--only NAME ...] [--markdown]

Goal: celery-scaler's p95 wait ≤ 0.5x the original's and no worse than the best peer's,
with worker-seconds ≤ 1.1x that peer's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import print_results
from rich.console import Console

REPO_ROOT = Path(__file__).resolve().parents[1]
PEERS = {"celery-ecs-autoscaler": "1.0.0", "ecs-celery-autoscaler": "0.1.0"}
CONTENDERS = ("celery-scaler", "original", *PEERS)
SERVICE = "workers"
QUEUE = "bench"
MIN, MAX = 1, 10
CONCURRENCY = 4
"""Celery worker processes (threads) per ECS task, as with `celery worker -c 4`."""
ORIGINAL_NOTE = (
    "emulated: CloudWatch alarm + AAS step policy semantics (metric every 60 s, period "
    "60 s, 2 of 2 datapoints, cooldown 300 s), same metric and steps"
)


@dataclass(frozen=True)
class Trace:
    """The load, in real-world seconds."""

    duration: float = 1800.0
    burst_at: float = 300.0
    burst_tasks: int = 200
    task_seconds: float = 20.0
    trickle_every: float = 30.0
    start_delay: float = 45.0
    """From ECS launching a task to its container starting."""

    def describe(self) -> str:
        return (
            f"{self.duration / 60:g} min: one {self.task_seconds:g} s task every "
            f"{self.trickle_every:g} s, a burst of {self.burst_tasks} at "
            f"{self.burst_at / 60:g} min; ECS task start {self.start_delay:g} s; "
            f"{MIN}..{MAX} ECS tasks, each a worker of concurrency {CONCURRENCY}"
        )


TRACE = Trace()


def step_table(interval: float, out_cooldown: float, in_cooldown: float) -> str:
    """The pool's configuration (real-world seconds, compressed by the caller)."""
    return f"""\
apiVersion: celery-scaler/v1
kind: Controller
spec: {{interval: {interval}, inspectTimeout: 0.5s, cloudwatch: {{enabled: false}},
       prometheus: {{enabled: false}}}}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: bench}}
spec:
  ecs: {{cluster: CLUSTER, service: {SERVICE}}}
  queues: [{QUEUE}]
  minCapacity: {MIN}
  maxCapacity: {MAX}
  metric: backlog_per_task
  scaleOut:
    threshold: 8
    cooldown: {out_cooldown}
    steps:
      - {{metricIntervalLowerBound: 0, metricIntervalUpperBound: 8, scalingAdjustment: 1}}
      - {{metricIntervalLowerBound: 8, metricIntervalUpperBound: 24, scalingAdjustment: 3}}
      - {{metricIntervalLowerBound: 24, scalingAdjustment: 9}}
  scaleIn:
    threshold: 2
    adjustmentType: PercentChangeInCapacity
    cooldown: {in_cooldown}
    steps:
      - {{metricIntervalUpperBound: 0, scalingAdjustment: -50}}
"""


STEP_TABLE = "backlog_per_task ≥ 8: +1, ≥ 16: +3, ≥ 32: +9; ≤ 2: -50%"


@dataclass
class Result:
    name: str
    ran: bool
    note: str = ""
    first_scale_out: float | None = None
    drain: float | None = None
    p50: float | None = None
    p95: float | None = None
    unstarted: int = 0
    worker_seconds: float | None = None
    actions: int | None = None
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    interrupted: int = 0
    """Tasks cut short by a SIGKILL after the stopTimeout (the fleet's ledger)."""
    lost: int = 0


# --- one contender, in a process of its own ------------------------------------------------


@dataclass
class Run:
    """What a contender needs: the service, the broker, compressed time, the pool's shape."""

    name: str
    factor: float
    cluster: str
    broker: str
    ecs: Any
    stop: threading.Event
    queue: str = QUEUE
    service: str = SERVICE
    min: int = MIN
    max: int = MAX
    concurrency: int = CONCURRENCY

    def seconds(self, real: float) -> float:
        return real / self.factor

    def config_text(self, out_cooldown: float, in_cooldown: float) -> str:
        text = step_table(self.seconds(15.0), self.seconds(out_cooldown), self.seconds(in_cooldown))
        return text.replace("CLUSTER", self.cluster).replace(
            "spec: {interval", f"spec: {{broker: '{self.broker}', interval"
        )


def celery_scaler(run: Run) -> Callable[[], None]:
    from celery_scaler.compose import build
    from celery_scaler.core.config import parse_config
    from celery_scaler.engine.runner import run_forever

    reconciler = build(parse_config(run.config_text(60.0, 60.0), "bench"))
    return lambda: run_forever(reconciler, run.stop, [])


def original(run: Run) -> Callable[[], None]:
    from celery_scaler.analysis.simulate import AlarmPathActor, AlarmPathSettings
    from celery_scaler.compose import build
    from celery_scaler.core.config import parse_config
    from celery_scaler.core.model import Action

    config = parse_config(run.config_text(300.0, 300.0), "bench")
    pool = config.pools[0]
    # The metric the Beat task publishes is read as the controller reads it (a dry run).
    observer = build(config)
    settings = AlarmPathSettings(
        publish_interval=run.seconds(60.0),
        period=run.seconds(60.0),
        evaluation_periods=2,
        datapoints_to_alarm=2,
    )

    def loop() -> None:
        actor = AlarmPathActor(pool.spec, settings, time.time())
        while not run.stop.is_set():
            now = time.time()
            if now >= actor.next_time:
                observation = observer.reconcile(now, dry_run=True).observations[pool.name]
                decision = actor.act(now, observation)
                if decision is not None and decision.action is not Action.HOLD:
                    run.ecs.update_service(
                        cluster=run.cluster, service=run.service, desiredCount=decision.desired
                    )
            run.stop.wait(max(0.0, min(0.05, actor.next_time - time.time())))

    return loop


def celery_ecs_autoscaler(run: Run) -> Callable[[], None]:
    import boto3
    from celery_ecs_autoscaler import (
        CooldownStore,
        EcsServiceTarget,
        RedisQueueSource,
        ScalingTarget,
        run_target_once,
    )

    # Its defaults (poll 15 s, cooldowns 60 s out and 120 s in), time-compressed.
    target = ScalingTarget(
        name="bench",
        source=RedisQueueSource(broker_url=run.broker, queue_names=[run.queue]),
        ecs=EcsServiceTarget(
            cluster_name=run.cluster,
            service_name=run.service,
            worker_concurrency=run.concurrency,
            min_tasks=run.min,
            max_tasks=run.max,
            scale_out_cooldown_seconds=run.seconds(60.0),  # type: ignore[arg-type]
            scale_in_cooldown_seconds=run.seconds(120.0),  # type: ignore[arg-type]
        ),
    )
    client = boto3.client("ecs")
    store = CooldownStore()

    def loop() -> None:
        # Its own `run()` sleeps `poll_seconds`, an int; this is that loop, compressed.
        while not run.stop.wait(run.seconds(15.0)):
            try:
                run_target_once(
                    ecs_client=client, target=target, cooldown_store=store, dry_run=False
                )
            except Exception as exc:
                logging.getLogger("bench").warning("celery-ecs-autoscaler: %s", exc)

    return loop


def ecs_celery_autoscaler(run: Run) -> Callable[[], None]:
    from benchmarks.peer_app import install_ecs_celery_autoscaler
    from celery import Celery

    # The publisher's side (this process): scales on every publish.
    publisher = Celery("bench-publisher", broker=run.broker, set_as_current=False)
    install_ecs_celery_autoscaler(publisher, dict(os.environ))
    return lambda: run.stop.wait()


STARTERS: dict[str, Callable[[Run], Callable[[], None]]] = {
    "celery-scaler": celery_scaler,
    "original": original,
    "celery-ecs-autoscaler": celery_ecs_autoscaler,
    "ecs-celery-autoscaler": ecs_celery_autoscaler,
}


def peer_environment(run: Run, workers: dict[str, str], agent: str) -> str:
    """Set up ecs-celery-autoscaler's side: its settings in `workers` (the workers'
    environment) and in this process's (the publisher's); the Celery app module to run.

    Its workers reach the ECS agent through the URLs the local fleet gives each task (real
    protection of their own task, `local/ecs_agent.py`); the publisher needs the variables
    set to install at all, and never calls them.
    """
    settings = {
        "PEER_CLUSTER": run.cluster,
        "PEER_SERVICE": run.service,
        "PEER_QUEUE": run.queue,
        "PEER_MIN": str(run.min),
        "PEER_MAX": str(run.max),
        "PEER_CONCURRENCY": str(run.concurrency),
        "PEER_TIME_FACTOR": str(run.factor),
    }
    os.environ.update({**settings, "ECS_AGENT_URI": agent, "ECS_CONTAINER_METADATA_URI_V4": agent})
    workers |= {**settings, "PEER_WORKER": "1"}
    return "benchmarks.peer_app"


STOP_TIMEOUT = 30.0
"""The ECS task's stopTimeout (ECS's default): SIGTERM, then SIGKILL after this."""


def contender_fleet(
    aws: Any, run: Run, start_delay: float, env: dict[str, str], seed: int = 0
) -> Any:
    """The honest local ECS (`local/fleet.py`) for one contender's run: its service, queue
    and concurrency, the ECS task start delay and stopTimeout compressed, ECS's choices
    seeded; for ecs-celery-autoscaler the workers run that peer's app."""
    from celery_scaler.local.fleet import local_fleet

    fleet = local_fleet(
        aws,
        run.cluster,
        run.service,
        run.broker,
        [run.queue],
        start_delay=run.seconds(start_delay),
        stop_timeout=run.seconds(STOP_TIMEOUT),
        poll_interval=0.1,
        concurrency=run.concurrency,
        env=env,
        cwd=REPO_ROOT,
        seed=seed,
    )
    if run.name == "ecs-celery-autoscaler":
        fleet.app_module = peer_environment(run, env, fleet.agent.url)
    return fleet


def run_contender(name: str, factor: float, peers: Path) -> Result:
    """One contender over the trace, from a fresh service at the minimum."""
    from celery_scaler.adapters.celery_inspect import inspector_for
    from celery_scaler.adapters.retries import wait_until
    from celery_scaler.analysis.simulate import percentile
    from celery_scaler.local.aws_api import local_aws
    from celery_scaler.local.demo import RedisServer, TaskSender

    sys.path.insert(0, str(peers))
    trace = TRACE
    with RedisServer() as redis_server, local_aws() as aws:
        os.environ.update(aws.env)
        cluster = f"bench-{name}"
        aws.create_service(cluster, SERVICE, MIN)
        env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(peers)])}
        ecs = aws.client("ecs")
        run = Run(name, factor, cluster, redis_server.url, ecs, threading.Event())
        fleet = contender_fleet(aws, run, trace.start_delay, env)
        burst = TaskSender(redis_server.url, QUEUE, "bench.burst")
        trickle = TaskSender(redis_server.url, QUEUE, "bench.trickle")
        task = run.seconds(trace.task_seconds)
        with fleet:
            expected = {frozenset([QUEUE]): MIN}
            with inspector_for(redis_server.url, 0.5) as inspector:
                if not wait_until(lambda: bool(inspector.inspect(expected)), 60, every=0.2):
                    raise TimeoutError("the first worker did not answer")
            contender = threading.Thread(target=STARTERS[name](run), daemon=True)
            started = time.time()
            used_before = fleet.worker_seconds(started)
            contender.start()
            burst_at = started + run.seconds(trace.burst_at)
            next_trickle, sent_burst = started, False
            end = started + run.seconds(trace.duration)
            while (now := time.time()) < end:
                if now >= next_trickle:
                    trickle.send(task)
                    next_trickle += run.seconds(trace.trickle_every)
                if not sent_burst and now >= burst_at:
                    burst.send(task, trace.burst_tasks)
                    sent_burst = True
                time.sleep(0.02)
            run.stop.set()
            contender.join(10)
            used = fleet.worker_seconds(end) - used_before
            changes = [c for c in fleet.desired_changes() if started <= c[0] <= end]
            fates = fleet.fates()
        burst_records = burst.records()
        records = burst_records + trickle.records()
        burst.close()
        trickle.close()

    waits = [r.wait for r in records]
    unstarted = trace.burst_tasks - len(burst_records)
    # A task still waiting at the end waited at least until the end: a lower bound.
    waits += [end - burst_at] * unstarted
    out = next((t for t, old, new in changes if new > old and t >= burst_at), None)
    drain = None
    if not unstarted:
        drain = max(r.started for r in burst_records) + task - burst_at
    return Result(
        name=name,
        ran=True,
        first_scale_out=None if out is None else (out - burst_at) * factor,
        drain=None if drain is None else drain * factor,
        p50=(percentile(sorted(waits), 0.5) or 0) * factor,
        p95=(percentile(sorted(waits), 0.95) or 0) * factor,
        unstarted=unstarted,
        worker_seconds=used * factor,
        actions=len(changes),
        timeline=[((t - started) * factor, old, new) for t, old, new in changes],
        interrupted=fates.interrupted,
        lost=fates.lost,
    )


# --- the whole benchmark ---------------------------------------------------------------------


def install_peers(target: Path) -> dict[str, str]:
    """pip-install each PyPI peer into `target`; name → why it did not install."""
    failed: dict[str, str] = {}
    for name, version in PEERS.items():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
             str(target), f"{name}=={version}"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode != 0:
            failed[name] = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
    return failed


def run_all(names: list[str], factor: float, console: Console) -> list[Result]:
    peers = Path(tempfile.mkdtemp(prefix="celery-scaler-bench-peers-"))
    failed = install_peers(peers) if set(names) & set(PEERS) else {}
    results = []
    for name in names:
        if name in failed:
            results.append(Result(name, ran=False, note=f"did not install: {failed[name]}"))
            continue
        console.print(f"running {name} …", highlight=False)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            process = subprocess.run(
                [sys.executable, "-m", "benchmarks.closed_loop", "--one", name,
                 "--factor", str(factor), "--peers", str(peers), "--out", out.name],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=TRACE.duration / factor + 180,
            )  # fmt: skip
            text = Path(out.name).read_text()
        if process.returncode != 0 or not text:
            why = (process.stderr.strip().splitlines() or ["no output"])[-1]
            results.append(Result(name, ran=False, note=f"did not run: {why}"))
            continue
        result = Result(**json.loads(text))
        if name == "original":
            result.note = ORIGINAL_NOTE
        results.append(result)
    return results


def _fmt(value: float | None, unit: str = "s") -> str:
    return "—" if value is None else f"{value:,.0f}{unit}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "—"
    return f"{value / base:.2f}x"


def table_rows(results: list[Result]) -> list[list[str]]:
    base = next((r for r in results if r.name == "celery-scaler" and r.ran), None)
    rows = []
    for r in results:
        if not r.ran:
            rows.append([r.name, *["—"] * 9, r.note])
            continue
        p95 = "—" if r.p95 is None else f"{r.p95:,.0f}s" + (" (≥)" if r.unstarted else "")
        rows.append(
            [
                r.name,
                _fmt(r.first_scale_out),
                _fmt(r.drain) if r.drain is not None else f"not drained ({r.unstarted} waiting)",
                _fmt(r.p50),
                p95,
                _fmt(r.worker_seconds, ""),
                str(r.actions),
                f"{r.interrupted} ({r.lost} lost)",
                _ratio(r.p95, base.p95 if base else None),
                _ratio(r.worker_seconds, base.worker_seconds if base else None),
                r.note,
            ]
        )
    return rows


HEADERS = [
    "contender", "burst → first scale-out", "burst drained", "p50 wait", "p95 wait",
    "worker-seconds", "scaling actions", "tasks interrupted", "p95 vs celery-scaler",
    "worker-s vs celery-scaler", "note",
]  # fmt: skip


def goals(results: list[Result]) -> list[str]:
    by_name = {r.name: r for r in results if r.ran and r.p95 is not None}
    ours = by_name.get("celery-scaler")
    if ours is None or ours.p95 is None:
        return ["celery-scaler did not run"]
    lines = []
    if (orig := by_name.get("original")) is not None and orig.p95:
        met = ours.p95 <= 0.5 * orig.p95
        lines.append(f"p95 wait ≤ 0.5x the original's: {ours.p95 / orig.p95:.2f}x — {_met(met)}")
    peers = [r for name, r in by_name.items() if name in PEERS and r.p95 is not None]
    if peers:
        best = min(peers, key=lambda r: r.p95 or 0)
        assert best.p95 is not None
        met = ours.p95 <= best.p95
        lines.append(f"p95 wait no worse than the best peer ({best.name}): {_met(met)}")
        if best.worker_seconds and ours.worker_seconds is not None:
            ratio = ours.worker_seconds / best.worker_seconds
            lines.append(
                f"worker-seconds ≤ 1.1x {best.name}'s: {ratio:.2f}x — {_met(ratio <= 1.1)}"
            )
    return lines


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=20.0, help="time compression")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--one", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if args.one:
        result = run_contender(args.one, args.factor, args.peers)
        args.out.write_text(json.dumps(asdict(result)))
        return

    console = Console()
    console.print(f"trace: {TRACE.describe()}; time compressed {args.factor:g}x", highlight=False)
    console.print(f"celery-scaler's step table: {STEP_TABLE}", highlight=False)
    results = run_all(args.only, args.factor, console)
    rows = table_rows(results)
    timelines = [(r.name, r.timeline) for r in results if r.ran]
    print_results(
        console,
        "closed loop (times in real-world seconds)",
        HEADERS,
        rows,
        goals(results),
        timelines,
        markdown=args.markdown,
    )


if __name__ == "__main__":
    main()
