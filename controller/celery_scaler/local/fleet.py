"""A local worker fleet that plays ECS's part: desiredCount in, real `celery worker` processes out.

Every `poll_interval` the supervisor reads the service's desiredCount through the ECS
API (the local AWS API in the demo, the end-to-end tests and the benchmark) and starts
or stops `celery worker` processes to match, as the ECS service scheduler would:

- a new task starts `start_delay` seconds after it is asked for (ECS tasks take 30-60 s
  to pull and start; the demo compresses that), each worker with a unique node name.
  The process is launched at once and boots while the delay runs; it takes tasks once
  `CELERY_SCALER_START_AT` has passed (the demo app waits for it in `worker_init`), so a
  task starts after max(delay, boot time), as on ECS, where the delay includes the boot;
- a worker that exits by itself (a crash, a SIGKILL) is replaced, as ECS replaces a
  stopped task of a service;
- on scale-in, tasks not started yet are stopped first, then idle workers (by their
  inspect replies) are stopped before ones that did not answer and before busy ones,
  newest first, with a warm shutdown: SIGTERM to the worker's main process, which
  finishes its running task, and SIGKILL of its process group after `stop_timeout`,
  as ECS does after a task's stopTimeout.

What happened is kept as `FleetEvent`s a caller can read and render. No process
outlives the fleet: each worker runs in its own process group, `close()` (also on an
exception or Ctrl-C, through the context manager) stops them all with bounded waits,
and an atexit hook kills any group still alive when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from celery.utils.nodenames import host_format

from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import ServiceObservation, WorkerSnapshot
from celery_scaler.core.ports import ExpectedWorkers

if TYPE_CHECKING:
    from celery_scaler.local.aws_api import LocalAws

DEMO_APP = "celery_scaler.local.demo_app"
"""The Celery app module shipped in the package (a `sleep` task)."""

Pool = Literal["prefork", "threads", "solo"]


# --- worker processes -------------------------------------------------------------------


_live_groups: set[int] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    # The last line of defence (an interpreter exit that skipped every finally block).
    with _live_lock:
        groups = list(_live_groups)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


@dataclass
class WorkerProcess:
    """One `celery worker` process; its process group holds the pool's children too."""

    name: str
    """Node name as the worker reports it, e.g. `demo-3@hostname`."""
    queues: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` to the whole worker (main process and pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def warm_shutdown(self) -> None:
        """SIGTERM the main process only: it stops consuming and finishes its running task.

        (A pool child given SIGTERM would die with its task, so not the whole group.)
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        # A stopped (SIGSTOPped) worker handles SIGTERM only once it runs again.
        self.signal(signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn_worker(
    node: str,
    queues: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str],
    app_module: str = DEMO_APP,
    concurrency: int = 1,
    pool: Pool = "threads",
    cwd: Path | None = None,
) -> WorkerProcess:
    """Start `celery -A app_module worker` as node `node@%h`, in a process group of its own.

    `env` is the worker's whole environment (the broker and control exchange are read
    from it by the app module). Output goes to `log_dir/node.log`.
    """
    log_path = log_dir / f"{node}.log"
    command = [
        sys.executable, "-m", "celery", "-A", app_module, "worker",
        "-n", f"{node}@%h",
        "-Q", ",".join(queues),
        "-P", pool,
        "-c", str(concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-l", "warning",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        # A process group of its own: signals reach the pool's children too, a SIGKILL of
        # the group leaves no orphan behind, and a Ctrl-C in the terminal reaches the
        # supervisor only, which then stops the workers in order.
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with _live_lock:
        _live_groups.add(process.pid)
    return WorkerProcess(
        name=host_format(f"{node}@%h"), queues=tuple(queues), process=process, log_path=log_path
    )


def stop_workers(workers: Sequence[WorkerProcess], timeout: float, *, warm: bool = False) -> None:
    """Stop every worker and reap it: SIGTERM, then SIGKILL of the group after `timeout`.

    `warm` sends SIGTERM to the main processes only, so running tasks finish (within
    `timeout`); otherwise to the whole groups, which ends running tasks at once.
    """
    for worker in workers:
        if warm:
            worker.warm_shutdown()
        else:
            worker.signal(signal.SIGTERM)
            worker.signal(signal.SIGCONT)
    deadline = time.monotonic() + timeout
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=max(deadline - time.monotonic(), 0))
    for worker in workers:
        reap(worker)


def reap(worker: WorkerProcess) -> None:
    """SIGKILL what is left of the worker's group (pool children outliving their parent too)."""
    worker.signal(signal.SIGKILL)
    worker.process.wait()
    with _live_lock:
        _live_groups.discard(worker.process.pid)


# --- the supervisor ---------------------------------------------------------------------


EventKind = Literal["requested", "started", "stopping", "stopped", "exited", "cancelled", "error"]


@dataclass(frozen=True)
class FleetEvent:
    """Something the fleet did or saw, for a caller to render."""

    time: float
    """Wall-clock seconds."""
    kind: EventKind
    worker: str | None
    """The worker's node name (None for an error)."""
    detail: str = ""

    def describe(self) -> str:
        who = f"{self.worker} " if self.worker else ""
        return f"{who}{self.kind}{': ' + self.detail if self.detail else ''}"


@dataclass(frozen=True)
class FleetCounts:
    desired: int | None
    """ECS's desiredCount as last read (None before the first read)."""
    pending: int
    """Asked for, waiting out the start delay."""
    running: int
    stopping: int


class ServiceReader(Protocol):
    def describe(self, cluster: str, service: str) -> ServiceObservation: ...


class BusyReader(Protocol):
    def inspect(self, expected: ExpectedWorkers) -> tuple[WorkerSnapshot, ...]: ...


@dataclass(frozen=True)
class _Pending:
    worker: WorkerProcess
    start_at: float


@dataclass
class _Lifetime:
    requested: float
    ended: float | None = None


@dataclass
class LocalFleet:
    """Keeps as many `celery worker` processes running as the ECS service's desiredCount.

        with LocalFleet(EcsService(aws.client("ecs")), "demo", "workers", broker, ["q"]) as fleet:
            ...  # fleet.events(), fleet.counts(), fleet.worker_seconds()

    `inspector`, when given, tells busy from idle workers on scale-in (idle ones stop
    first); without one, the newest workers stop first.
    """

    ecs: ServiceReader
    cluster: str
    service: str
    broker_url: str
    queues: Sequence[str]
    inspector: BusyReader | None = None
    app_module: str = DEMO_APP
    control_exchange: str = "celery"
    start_delay: float = 0.0
    stop_timeout: float = 30.0
    poll_interval: float = 1.0
    concurrency: int = 1
    pool: Pool = "threads"
    name_prefix: str = field(default_factory=lambda: f"w{uuid.uuid4().hex[:6]}")
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to this process's environment for the workers."""
    cwd: Path | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"celery-scaler-fleet-{self.name_prefix}-"))
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: list[FleetEvent] = []
        self._pending: list[_Pending] = []
        self._running: list[WorkerProcess] = []
        self._stopping: dict[str, tuple[WorkerProcess, float]] = {}
        self._lifetimes: dict[str, _Lifetime] = {}
        self._desired: int | None = None
        self._changes: list[tuple[float, int, int]] = []
        self._sequence = 0

    # -- life cycle

    def start(self) -> LocalFleet:
        """Start the service's current desiredCount at once (a service already running),
        then reconcile every `poll_interval` on a background thread."""
        try:
            self.tick(immediate=True)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._loop, name="local-fleet", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop supervising and stop every worker (running tasks end); bounded by `timeout`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            workers = [p.worker for p in self._pending] + self._running
            workers += [worker for worker, _ in self._stopping.values()]
            self._running, self._stopping, self._pending = [], {}, []
        stop_workers(workers, timeout)
        close_inspector = getattr(self.inspector, "close", None)
        if close_inspector is not None:
            close_inspector()
        now = self.clock()
        with self._lock:
            for lifetime in self._lifetimes.values():
                if lifetime.ended is None:
                    lifetime.ended = now

    def __enter__(self) -> LocalFleet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.tick()
            except Exception as exc:  # the supervisor must outlive any one bad tick
                self._event("error", None, f"{type(exc).__name__}: {exc}")

    # -- what a caller reads

    def events(self, since: int = 0) -> list[FleetEvent]:
        """Events from index `since` on (pass the length already seen to get only new ones)."""
        with self._lock:
            return self._events[since:]

    def counts(self) -> FleetCounts:
        with self._lock:
            return FleetCounts(
                desired=self._desired,
                pending=len(self._pending),
                running=len(self._running),
                stopping=len(self._stopping),
            )

    def desired_changes(self) -> list[tuple[float, int, int]]:
        """(time seen, old, new) for every change of desiredCount the fleet saw."""
        with self._lock:
            return list(self._changes)

    @property
    def workers(self) -> list[WorkerProcess]:
        """Running workers (not those shutting down), oldest first."""
        with self._lock:
            return list(self._running)

    def worker_seconds(self, now: float | None = None) -> float:
        """Task-seconds used so far, counted as ECS bills them: from request to stop."""
        now = self.clock() if now is None else now
        with self._lock:
            return sum(
                (now if life.ended is None else life.ended) - life.requested
                for life in self._lifetimes.values()
            )

    # -- one reconcile of processes against desiredCount

    def tick(self, *, immediate: bool = False) -> None:
        """Reap, read desiredCount, start or stop workers to match; one pass.

        `immediate` starts new workers without the start delay.
        """
        now = self.clock()
        self._reap(now)
        try:
            desired = self.ecs.describe(self.cluster, self.service).desired
        except AdapterError as exc:
            # As on ECS: the tasks keep running while the control plane cannot be read.
            self._event("error", None, str(exc))
            return
        with self._lock:
            if self._desired is not None and desired != self._desired:
                self._changes.append((now, self._desired, desired))
            self._desired = desired
            for pending in [p for p in self._pending if p.start_at <= now]:
                self._pending.remove(pending)
                self._running.append(pending.worker)
                self._event("started", pending.worker.name, f"pid {pending.worker.pid}")
            have = len(self._running) + len(self._pending)
            for _ in range(desired - have):
                self._request(now, 0.0 if immediate else self.start_delay)
        if desired < have:
            self._scale_in(have - desired, now)

    def _reap(self, now: float) -> None:
        with self._lock:
            for pending in [p for p in self._pending if not p.worker.alive]:
                self._pending.remove(pending)
                self._running.append(pending.worker)  # reported and replaced below
            for worker in [w for w in self._running if not w.alive]:
                self._running.remove(worker)
                code = worker.process.returncode
                reap(worker)
                self._ended(worker.name, now)
                self._event("exited", worker.name, f"exit code {code}; ECS replaces it")
            for name, (worker, deadline) in list(self._stopping.items()):
                if worker.alive and now < deadline:
                    continue
                forced = worker.alive
                reap(worker)
                del self._stopping[name]
                self._ended(name, now)
                self._event("stopped", name, "killed after the stop timeout" if forced else "")

    def _request(self, now: float, delay: float) -> None:
        self._sequence += 1
        node = f"{self.name_prefix}-{self._sequence}"
        env = {
            **os.environ,
            **self.env,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_CONTROL_EXCHANGE": self.control_exchange,
            "CELERY_SCALER_START_AT": repr(now + delay),
        }
        worker = spawn_worker(
            node,
            self.queues,
            log_dir=self.log_dir,
            env=env,
            app_module=self.app_module,
            concurrency=self.concurrency,
            pool=self.pool,
            cwd=self.cwd,
        )
        self._lifetimes[worker.name] = _Lifetime(requested=now)
        if delay:
            self._event("requested", worker.name, f"starts in {delay:g}s")
            self._pending.append(_Pending(worker, now + delay))
        else:
            self._running.append(worker)
            self._event("started", worker.name, f"pid {worker.pid}")

    def _scale_in(self, surplus: int, now: float) -> None:
        with self._lock:
            # Tasks not started yet go first, newest first: nothing to stop.
            while surplus and self._pending:
                worker = self._pending.pop().worker
                reap(worker)  # it has taken no task yet
                self._ended(worker.name, now)
                self._event("cancelled", worker.name, "not started yet")
                surplus -= 1
            candidates = list(self._running)
        if not surplus:
            return
        for worker in self._stop_order(candidates)[:surplus]:
            with self._lock:
                if worker not in self._running:
                    continue
                self._running.remove(worker)
                worker.warm_shutdown()
                self._stopping[worker.name] = (worker, now + self.stop_timeout)
            self._event("stopping", worker.name, "warm shutdown (SIGTERM)")

    def _stop_order(self, workers: list[WorkerProcess]) -> list[WorkerProcess]:
        """Idle first, then those that did not answer, then busy ones; newest first in each."""
        newest_first = list(reversed(workers))
        if self.inspector is None:
            return newest_first
        try:
            expected = {frozenset(self.queues): len(workers)}
            replies = {w.name: w for w in self.inspector.inspect(expected)}
        except AdapterError:
            return newest_first

        def rank(worker: WorkerProcess) -> int:
            reply = replies.get(worker.name)
            if reply is None:
                return 1
            return 2 if reply.active else 0

        return sorted(newest_first, key=rank)

    def _ended(self, name: str, now: float) -> None:
        lifetime = self._lifetimes.get(name)
        if lifetime is not None and lifetime.ended is None:
            lifetime.ended = now

    def _event(self, kind: EventKind, worker: str | None, detail: str = "") -> None:
        with self._lock:
            self._events.append(FleetEvent(self.clock(), kind, worker, detail))


def local_fleet(
    aws: LocalAws,
    cluster: str,
    service: str,
    broker_url: str,
    queues: Sequence[str],
    *,
    control_exchange: str = "celery",
    inspect_timeout: float = 0.5,
    **options: Any,
) -> LocalFleet:
    """A LocalFleet for a service of the local AWS API that stops idle workers first.

    `options` are LocalFleet's own (start_delay, stop_timeout, poll_interval, ...).
    """
    from celery_scaler.adapters.celery_inspect import inspector_for
    from celery_scaler.adapters.ecs import EcsService

    return LocalFleet(
        EcsService(aws.client("ecs")),
        cluster,
        service,
        broker_url,
        queues,
        inspector=inspector_for(broker_url, inspect_timeout, control_exchange=control_exchange),
        control_exchange=control_exchange,
        **options,
    )
