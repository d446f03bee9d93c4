"""Drain-then-remove: a scale-in that never stops a worker in the middle of a task (pure).

ECS chooses which tasks to stop when desiredCount drops, knowing nothing of Celery: it
may stop a worker an hour into a task while an idle one runs on. Task scale-in
protection is the only say anyone has in the choice. So a scale-in by k is done in steps,
over several passes:

1. **Choose** k workers to remove (`choose_victims`): idle ones first, then those with the
   least work (fewest running and prefetched tasks); never one whose task someone else
   protects, never one that cannot be matched to its ECS task.
2. **Drain**: the chosen workers stop consuming the pool's queues (Celery's
   `cancel_consumer`), and every other task of the service is protected, so whatever
   happens next ECS can only stop a chosen one.
3. **Wait** (`drain_progress`) until each chosen worker answers idle, at most
   `drainTimeout`.
4. **Remove**: release the chosen tasks' protection (the controller never set any), then
   lower desiredCount: the chosen tasks are the only unprotected ones, so ECS stops them.
5. **Done** once ECS has stopped them: the other tasks' protection is released.

Anything that goes wrong aborts and restores the chosen workers' consumers
(`add_consumer`): the drain timing out, desiredCount changed by someone else, the pool
needing more workers again, a deployment, a chosen task gone, or a controller that
restarted mid-drain (the drain is kept on the service, like the cooldowns, so the next
process knows whom to restore). And if, once the count was lowered, ECS stopped some
other task (one nobody could protect, say one just started), a chosen worker still
running gets its consumers back.

Time is an argument (`now`); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from celery_scaler.core.model import Drain, ServiceObservation, WorkerSnapshot
from celery_scaler.core.protection import TaskInfo, task_of_worker


def drain_summary(drain: Drain) -> dict[str, Any]:
    """A drain as the JSON line and `status` show it."""
    return {
        "from": drain.current,
        "to": drain.desired,
        "since": drain.started,
        "workers": list(drain.workers),
        "phase": "removing" if drain.removing is not None else "draining",
    }


def work_left(worker: WorkerSnapshot) -> int:
    """Tasks the worker still has: running and prefetched (those wait for a free slot)."""
    return worker.active + worker.reserved


def choose_victims(
    workers: Sequence[WorkerSnapshot],
    tasks: Sequence[TaskInfo],
    protected_until: Mapping[str, float],
    ours: Collection[str],
    count: int,
    now: float,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the workers to drain, at most `count`; why others could not be chosen).

    Idle workers first, then the least work left (running and prefetched tasks, fewer of
    them prefetched), then by name (a stable choice). A worker
    whose task is protected by someone else (the application itself, another controller)
    is not ours to remove; one that cannot be matched to its task could not be protected
    or told apart from the others by ECS.
    """
    candidates: list[WorkerSnapshot] = []
    skipped: list[str] = []
    for worker in workers:
        task = task_of_worker(worker.name, tasks)
        if task is None:
            skipped.append(f"{worker.name} is not matched to an ECS task")
        elif protected_until.get(task.arn, 0.0) > now and task.arn not in ours:
            skipped.append(f"{worker.name}'s task is protected by someone else")
        else:
            candidates.append(worker)
    # Of equal counts, fewer prefetched (not started) tasks is less work: the running ones
    # are part done.
    candidates.sort(key=lambda worker: (work_left(worker), worker.reserved, worker.name))
    return tuple(worker.name for worker in candidates[:count]), tuple(skipped)


class DrainStep(StrEnum):
    WAIT = "wait"
    """Chosen workers still have work (or did not answer): nothing changes this pass."""
    REMOVE = "remove"
    """Every chosen worker is idle: release their protection, then lower desiredCount."""
    DONE = "done"
    """ECS stopped the chosen tasks: release the others' protection, forget the drain."""
    ABORT = "abort"
    """Restore the chosen workers' consumers, release the protection, forget the drain."""


@dataclass(frozen=True)
class DrainProgress:
    step: DrainStep
    reason: str
    left: Mapping[str, int] = field(default_factory=dict)
    """Chosen worker → tasks it still has, for those that answered."""
    consuming: tuple[str, ...] = ()
    """Chosen workers that still consume one of the pool's queues: to be told again."""


def drain_progress(
    drain: Drain,
    *,
    workers: Sequence[WorkerSnapshot] | None,
    queues: Collection[str],
    tasks: Sequence[TaskInfo],
    service: ServiceObservation,
    scaling_out: bool,
    restarted: bool,
    now: float,
    timeout: float,
) -> DrainProgress:
    """Where a drain stands this pass and what to do about it.

    `workers` are every worker that answered inspect (None when inspect failed), chosen
    ones included: they should consume none of the pool's `queues` any more (one that
    still does never counts as drained: it may take a task at any moment). `tasks` are the
    service's tasks ECS means to run. `scaling_out`: the pool's decision this pass is to
    add workers. `restarted`: this process did not start the drain (a restart, or a pool
    taken over from another replica).
    """
    if drain.removing is not None:
        return _removal_progress(drain, tasks, service, now, timeout)
    age = now - drain.started
    if restarted:
        return _abort(f"the controller restarted {age:.0f}s into the drain")
    if service.desired != drain.current:
        return _abort(
            f"desiredCount changed outside the controller during the drain: "
            f"{drain.current} → {service.desired}"
        )
    if service.deploying:
        return _abort("a deployment began during the drain")
    if scaling_out:
        return _abort("the pool needs more workers again")
    gone = [name for name in drain.workers if task_of_worker(name, tasks) is None]
    if gone:
        return _abort(f"the ECS task of {', '.join(gone)} is gone")
    answered = {worker.name: worker for worker in workers or ()}
    left = {name: work_left(answered[name]) for name in drain.workers if name in answered}
    silent = [name for name in drain.workers if name not in answered]
    consuming = tuple(
        name for name in drain.workers if name in answered and answered[name].queues & set(queues)
    )
    if not silent and not consuming and not any(left.values()):
        return DrainProgress(
            DrainStep.REMOVE, f"drained {', '.join(drain.workers)} in {age:.0f}s", left
        )
    state = _describe_left(left, silent, consuming)
    if age >= timeout:
        return _abort(f"drainTimeout ({timeout:g}s) passed: {state}", left)
    return DrainProgress(
        DrainStep.WAIT,
        f"draining {len(drain.workers)} worker{'s' if len(drain.workers) > 1 else ''} before "
        f"{drain.current} → {drain.desired} ({age:.0f}s of {timeout:g}s): {state}",
        left,
        consuming,
    )


def _removal_progress(
    drain: Drain,
    tasks: Sequence[TaskInfo],
    service: ServiceObservation,
    now: float,
    timeout: float,
) -> DrainProgress:
    assert drain.removing is not None
    remaining = [name for name in drain.workers if task_of_worker(name, tasks) is not None]
    if not remaining:
        return DrainProgress(DrainStep.DONE, f"ECS stopped {', '.join(drain.workers)}")
    names = ", ".join(remaining)
    if len(tasks) <= service.desired:
        # ECS has stopped as many tasks as it will, and not these: it stopped others
        # (a task nobody could protect), or someone raised the count again.
        return _abort(f"ECS kept {names} running")
    if now - drain.removing >= timeout:
        return _abort(f"ECS has not stopped {names} within drainTimeout ({timeout:g}s)")
    return DrainProgress(DrainStep.WAIT, f"waiting for ECS to stop {names}")


def _abort(reason: str, left: Mapping[str, int] | None = None) -> DrainProgress:
    return DrainProgress(DrainStep.ABORT, reason, left or {})


def _describe_left(left: Mapping[str, int], silent: Sequence[str], consuming: Sequence[str]) -> str:
    parts = [
        f"{name} {count} task{'s' if count != 1 else ''} left" if count else f"{name} idle"
        for name, count in left.items()
    ]
    parts += [f"{name} did not answer" for name in silent]
    parts += [f"{name} still consumes" for name in consuming]
    return ", ".join(parts)
