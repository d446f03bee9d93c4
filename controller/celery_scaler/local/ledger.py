"""Every Celery task's fate on the local fleet: completed, interrupted, redelivered, lost.

ECS knows nothing of Celery, so the fleet cannot tell which task a stopped container was
running. The tasks tell: the demo app (`local/demo_app.py`) appends one JSON line to a
Redis list when a task starts and one when it ends, naming its worker (`LEDGER_URL_ENV`
and `LEDGER_KEY_ENV` in the worker's environment say where; the local fleet sets them).
The fleet knows which workers ended and how. `fates` puts the two together:

- a run (one delivery of a task to a worker) that started and never ended, on a worker
  that is gone, was **interrupted** (SIGKILL after the stop timeout, or a crash);
- an interrupted task that started again later was **redelivered** (`acks_late`: the
  broker gave the message to another worker), otherwise it is **lost** (acknowledged on
  receipt, as Celery does by default, so nothing brings it back);
- a task that ran to its end at least once **completed** (a redelivered task may too).

Runs on workers the fleet stopped when it closed, and runs still going, are neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

LEDGER_URL_ENV = "CELERY_SCALER_LEDGER_URL"
LEDGER_KEY_ENV = "CELERY_SCALER_LEDGER_KEY"

Event = Literal["started", "finished"]
WorkerEnd = Literal["stopped", "killed", "crashed", "closed"]
"""How a worker ended: a warm shutdown that finished in time, SIGKILL after the stop
timeout, an exit of its own (a crash, a SIGKILL from outside), the fleet closing."""


@dataclass(frozen=True)
class Entry:
    """One line of the ledger."""

    task: str
    event: Event
    worker: str
    time: float

    @classmethod
    def parse(cls, raw: bytes | str) -> Entry:
        data = json.loads(raw)
        return cls(str(data["task"]), data["event"], str(data["worker"]), float(data["time"]))

    def dumps(self) -> str:
        return json.dumps(
            {"task": self.task, "event": self.event, "worker": self.worker, "time": self.time}
        )


@dataclass(frozen=True)
class TaskFate:
    task: str
    completed: bool
    interrupted: int
    """Runs of this task cut short."""
    redelivered: bool
    lost: bool
    workers: tuple[str, ...]
    """The workers it ran on, in order."""


@dataclass(frozen=True)
class Fates:
    tasks: tuple[TaskFate, ...] = ()
    running: int = 0
    """Tasks not completed with a run still going (or cut by the fleet closing)."""

    @property
    def completed(self) -> int:
        return sum(1 for fate in self.tasks if fate.completed)

    @property
    def interrupted(self) -> int:
        return sum(1 for fate in self.tasks if fate.interrupted)

    @property
    def redelivered(self) -> int:
        return sum(1 for fate in self.tasks if fate.redelivered)

    @property
    def lost(self) -> int:
        return sum(1 for fate in self.tasks if fate.lost)

    def interrupted_on(self, worker: str) -> list[str]:
        """Ids of the tasks a run of which was cut short on `worker`."""
        return [fate.task for fate in self.tasks if fate.interrupted and worker in fate.workers]


def fates(entries: Iterable[Entry], ended: Mapping[str, WorkerEnd]) -> Fates:
    """Each started task's fate, from the ledger and how each gone worker ended (pure).

    A worker absent from `ended` is still running.
    """
    runs: dict[str, list[tuple[str, bool]]] = {}
    open_runs: dict[tuple[str, str], int] = {}
    for entry in sorted(entries, key=lambda e: e.time):
        task_runs = runs.setdefault(entry.task, [])
        key = (entry.task, entry.worker)
        if entry.event == "started":
            open_runs[key] = len(task_runs)
            task_runs.append((entry.worker, False))
        elif key in open_runs:
            index = open_runs.pop(key)
            task_runs[index] = (entry.worker, True)
        else:  # an end whose start was not recorded: count it as a whole run
            task_runs.append((entry.worker, True))
    result: list[TaskFate] = []
    running = 0
    for task, task_runs in runs.items():
        interrupted = 0
        cut_at: int | None = None
        still = False
        for index, (worker, finished) in enumerate(task_runs):
            if finished:
                continue
            end = ended.get(worker)
            if end in ("killed", "crashed", "stopped"):
                interrupted += 1
                cut_at = index if cut_at is None else cut_at
            else:
                still = True
        completed = any(finished for _, finished in task_runs)
        redelivered = cut_at is not None and cut_at < len(task_runs) - 1
        lost = bool(interrupted) and not redelivered and not completed and not still
        if still and not completed:
            running += 1
        result.append(
            TaskFate(
                task=task,
                completed=completed,
                interrupted=interrupted,
                redelivered=redelivered,
                lost=lost,
                workers=tuple(worker for worker, _ in task_runs),
            )
        )
    return Fates(tuple(result), running)


class TaskLedger:
    """The ledger list in Redis: what the demo app's workers wrote."""

    def __init__(self, url: str, key: str) -> None:
        import redis

        self.url = url
        self.key = key
        self._redis = redis.Redis.from_url(url)

    @property
    def env(self) -> dict[str, str]:
        """The workers' environment that makes them write here."""
        return {LEDGER_URL_ENV: self.url, LEDGER_KEY_ENV: self.key}

    def entries(self) -> list[Entry]:
        """Every line so far (empty while Redis cannot be read)."""
        try:
            raw = self._redis.lrange(self.key, 0, -1)
        except Exception:
            return []
        return [Entry.parse(item) for item in raw]

    def clear(self) -> None:
        self._redis.delete(self.key)

    def close(self) -> None:
        self._redis.close()
