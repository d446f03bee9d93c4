"""A local worker fleet that plays ECS's part: desiredCount in, real `celery worker` processes out.

`LocalFleet` is the ECS service scheduler and agent for one service of the local AWS API,
as harsh as ECS: it registers each task through the ECS API, stops tasks on scale-in
chosen without regard to what Celery is doing (only scale-in protection spares a task),
gives a stopping worker SIGTERM and then SIGKILL after the task's stopTimeout, replaces
tasks in deployments within minimumHealthyPercent and maximumPercent, and records what
became of every Celery task the workers ran (`local/ledger.py`). `schedule` is its choice
of tasks to start and stop, a pure function.

No process outlives the fleet: each worker runs in its own process group, `close()` (also
on an exception or Ctrl-C, through the context manager) stops them all with bounded waits,
and an atexit hook kills any group still alive when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from celery.utils.nodenames import host_format

from celery_scaler.adapters.aws import AWS_ERRORS
from celery_scaler.core.errors import AdapterError
from celery_scaler.local.ecs_agent import EcsAgent
from celery_scaler.local.ledger import Fates, TaskLedger, WorkerEnd, fates

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
    host: str = "%h",
) -> WorkerProcess:
    """Start `celery -A app_module worker` as node `node@host`, in a process group of its own.

    `env` is the worker's whole environment (the broker and control exchange are read
    from it by the app module). Output goes to `log_dir/node.log`. `host` defaults to
    Celery's `%h` (this machine's name); the local fleet puts the ECS task id there.
    """
    log_path = log_dir / f"{node}.log"
    command = [
        sys.executable, "-m", "celery", "-A", app_module, "worker",
        "-n", f"{node}@{host}",
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
        name=host_format(f"{node}@{host}"), queues=tuple(queues), process=process, log_path=log_path
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


# --- the ECS service scheduler's choices (pure) ----------------------------------------------


@dataclass(frozen=True)
class TaskView:
    """One of the service's tasks as the scheduler sees it: no Celery in sight."""

    arn: str
    definition: str
    running: bool
    """Started (RUNNING); False while it is still starting (PENDING)."""


@dataclass(frozen=True)
class SchedulerStep:
    start: int = 0
    """New tasks to launch (of the service's current task definition)."""
    stop: tuple[str, ...] = ()
    """Task ARNs to stop."""
    waiting_on: tuple[str, ...] = ()
    """Protected tasks the scheduler would have stopped: scale-in or the deployment waits."""


def schedule(
    desired: int,
    definition: str,
    tasks: Sequence[TaskView],
    protected: Collection[str],
    rng: random.Random,
    *,
    minimum_healthy_percent: int = 100,
    maximum_percent: int = 200,
) -> SchedulerStep:
    """What the ECS service scheduler does next with a service's tasks (not those stopping).

    As on ECS: a task with scale-in protection is never stopped, neither on scale-in nor
    to replace it in a deployment; which unprotected task stops is chosen at random
    (`rng`, seeded: reproducible), never by what the task is doing. During a deployment
    (tasks of another definition than `definition` run) new tasks start while at most
    `maximum_percent` of desired run or start, and old tasks stop while at least
    `minimum_healthy_percent` of desired stay RUNNING; old tasks still starting stop at once.
    """
    old = [task for task in tasks if task.definition != definition]
    new = [task for task in tasks if task.definition == definition]
    if not old:
        if len(tasks) <= desired:
            return SchedulerStep(start=desired - len(tasks))
        return _pick(tasks, len(tasks) - desired, protected, rng)
    max_total = desired * maximum_percent // 100
    min_running = math.ceil(desired * minimum_healthy_percent / 100)
    start = max(0, min(desired - len(new), max_total - len(tasks)))
    running = sum(1 for task in tasks if task.running)
    # Old tasks that have not started cost no capacity; running ones stop while enough run.
    starting = [task for task in old if not task.running]
    room = max(0, running - min_running, len(tasks) - max_total)
    first = _pick(starting, len(starting), protected, rng)
    rest = _pick([t for t in old if t.running], room, protected, rng)
    extra = _pick(new, max(0, len(new) - desired), protected, rng)
    return SchedulerStep(
        start=start,
        stop=first.stop + rest.stop + extra.stop,
        waiting_on=tuple(sorted({*first.waiting_on, *rest.waiting_on, *extra.waiting_on})),
    )


def _pick(
    tasks: Sequence[TaskView], count: int, protected: Collection[str], rng: random.Random
) -> SchedulerStep:
    if count <= 0:
        return SchedulerStep()
    free = sorted(task.arn for task in tasks if task.arn not in protected)
    held = tuple(sorted(task.arn for task in tasks if task.arn in protected))
    chosen = tuple(sorted(rng.sample(free, min(count, len(free)))))
    return SchedulerStep(stop=chosen, waiting_on=held if len(chosen) < count else ())


# --- the supervisor ---------------------------------------------------------------------


EventKind = Literal[
    "requested",
    "started",
    "stopping",
    "stopped",
    "killed",
    "exited",
    "cancelled",
    "protected",
    "error",
]


@dataclass(frozen=True)
class FleetEvent:
    """Something the fleet did or saw, for a caller to render."""

    time: float
    """Wall-clock seconds."""
    kind: EventKind
    worker: str | None
    """The worker's node name (None for an error or a service-wide event)."""
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


TaskState = Literal["pending", "running", "stopping"]


@dataclass
class _Task:
    arn: str
    worker: WorkerProcess
    definition: str
    requested: float
    start_at: float
    state: TaskState = "pending"
    deadline: float = math.inf
    """When a stopping task is killed."""
    ended: float | None = None


@dataclass(frozen=True)
class _Service:
    desired: int
    definition: str
    deployment: str
    minimum_healthy_percent: int
    maximum_percent: int


@dataclass
class LocalFleet:
    """Plays the ECS service scheduler and agent for one service of the local AWS API.

        with local_fleet(aws, "demo", "workers", broker, ["q"]) as fleet:
            ...  # fleet.events(), fleet.counts(), fleet.worker_seconds(), fleet.fates()

    Every `poll_interval` it reads the service (DescribeServices) and, as ECS would:

    - starts tasks up to desiredCount: each is registered through RunTask (group
      `service:<name>`, startedBy the deployment id, so ListTasks, DescribeTasks and task
      protection see it) and runs one `celery worker` process named `<prefix>-<n>@<task id>`,
      taking tasks `start_delay` seconds after it was asked for (ECS tasks take 30-60 s to
      pull and start). The process boots while the delay runs, so a task starts after
      max(delay, boot time), as on ECS, where the delay includes the container's boot;
    - on scale-in stops tasks chosen at random (seeded by `seed`) among those without
      task scale-in protection, which it reads through GetTaskProtection; protected tasks
      are never stopped, so the service may stay above desiredCount until protection ends.
      Stopping is StopTask, then SIGTERM to the worker's main process (the container's
      PID 1: Celery's warm shutdown, which stops consuming and finishes its running tasks)
      and SIGKILL of everything after `stop_timeout` (the task's stopTimeout: 30 s by
      default, at most 120 s on Fargate). A task still running then is interrupted;
    - replaces tasks when the service's task definition changes (a deployment), within
      `minimumHealthyPercent` and `maximumPercent`, waiting for protected tasks;
    - replaces a task whose worker exits by itself (a crash, a SIGKILL);
    - serves each task the ECS agent's endpoints (`ECS_AGENT_URI`'s task protection,
      `ECS_CONTAINER_METADATA_URI_V4`'s task metadata; `local/ecs_agent.py`), so a task
      can protect itself as on ECS.

    It knows nothing of Celery. Which Celery task ran where comes from the demo app's
    ledger (`local/ledger.py`): `fates()` says which were completed, interrupted,
    redelivered or lost. No process outlives the fleet: each worker runs in its own
    process group, `close()` (also on an exception or Ctrl-C, through the context manager)
    stops them all with bounded waits, and an atexit hook kills any group still alive
    when the interpreter exits.
    """

    ecs: Any
    """A boto3 ECS client of the local AWS API."""
    cluster: str
    service: str
    broker_url: str
    queues: Sequence[str]
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
    seed: int = 0
    """Seeds the scheduler's choice of tasks to stop."""
    ledger_url: str | None = None
    """The Redis the workers write their ledger to; default the broker, if it is Redis."""
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"celery-scaler-fleet-{self.name_prefix}-"))
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: list[FleetEvent] = []
        self._tasks: dict[str, _Task] = {}
        self._ended: list[_Task] = []
        self._worker_ends: dict[str, WorkerEnd] = {}
        self._desired: int | None = None
        self._changes: list[tuple[float, int, int]] = []
        self._waiting_on: tuple[str, ...] = ()
        self._sequence = 0
        self._rng = random.Random(self.seed)
        url = self.ledger_url or (self.broker_url if self.broker_url.startswith("redis") else None)
        key = f"celery-scaler-ledger.{self.name_prefix}.{uuid.uuid4().hex[:8]}"
        self._ledger = TaskLedger(url, key) if url else None
        self._final_fates: Fates | None = None
        self.agent = EcsAgent(self.ecs, self.cluster)

    # -- life cycle

    def start(self) -> LocalFleet:
        """Start the service's current desiredCount at once (a service already running),
        then reconcile every `poll_interval` on a background thread."""
        self.agent.start()
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
            tasks, self._tasks = list(self._tasks.values()), {}
        stop_workers([task.worker for task in tasks], timeout)
        now = self.clock()
        with self._lock:
            for task in tasks:
                task.ended = now
                self._worker_ends.setdefault(task.worker.name, "closed")
                self._ended.append(task)
        for task in tasks:
            with contextlib.suppress(*AWS_ERRORS):
                self.ecs.stop_task(cluster=self.cluster, task=task.arn, reason="fleet closed")
        self.agent.stop()
        if self._ledger is not None and self._final_fates is None:
            self._final_fates = self.fates()
            with contextlib.suppress(Exception):
                self._ledger.clear()
            self._ledger.close()

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
            states = [task.state for task in self._tasks.values()]
            return FleetCounts(
                desired=self._desired,
                pending=states.count("pending"),
                running=states.count("running"),
                stopping=states.count("stopping"),
            )

    def desired_changes(self) -> list[tuple[float, int, int]]:
        """(time seen, old, new) for every change of desiredCount the fleet saw."""
        with self._lock:
            return list(self._changes)

    @property
    def workers(self) -> list[WorkerProcess]:
        """Running workers (not those starting or shutting down), oldest first."""
        with self._lock:
            return [task.worker for task in self._tasks.values() if task.state == "running"]

    def task_of(self, worker: str) -> str | None:
        """The ECS task ARN a worker runs in (while the fleet runs it)."""
        with self._lock:
            return next((t.arn for t in self._tasks.values() if t.worker.name == worker), None)

    def worker_seconds(self, now: float | None = None) -> float:
        """Task-seconds used so far, counted as ECS bills them: from request to stop."""
        now = self.clock() if now is None else now
        with self._lock:
            every = [*self._tasks.values(), *self._ended]
            return sum((now if t.ended is None else t.ended) - t.requested for t in every)

    def fates(self) -> Fates:
        """Every Celery task the workers started: completed, interrupted, redelivered, lost."""
        if self._final_fates is not None:
            return self._final_fates
        if self._ledger is None:
            return Fates()
        with self._lock:
            ends = dict(self._worker_ends)
        return fates(self._ledger.entries(), ends)

    # -- one pass of the scheduler

    def tick(self, *, immediate: bool = False) -> None:
        """Reap, read the service, start or stop tasks as ECS would; one pass.

        `immediate` starts new tasks without the start delay.
        """
        now = self.clock()
        self._reap(now)
        try:
            service = self._describe()
        except AWS_ERRORS as exc:
            # As on ECS: the tasks keep running while the control plane cannot be read.
            self._event("error", None, f"ECS DescribeServices: {exc}")
            return
        with self._lock:
            if self._desired is not None and service.desired != self._desired:
                self._changes.append((now, self._desired, service.desired))
            self._desired = service.desired
            for task in self._tasks.values():
                if task.state == "pending" and task.start_at <= now:
                    task.state = "running"
                    self._event("started", task.worker.name, f"pid {task.worker.pid}")
            active = [task for task in self._tasks.values() if task.state != "stopping"]
        views = [TaskView(t.arn, t.definition, t.state == "running") for t in active]
        step = schedule(
            service.desired,
            service.definition,
            views,
            (),
            random.Random(0),
            minimum_healthy_percent=service.minimum_healthy_percent,
            maximum_percent=service.maximum_percent,
        )
        if step.stop:
            # Only now is protection read: ECS consults it when it has tasks to stop.
            try:
                protected = self._protected([task.arn for task in active])
            except AWS_ERRORS as exc:
                self._event("error", None, f"ECS GetTaskProtection: {exc}")
                return
            step = schedule(
                service.desired,
                service.definition,
                views,
                protected,
                self._rng,
                minimum_healthy_percent=service.minimum_healthy_percent,
                maximum_percent=service.maximum_percent,
            )
        if step.waiting_on != self._waiting_on:
            self._waiting_on = step.waiting_on
            if step.waiting_on:
                names = [self._name(arn) for arn in step.waiting_on]
                self._event("protected", None, f"waiting on protected tasks: {', '.join(names)}")
        deployment = any(view.definition != service.definition for view in views)
        for arn in step.stop:
            self._stop_task(arn, now, "deployment" if deployment else "scale-in")
        for _ in range(step.start):
            self._request(now, 0.0 if immediate else self.start_delay, service)

    def _describe(self) -> _Service:
        described = self.ecs.describe_services(cluster=self.cluster, services=[self.service])
        found = described.get("services") or []
        if not found:
            raise AdapterError(f"ECS service {self.service!r} in cluster {self.cluster!r}: missing")
        service = found[0]
        primary: dict[str, Any] = next(
            (d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {}
        )
        configuration = service.get("deploymentConfiguration") or {}
        return _Service(
            desired=int(service.get("desiredCount", 0)),
            definition=str(service.get("taskDefinition", "")),
            deployment=str(primary.get("id", "")),
            minimum_healthy_percent=int(configuration.get("minimumHealthyPercent", 100)),
            maximum_percent=int(configuration.get("maximumPercent", 200)),
        )

    def _protected(self, arns: Sequence[str]) -> set[str]:
        protected: set[str] = set()
        for start in range(0, len(arns), 100):
            response = self.ecs.get_task_protection(
                cluster=self.cluster, tasks=list(arns[start : start + 100])
            )
            protected |= {
                task["taskArn"]
                for task in response.get("protectedTasks", [])
                if task.get("protectionEnabled")
            }
        return protected

    def _reap(self, now: float) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            worker = task.worker
            if task.state == "stopping":
                if worker.alive and now < task.deadline:
                    continue
                forced = worker.alive
                reap(worker)
                self._end(task, now, "killed" if forced else "stopped")
                if forced:
                    cut = self.fates().interrupted_on(worker.name)
                    detail = f"SIGKILL after the stop timeout ({self.stop_timeout:g}s)"
                    if cut:
                        detail += f": {len(cut)} running task(s) interrupted"
                    self._event("killed", worker.name, detail)
                else:
                    self._event("stopped", worker.name, "")
            elif not worker.alive:
                code = worker.process.returncode
                reap(worker)
                self._end(task, now, "crashed")
                with contextlib.suppress(*AWS_ERRORS):
                    self.ecs.stop_task(
                        cluster=self.cluster, task=task.arn, reason="Essential container exited"
                    )
                self._event("exited", worker.name, f"exit code {code}; ECS replaces it")

    def _end(self, task: _Task, now: float, how: WorkerEnd) -> None:
        with self._lock:
            self._tasks.pop(task.arn, None)
            task.ended = now
            self._ended.append(task)
            self._worker_ends[task.worker.name] = how

    def _request(self, now: float, delay: float, service: _Service) -> None:
        try:
            launched = self.ecs.run_task(
                cluster=self.cluster,
                taskDefinition=service.definition,
                count=1,
                launchType="FARGATE",
                group=f"service:{self.service}",
                startedBy=service.deployment[:128],
            )
            arn = str(launched["tasks"][0]["taskArn"])
        except (*AWS_ERRORS, KeyError, IndexError) as exc:
            self._event("error", None, f"ECS RunTask: {exc}")
            return
        self._sequence += 1
        env = {
            **os.environ,
            **self.env,
            **(self._ledger.env if self._ledger is not None else {}),
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_CONTROL_EXCHANGE": self.control_exchange,
            "CELERY_SCALER_START_AT": repr(now + delay),
            **self.agent.env(arn),
        }
        worker = spawn_worker(
            f"{self.name_prefix}-{self._sequence}",
            self.queues,
            log_dir=self.log_dir,
            env=env,
            app_module=self.app_module,
            concurrency=self.concurrency,
            pool=self.pool,
            cwd=self.cwd,
            host=arn.rpartition("/")[2],
        )
        task = _Task(arn, worker, service.definition, requested=now, start_at=now + delay)
        with self._lock:
            self._tasks[arn] = task
            if delay:
                self._event("requested", worker.name, f"starts in {delay:g}s")
            else:
                task.state = "running"
                self._event("started", worker.name, f"pid {worker.pid}")

    def _stop_task(self, arn: str, now: float, why: str) -> None:
        with self._lock:
            task = self._tasks.get(arn)
        if task is None:
            return
        with contextlib.suppress(*AWS_ERRORS):
            self.ecs.stop_task(cluster=self.cluster, task=arn, reason=f"Scaling activity ({why})")
        if task.state == "pending":
            reap(task.worker)  # still starting: it has taken no task yet
            self._end(task, now, "stopped")
            self._event("cancelled", task.worker.name, f"{why}: not started yet")
            return
        task.worker.warm_shutdown()
        sent = self.clock()
        with self._lock:
            task.state = "stopping"
            task.deadline = sent + self.stop_timeout
        self._event("stopping", task.worker.name, f"{why}: SIGTERM", at=sent)

    def _name(self, arn: str) -> str:
        with self._lock:
            task = self._tasks.get(arn)
        return task.worker.name if task is not None else arn.rpartition("/")[2]

    def _event(
        self, kind: EventKind, worker: str | None, detail: str = "", at: float | None = None
    ) -> None:
        with self._lock:
            self._events.append(
                FleetEvent(self.clock() if at is None else at, kind, worker, detail)
            )


def local_fleet(
    aws: LocalAws,
    cluster: str,
    service: str,
    broker_url: str,
    queues: Sequence[str],
    **options: Any,
) -> LocalFleet:
    """A LocalFleet for a service of the local AWS API.

    `options` are LocalFleet's own (start_delay, stop_timeout, poll_interval, seed, ...).
    """
    return LocalFleet(aws.client("ecs"), cluster, service, broker_url, queues, **options)
