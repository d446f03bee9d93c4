"""Real Celery worker processes for tests and benchmarks.

    with start_workers(redis_url, 3, ["orders"], control_exchange=f"t-{unique}") as fleet:
        fleet.make_busy(fleet[0])          # one `tests.sleep` task running on it
        with fleet.paused(fleet[1]):       # SIGSTOP: a hung worker
            ...

Every worker runs `celery -A tests.celery_app worker` in its own process group, with a
unique node name and, besides the shared `queues`, a queue of its own (`own_queue`) so
a test can send work to exactly one worker. Leaving the block stops every process of
every worker (SIGTERM, then SIGKILL after a bound), also when the test failed. Waits
are bounded waits on a condition (ping and inspect replies), never fixed sleeps.

Broadcasts (inspect, ping) reach every worker on the broker that shares the control
exchange, also other tests' workers on the same Redis database. A test that counts
replies gives its workers a `control_exchange` of its own and inspects through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from celery.result import AsyncResult

from celery_scaler.adapters.retries import wait_until
from celery_scaler.local.fleet import Pool, WorkerProcess, spawn_worker, stop_workers

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_MODULE = "tests.celery_app"
SLEEP_TASK = "tests.sleep"
NOOP_TASK = "tests.noop"


class WorkersError(RuntimeError):
    """Workers did not start, or did not reach the state a test asked for, in time."""


@dataclass
class Worker(WorkerProcess):
    """One worker process (its process group holds the pool's children too)."""

    own_queue: str = ""
    """A queue only this worker consumes (also in `queues`)."""


@dataclass
class WorkerFleet:
    """Running workers and a client app on the same broker to talk to them."""

    broker_url: str
    app: Celery
    """A client of the workers' broker and control exchange."""
    workers: list[Worker] = field(default_factory=list)

    @property
    def control_exchange(self) -> str:
        return str(self.app.conf.control_exchange)

    def __getitem__(self, index: int) -> Worker:
        return self.workers[index]

    def __iter__(self) -> Iterator[Worker]:
        return iter(self.workers)

    def __len__(self) -> int:
        return len(self.workers)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(worker.name for worker in self.workers)

    def pause(self, worker: Worker) -> None:
        """SIGSTOP the worker: it keeps its connections but answers nothing (hung)."""
        worker.signal(signal.SIGSTOP)

    def resume(self, worker: Worker) -> None:
        """SIGCONT a paused worker."""
        worker.signal(signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self, worker: Worker) -> Iterator[Worker]:
        """The worker is stopped inside the block and continues after it."""
        self.pause(worker)
        try:
            yield worker
        finally:
            self.resume(worker)

    def ping(self, workers: Sequence[Worker], timeout: float = 0.5) -> frozenset[str]:
        """The names of `workers` that answered one ping within `timeout`."""
        names = [worker.name for worker in workers]
        replies = self.app.control.ping(destination=names, timeout=timeout) or []
        return frozenset(name for reply in replies for name in reply) & frozenset(names)

    def send_sleep(self, worker: Worker, seconds: float) -> AsyncResult:
        """Queue a `tests.sleep` task that only this worker consumes."""
        return self.app.send_task(SLEEP_TASK, args=[seconds], queue=worker.own_queue)

    def make_busy(self, worker: Worker, seconds: float = 60.0, timeout: float = 20.0) -> None:
        """Run a `tests.sleep` task on the worker; return once inspect shows it active.

        Not for the solo pool: a solo worker running a task answers no broadcast. On the
        threads pool, stopping the worker waits for the task (up to `stop_timeout`).
        """
        self.send_sleep(worker, seconds)
        wait_for(
            lambda: bool(self.active(worker)),
            timeout,
            f"{worker.name} to show an active task",
            worker.log_tail,
        )

    def active(self, worker: Worker) -> list[object]:
        """The worker's `active` inspect reply (empty when it did not answer)."""
        inspect = self.app.control.inspect(destination=[worker.name], timeout=0.5)
        return list((inspect.active() or {}).get(worker.name) or [])


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Poll `condition` until true; WorkersError naming `what` after `timeout` seconds."""
    if not wait_until(condition, timeout):
        extra = details()
        raise WorkersError(f"timed out after {timeout:g}s waiting for {what}\n{extra}".strip())


@contextlib.contextmanager
def start_workers(
    broker_url: str,
    count: int,
    queues: Sequence[str],
    *,
    concurrency: int = 1,
    pool: Pool = "prefork",
    name_prefix: str | None = None,
    start_timeout: float = 60.0,
    stop_timeout: float = 10.0,
    control_exchange: str = "celery",
    delete_queues: bool = True,
    transport_options: Mapping[str, object] | None = None,
) -> Iterator[WorkerFleet]:
    """Start `count` workers consuming `queues`, all at once; stop them all on exit.

    `name_prefix` defaults to a random one, so node names never collide with another
    test's workers on the same broker. `control_exchange` is the workers' Celery setting
    of that name. With `delete_queues`, the workers' queues (and a control exchange
    other than Celery's default) are deleted from the broker afterwards: RabbitMQ keeps
    them otherwise. `transport_options` are the workers' (and the client's)
    `broker_transport_options`.
    """
    prefix = name_prefix or f"t{uuid.uuid4().hex[:8]}"
    app = Celery(f"{prefix}-client", broker=broker_url, set_as_current=False)
    app.conf.control_exchange = control_exchange
    app.conf.broker_transport_options = dict(transport_options or {})
    fleet = WorkerFleet(broker_url=broker_url, app=app)
    log_dir = Path(tempfile.mkdtemp(prefix=f"celery-workers-{prefix}-"))
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_CONTROL_EXCHANGE": control_exchange,
        "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(dict(transport_options or {})),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    try:
        # Started together and only then awaited: on few cores, interpreter start-up
        # dominates, and it overlaps.
        for index in range(count):
            fleet.workers.append(
                _spawn(f"{prefix}-{index}", queues, concurrency, pool, log_dir, env)
            )
        _wait_until_up(fleet, start_timeout)
        yield fleet
    finally:
        stop_workers(fleet.workers, stop_timeout)
        if delete_queues:
            exchanges: set[str] = set()
            if control_exchange != "celery":
                mailbox = app.control.mailbox
                exchanges = {mailbox.exchange.name, mailbox.reply_exchange.name}
            consumed = {queue for worker in fleet.workers for queue in worker.queues}
            _delete_from_broker(app, consumed, exchanges)
        app.close()


def _spawn(
    node: str,
    queues: Sequence[str],
    concurrency: int,
    pool: Pool,
    log_dir: Path,
    env: dict[str, str],
) -> Worker:
    own_queue = f"{node}.own"
    process = spawn_worker(
        node,
        (*queues, own_queue),
        log_dir=log_dir,
        env=env,
        app_module=APP_MODULE,
        concurrency=concurrency,
        pool=pool,
        cwd=REPO_ROOT,
    )
    return Worker(**vars(process), own_queue=own_queue)


def _wait_until_up(fleet: WorkerFleet, timeout: float) -> None:
    waiting = list(fleet.workers)

    def all_up() -> bool:
        for worker in waiting:
            if worker.process.poll() is not None:
                raise WorkersError(
                    f"worker {worker.name} exited with code {worker.process.returncode}\n"
                    f"{worker.log_tail()}"
                )
        answered = fleet.ping(waiting)
        waiting[:] = [worker for worker in waiting if worker.name not in answered]
        return not waiting

    wait_for(
        all_up,
        timeout,
        f"{len(fleet.workers)} workers to answer ping",
        lambda: "\n".join(f"{w.name} did not answer:\n{w.log_tail()}" for w in waiting),
    )


def _delete_from_broker(app: Celery, queues: set[str], exchanges: set[str]) -> None:
    # Best effort: cleaning up must not hide the test's own outcome.
    with contextlib.suppress(Exception), app.connection_for_write(connect_timeout=2) as conn:
        channel = conn.channel()
        for queue in sorted(queues):
            with contextlib.suppress(Exception):
                channel.queue_delete(queue)
        for exchange in sorted(exchanges):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)
