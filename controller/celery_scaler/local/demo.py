"""`celery-scaler demo`: the whole loop on this machine, for someone with nothing configured.

A Redis broker (the one on 127.0.0.1:6379 if it answers, else a private `redis-server`
on a free port), the local AWS API in this process with an ECS service, the demo Celery
app and a load pattern (quiet → burst → quiet), the local fleet playing ECS, and the
controller's continuous loop at a short interval. A live view shows it working; the run
ends by itself with a summary. Every name the demo uses on the broker (queue, control
exchange) is unique to the run, so it never talks to a user's real workers.

The pieces (`RedisServer`, `TaskSender`, `Timeline`) serve the end-to-end tests and the
closed-loop benchmark too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from celery_scaler.adapters.retries import wait_until
from celery_scaler.analysis.simulate import percentile
from celery_scaler.compose import build
from celery_scaler.core.config import Config, mask_url, parse_config
from celery_scaler.core.metrics import busy_workers
from celery_scaler.engine.reconcile import PassReport, PoolResult
from celery_scaler.engine.runner import run_forever
from celery_scaler.local.aws_api import local_aws
from celery_scaler.local.fleet import FleetCounts, FleetEvent, LocalFleet, local_fleet
from celery_scaler.local.ledger import Fates

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CLUSTER, SERVICE, POOL = "celery-scaler-demo", "workers", "demo"
NO_REDIS = (
    "the demo needs Redis: nothing answers on 127.0.0.1:6379 and there is no redis-server "
    "on PATH (install it: `apt-get install redis-server` or `brew install redis`, or run "
    "`docker run -p 6379:6379 redis`; or pass --redis URL)"
)
NO_MOTO = (
    "the demo runs a local AWS API (moto), which is not installed: "
    "pip install 'celery-scaler[local]'"
)


class DemoError(Exception):
    """The demo cannot run here; the message says what to do."""


# --- the broker -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    import redis

    try:
        with redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        ) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


@dataclass
class RedisServer:
    """A private `redis-server` on a loopback port, without persistence; restartable."""

    port: int = field(default_factory=free_port)
    executable: str = "redis-server"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        command = [
            self.executable,
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        process = self.process
        # Done waiting once it answers, or once it has exited (the port was taken, say).
        up = wait_until(lambda: process.poll() is not None or redis_answers(self.url, 0.2), timeout)
        if not up or process.poll() is not None:
            self.stop()
            raise DemoError(f"redis-server did not start on port {self.port}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def demo_broker(url: str | None) -> Iterator[str]:
    """The Redis URL to use: `url`, else 127.0.0.1:6379, else a private redis-server."""
    if url is not None:
        if not redis_answers(url, timeout=2.0):
            raise DemoError(f"Redis at {mask_url(url)} does not answer")
        yield url
    elif redis_answers(DEFAULT_REDIS_URL):
        yield DEFAULT_REDIS_URL
    elif (executable := shutil.which("redis-server")) is not None:
        with RedisServer(executable=executable) as server:
            yield server.url
    else:
        raise DemoError(NO_REDIS)


# --- load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRecord:
    """One task as it reported itself when it started."""

    enqueued_at: float
    started: float
    worker: str | None

    @property
    def wait(self) -> float:
        return self.started - self.enqueued_at


class TaskSender:
    """Sends the demo app's `sleep` task to one queue; reads back when each one started."""

    def __init__(self, broker_url: str, queue: str, report_key: str) -> None:
        import redis
        from celery import Celery

        self.queue = queue
        self.report_key = report_key
        self._app = Celery("celery-scaler-demo-client", broker=broker_url, set_as_current=False)
        self._redis = redis.Redis.from_url(broker_url)

    def send(self, seconds: float, count: int = 1) -> None:
        from celery_scaler.local.demo_app import SLEEP_TASK

        with self._app.producer_or_acquire() as producer:
            for _ in range(count):
                self._app.send_task(
                    SLEEP_TASK,
                    args=[seconds],
                    kwargs={"enqueued_at": time.time(), "report_to": self.report_key},
                    queue=self.queue,
                    producer=producer,
                )

    def records(self) -> list[TaskRecord]:
        """Every task that has started so far (best effort: empty while Redis is down)."""
        try:
            raw = self._redis.lrange(self.report_key, 0, -1)
        except Exception:
            return []
        records = [json.loads(item) for item in raw]
        return [
            TaskRecord(float(r["enqueued_at"]), float(r["started"]), r.get("worker"))
            for r in records
        ]

    def close(self) -> None:
        self._app.close()
        self._redis.close()


def delete_keys(broker_url: str, token: str) -> None:
    """Best effort: remove every key with `token` in its name (queues, bindings, reports)."""
    import redis

    with contextlib.suppress(Exception), redis.Redis.from_url(broker_url) as client:
        keys = list(client.scan_iter(f"*{token}*"))
        if keys:
            client.delete(*keys)


# --- the configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSettings:
    redis_url: str | None = None
    """None: 127.0.0.1:6379 if it answers, else a private redis-server."""
    interval: float = 1.0
    start_delay: float = 3.0
    """Seconds an ECS task takes to start (30-60 s on ECS; compressed here)."""
    stop_timeout: float = 2.0
    """The task's stopTimeout: SIGKILL this long after SIGTERM (ECS's 30 s, compressed as
    the start delay is). A running task still going then is cut short."""
    min_capacity: int = 1
    max_capacity: int = 8
    quiet_seconds: float = 8.0
    burst_tasks: int = 48
    task_seconds: float = 2.0
    trickle_every: float = 2.0
    """A light steady load around the burst: one short task this often."""
    cooldown: float = 4.0
    """Scale-out and scale-in cooldown."""
    linger: float = 2.0
    """Seconds to keep watching once the service is back at its minimum."""
    time_limit: float = 105.0


def demo_config_text(
    broker_url: str,
    queue: str,
    control_exchange: str,
    s: DemoSettings,
    *,
    cluster: str = CLUSTER,
) -> str:
    """The configuration the demo runs, as a user would write it."""
    return f"""\
apiVersion: celery-scaler/v1
kind: Controller
spec:
  broker: {broker_url}
  interval: {s.interval:g}s
  inspectTimeout: 0.5s
  controlExchange: {control_exchange}
  cloudwatch: {{enabled: false}}
  prometheus: {{enabled: false}}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: {POOL}}}
spec:
  ecs: {{cluster: {cluster}, service: {SERVICE}}}
  queues: [{queue}]
  minCapacity: {s.min_capacity}
  maxCapacity: {s.max_capacity}
  metric: backlog_per_task        # (waiting + running tasks) / desired count
  scaleOut:
    threshold: 4
    cooldown: {s.cooldown:g}s
    steps:
      - {{metricIntervalLowerBound: 0, metricIntervalUpperBound: 4, scalingAdjustment: 1}}
      - {{metricIntervalLowerBound: 4, metricIntervalUpperBound: 12, scalingAdjustment: 2}}
      - {{metricIntervalLowerBound: 12, scalingAdjustment: 4}}
  scaleIn:
    threshold: 0.5
    adjustmentType: PercentChangeInCapacity
    cooldown: {s.cooldown:g}s
    steps:
      - {{metricIntervalUpperBound: 0, scalingAdjustment: -50}}
"""


# --- what happened ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One controller pass as the demo shows it."""

    time: float
    queue_depth: int | None
    busy: int | None
    answered: int | None
    current: int | None
    desired: int | None
    running: int
    result: PoolResult


class Timeline:
    """Passes and fleet events as they happen (written by the controller thread)."""

    def __init__(self, fleet: LocalFleet, pool: str) -> None:
        self._fleet = fleet
        self._pool = pool
        self._lock = threading.Lock()
        self.samples: list[Sample] = []

    def record(self, report: PassReport) -> None:
        """A `runner.Reporter`."""
        result = next(r for r in report.results if r.pool == self._pool)
        workers = report.observations[self._pool].workers
        depth = result.observed.get("queue_depth")
        sample = Sample(
            time=report.time,
            queue_depth=None if depth is None else int(depth),
            busy=None if workers is None else busy_workers(workers),
            answered=None if workers is None else len(workers),
            current=result.current,
            desired=result.desired,
            running=self._fleet.counts().running,
            result=result,
        )
        with self._lock:
            self.samples.append(sample)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)


@dataclass(frozen=True)
class DemoSummary:
    started: float
    ended: float
    interrupted: bool
    burst_at: float | None
    burst_tasks: int
    first_scale_out: Sample | None
    peak_desired: int
    drained_at: float | None
    """When the last burst task finished."""
    back_to_min_at: float | None
    waits: Sequence[float]
    """Queue wait (enqueue → start) of each burst task."""
    worker_seconds: float
    actions: int
    fates: Fates | None = None
    """What became of every task the workers ran (the fleet's ledger)."""
    drains: int = 0
    """Scale-ins that drained their workers first."""


def summarize(
    samples: Sequence[Sample],
    burst: Sequence[TaskRecord],
    settings: DemoSettings,
    *,
    started: float,
    ended: float,
    burst_at: float | None,
    interrupted: bool,
    worker_seconds: float,
    fates: Fates | None = None,
) -> DemoSummary:
    applied = [s for s in samples if s.result.applied]
    after_burst = [s for s in applied if burst_at is not None and s.time >= burst_at]
    first_out = next((s for s in after_burst if s.result.action == "scale_out"), None)
    drained_at = None
    if burst and len(burst) >= settings.burst_tasks:
        drained_at = max(r.started for r in burst) + settings.task_seconds
    back = None
    if drained_at is not None:
        back = next(
            (
                s.time
                for s in samples
                if s.time >= drained_at
                and s.desired == settings.min_capacity
                and s.running == settings.min_capacity
            ),
            None,
        )
    return DemoSummary(
        started=started,
        ended=ended,
        interrupted=interrupted,
        burst_at=burst_at,
        burst_tasks=settings.burst_tasks,
        first_scale_out=first_out,
        peak_desired=max((s.desired or 0 for s in samples), default=0),
        drained_at=drained_at,
        back_to_min_at=back,
        waits=[r.wait for r in burst],
        worker_seconds=worker_seconds,
        actions=len(applied),
        fates=fates,
        drains=sum(
            1 for s in samples for event in s.result.events if event.startswith("drain began")
        ),
    )


def summary_text(summary: DemoSummary) -> Text:
    def at(t: float | None) -> str:
        return "—" if t is None else f"{t - summary.started:.1f}s"

    text = Text()
    text.append("summary", style="bold")
    if summary.interrupted:
        text.append(" (interrupted)", style="yellow")
    text.append("\n")
    lines = [f"burst of {summary.burst_tasks} tasks queued at {at(summary.burst_at)}"]
    out = summary.first_scale_out
    if out is not None and summary.burst_at is not None:
        lines.append(
            f"first scale-out at {at(out.time)} ({out.time - summary.burst_at:.1f}s after the "
            f"burst): {out.current} → {out.desired}; peak desired count {summary.peak_desired}"
        )
    else:
        lines.append("no scale-out after the burst")
    if summary.drained_at is not None and summary.burst_at is not None:
        lines.append(
            f"burst drained at {at(summary.drained_at)} "
            f"({summary.drained_at - summary.burst_at:.1f}s after it was queued)"
        )
    else:
        lines.append("the burst had not drained when the demo ended")
    if summary.back_to_min_at is not None:
        lines.append(f"back to the minimum at {at(summary.back_to_min_at)}")
    else:
        lines.append("not back to the minimum when the demo ended")
    waits = sorted(summary.waits)
    p50, p95 = percentile(waits, 0.5), percentile(waits, 0.95)
    if p50 is not None and p95 is not None:
        lines.append(f"burst task wait in the queue: p50 {p50:.1f}s, p95 {p95:.1f}s")
    lines.append(
        f"scaling actions: {summary.actions}; {summary.worker_seconds:.0f} worker-seconds; "
        f"ran {summary.ended - summary.started:.0f}s"
    )
    fates = summary.fates
    if fates is not None:
        lines.append(
            f"scale-ins drained first: {summary.drains}; tasks completed {fates.completed}, "
            f"cut short by a stop {fates.interrupted} ({fates.lost} lost)"
        )
    for line in lines:
        text.append(f"  {line}\n")
    return text


# --- the view ---------------------------------------------------------------------------

BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], top: float) -> str:
    """One character per value, scaled to `top`; a gap for a missing value."""
    if top <= 0:
        top = 1
    return "".join(
        "·" if v is None else BLOCKS[min(len(BLOCKS) - 1, round(v / top * (len(BLOCKS) - 1)))]
        for v in values
    )


def describe_result(result: PoolResult) -> str:
    action = result.action.replace("_", "-")
    if result.action != "hold":
        action += " (applied)" if result.applied else " (not applied)"
    return f"{action}: {result.reason}" + (f" — error: {result.error}" if result.error else "")


def status_line(sample: Sample, started: float) -> str:
    def n(value: int | None) -> str:
        return "?" if value is None else str(value)

    count = n(sample.current)
    if sample.desired != sample.current:
        count += f"→{n(sample.desired)}"
    return (
        f"{sample.time - started:6.1f}s  queue {n(sample.queue_depth):>3}  "
        f"busy {n(sample.busy)}/{n(sample.answered)}  desired {count}  running {sample.running}"
    )


@dataclass
class DemoView:
    """Renders the run: a live view on a terminal, plain progress lines otherwise."""

    console: Console
    started: float
    header: str
    phase: str = "starting"
    width: int = 60
    _printed_samples: int = 0
    _printed_events: int = 0
    _last_status: float = 0.0

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    def render(self, samples: Sequence[Sample], events: Sequence[FleetEvent]) -> Group:
        recent = samples[-self.width :]
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        top_count = max([s.desired or 0 for s in recent] + [s.running for s in recent] + [1])
        rows: list[tuple[str, list[float | None], float]] = [
            ("queue depth", [s.queue_depth for s in recent], 0),
            ("busy workers", [s.busy for s in recent], top_count),
            ("desired count", [s.desired for s in recent], top_count),
            ("running workers", [float(s.running) for s in recent], top_count),
        ]
        for label, values, top in rows:
            top = top or max([v or 0 for v in values] + [1])
            latest = values[-1] if values else None
            table.add_row(label, sparkline(values, top), "—" if latest is None else f"{latest:g}")
        now = time.time() - self.started
        parts: list[Any] = [
            Text(self.header, style="bold"),
            Text(f"{now:5.1f}s  phase: {self.phase}", style="cyan"),
            table,
        ]
        if samples:
            last = samples[-1]
            parts.append(
                Text.assemble(
                    ("last decision ", "bold"),
                    f"({last.time - self.started:.1f}s): ",
                    describe_result(last.result),
                )
            )
        decisions = [s for s in samples if s.result.action != "hold" or s.result.error][-4:]
        lines = [(s.time, f"controller {describe_result(s.result)}") for s in decisions]
        lines += [(e.time, f"fleet {e.describe()}") for e in events[-6:]]
        for t, line in sorted(lines)[-8:]:
            parts.append(Text(f"  {t - self.started:6.1f}s  {line}", overflow="ellipsis"))
        return Group(*parts)

    def print_new(self, samples: Sequence[Sample], events: Sequence[FleetEvent]) -> None:
        """Plain mode: new decisions, fleet events, and a status line every 5 s."""
        lines: list[tuple[float, str]] = []
        for sample in samples[self._printed_samples :]:
            result = sample.result
            if result.action != "hold" or result.error:
                lines.append((sample.time, f"{status_line(sample, self.started)}  "
                                           f"{describe_result(result)}"))  # fmt: skip
            elif sample.time - self._last_status >= 5:
                lines.append((sample.time, status_line(sample, self.started)))
            else:
                continue
            self._last_status = sample.time
        for event in events[self._printed_events :]:
            lines.append(
                (event.time, f"{event.time - self.started:6.1f}s  fleet {event.describe()}")
            )
        self._printed_samples, self._printed_events = len(samples), len(events)
        for _, line in sorted(lines):
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)


# --- the run ----------------------------------------------------------------------------


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(
    settings: DemoSettings, console: Console, stop: threading.Event | None = None
) -> DemoSummary:
    """Run the demo until it is done, the time limit passes, or `stop` is set."""
    if importlib.util.find_spec("moto") is None:
        raise DemoError(NO_MOTO)
    stop = stop or threading.Event()
    token = f"csdemo-{uuid.uuid4().hex[:8]}"
    queue, exchange = f"{token}.tasks", token
    with demo_broker(settings.redis_url) as broker, local_aws() as aws, _environ(aws.env):
        try:
            aws.create_service(CLUSTER, SERVICE, settings.min_capacity)
            run = _Run(
                config=parse_config(
                    demo_config_text(broker, queue, exchange, settings), "demo configuration"
                ),
                fleet=local_fleet(
                    aws,
                    CLUSTER,
                    SERVICE,
                    broker,
                    [queue],
                    control_exchange=exchange,
                    start_delay=settings.start_delay,
                    stop_timeout=settings.stop_timeout,
                    name_prefix="demo",
                ),
                broker=broker,
                queue=queue,
                token=token,
                header=(
                    f"celery-scaler demo · broker {mask_url(broker)} · local AWS API "
                    f"{aws.endpoint_url} · ECS {CLUSTER}/{SERVICE} · queue {queue}"
                ),
            )
            return _drive(settings, console, stop, run)
        finally:
            delete_keys(broker, token)


@dataclass(frozen=True)
class _Run:
    config: Config
    fleet: LocalFleet
    broker: str
    queue: str
    token: str
    header: str


def _drive(
    settings: DemoSettings, console: Console, stop: threading.Event, run: _Run
) -> DemoSummary:
    fleet, broker, queue, token, header = run.fleet, run.broker, run.queue, run.token, run.header
    started = time.time()
    view = DemoView(console, started, header)
    burst_sender = TaskSender(broker, queue, f"{token}.burst")
    trickle = TaskSender(broker, queue, f"{token}.trickle")
    timeline = Timeline(fleet, POOL)
    controller_stop = threading.Event()
    burst_at: list[float] = []

    def load() -> None:
        next_trickle = started
        while not controller_stop.is_set():
            now = time.time()
            if not burst_at and now - started >= settings.quiet_seconds:
                burst_sender.send(settings.task_seconds, settings.burst_tasks)
                burst_at.append(now)
                view.phase = f"burst: {settings.burst_tasks} tasks of {settings.task_seconds:g}s"
            if now >= next_trickle:
                trickle.send(0.5)
                next_trickle = now + settings.trickle_every
            controller_stop.wait(0.1)

    reconciler = build(run.config)
    interrupted = False
    with fleet, contextlib.closing(burst_sender), contextlib.closing(trickle):
        threads = [
            threading.Thread(target=load, name="demo-load", daemon=True),
            threading.Thread(
                target=run_forever,
                args=(reconciler, controller_stop, [timeline.record]),
                name="demo-controller",
                daemon=True,
            ),
        ]
        view.phase = "quiet: a light trickle of tasks"
        if not view.live:
            console.print(header, highlight=False, markup=False, soft_wrap=True)
        for thread in threads:
            thread.start()
        back_since: float | None = None
        live = Live(console=console, auto_refresh=False, transient=False) if view.live else None
        try:
            with live if live is not None else contextlib.nullcontext():
                while True:
                    samples, events = timeline.snapshot(), fleet.events()
                    if live is not None:
                        live.update(view.render(samples, events), refresh=True)
                    else:
                        view.print_new(samples, events)
                    now = time.time()
                    if stop.is_set():
                        interrupted = True
                        break
                    if now - started > settings.time_limit:
                        break
                    if burst_at and _back_at_min(samples, fleet.counts(), settings, burst_at[0]):
                        view.phase = "quiet again: back at the minimum"
                        back_since = back_since or now
                        if now - back_since >= settings.linger:
                            break
                    elif burst_at:
                        view.phase = "burst draining"
                        back_since = None
                    stop.wait(0.25)
        finally:
            controller_stop.set()
            for thread in threads:
                thread.join(10)
        ended = time.time()
        summary = summarize(
            timeline.snapshot(),
            burst_sender.records(),
            settings,
            started=started,
            ended=ended,
            burst_at=burst_at[0] if burst_at else None,
            interrupted=interrupted,
            worker_seconds=fleet.worker_seconds(ended),
            fates=fleet.fates(),
        )
    return summary


def _back_at_min(
    samples: Sequence[Sample], counts: FleetCounts, settings: DemoSettings, burst_at: float
) -> bool:
    if not samples or samples[-1].time < burst_at + 2 * settings.interval:
        return False
    last = samples[-1]
    return (
        last.queue_depth == 0
        and last.desired == settings.min_capacity
        and counts.running == settings.min_capacity
        and counts.stopping == 0
        and counts.pending == 0
    )
