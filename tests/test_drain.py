"""Drain-then-remove (pure): which workers to drain, when to remove them, when to give up."""

from __future__ import annotations

import pytest

from celery_scaler.core.drain import DrainStep, choose_victims, drain_progress
from celery_scaler.core.model import Drain, ServiceObservation, WorkerSnapshot
from celery_scaler.core.protection import TaskInfo

NOW = 10_000.0


def task_id(name: str) -> str:
    """A task id as ECS writes them (32 hex digits), recognisable by its first letter."""
    return name + "0" * 31


def arn(name: str) -> str:
    return f"arn:aws:ecs:us-east-1:1:task/c/{task_id(name)}"


def node(name: str) -> str:
    """The worker's node name, `celery@<task id>` as the README asks."""
    return f"celery@{task_id(name)}"


TASKS = [TaskInfo(arn(name)) for name in "abcd"]


def worker(name: str, active: int = 0, reserved: int = 0, queues: str = "q") -> WorkerSnapshot:
    return WorkerSnapshot(node(name), frozenset(queues.split()), active, reserved, 0, 0, 1)


@pytest.mark.parametrize(
    ("workers", "protected", "ours", "count", "chosen"),
    [
        # Idle first, then the least work left (running + prefetched), then by name.
        ([worker("a", 1), worker("b"), worker("c", 1, 2), worker("d")], {}, (), 2, ("b", "d")),
        ([worker("a", 1), worker("b"), worker("c", 1, 2), worker("d")], {}, (), 3, ("b", "d", "a")),
        ([worker("a", 1, 1), worker("b", 2)], {}, (), 1, ("b",)),
        # Protected by someone else: never chosen; protected by this controller: it may be.
        ([worker("a"), worker("b", 1)], {arn("a"): NOW + 60}, (), 1, ("b",)),
        ([worker("a"), worker("b", 1)], {arn("a"): NOW + 60}, (arn("a"),), 1, ("a",)),
        # Protection that has ended no longer counts.
        ([worker("a"), worker("b", 1)], {arn("a"): NOW - 1}, (), 1, ("a",)),
        # A worker matched to no task cannot be told apart by ECS.
        ([worker("zz"), worker("b", 1)], {}, (), 1, ("b",)),
        ([worker("zz")], {}, (), 1, ()),
    ],
)
def test_choose_victims(
    workers: list[WorkerSnapshot],
    protected: dict[str, float],
    ours: tuple[str, ...],
    count: int,
    chosen: tuple[str, ...],
) -> None:
    names, _ = choose_victims(workers, TASKS, protected, ours, count, NOW)
    assert names == tuple(node(name) for name in chosen)


def test_why_a_worker_was_not_chosen_is_said() -> None:
    _, skipped = choose_victims([worker("zz"), worker("a")], TASKS, {arn("a"): NOW + 9}, (), 2, NOW)
    assert skipped == (
        f"{node('zz')} is not matched to an ECS task",
        f"{node('a')}'s task is protected by someone else",
    )


DRAIN = Drain(current=4, desired=2, started=NOW - 30, workers=(node("a"), node("b")))


def service(desired: int = 4, running: int = 4, deploying: bool = False) -> ServiceObservation:
    return ServiceObservation(desired, running, 0, deploying)


@pytest.mark.parametrize(
    ("drain", "workers", "tasks", "observed", "scaling_out", "restarted", "step", "says"),
    [
        # The drained workers still work (or did not answer): wait.
        (DRAIN, [worker("a", 1, queues=""), worker("b", queues="")], TASKS, service(), False,
         False, DrainStep.WAIT, "celery@a 1 task left, celery@b idle"),
        (DRAIN, [worker("a", queues="")], TASKS, service(), False, False, DrainStep.WAIT,
         "celery@b did not answer"),
        # Both idle: remove them.
        (DRAIN, [worker("a", queues=""), worker("b", queues="")], TASKS, service(), False, False,
         DrainStep.REMOVE, "drained celery@a, celery@b in 30s"),
        # Idle, but still consuming the queue (it did not get the word): not drained.
        (DRAIN, [worker("a"), worker("b", queues="")], TASKS, service(), False, False,
         DrainStep.WAIT, "celery@a still consumes"),
        # Prefetched tasks are work left too.
        (DRAIN, [worker("a", 0, 1, queues=""), worker("b", queues="")], TASKS, service(), False,
         False, DrainStep.WAIT, "celery@a 1 task left"),
        # Give up: the timeout, someone else's count, a rollout, more work, a lost task, a
        # restart.
        (Drain(4, 2, NOW - 600, DRAIN.workers), [worker("a", 1, queues="")], TASKS, service(),
         False, False, DrainStep.ABORT, "drainTimeout (600s) passed"),
        (DRAIN, [], TASKS, service(desired=6), False, False, DrainStep.ABORT,
         "desiredCount changed outside the controller during the drain: 4 → 6"),
        (DRAIN, [], TASKS, service(deploying=True), False, False, DrainStep.ABORT,
         "a deployment began"),
        (DRAIN, [], TASKS, service(), True, False, DrainStep.ABORT, "needs more workers"),
        (DRAIN, [], TASKS[1:], service(), False, False, DrainStep.ABORT,
         "the ECS task of celery@a is gone"),
        (DRAIN, [], TASKS, service(), False, True, DrainStep.ABORT, "restarted 30s into"),
        # Once the count is lowered: wait for ECS to stop them, then done...
        (Drain(4, 2, NOW - 30, DRAIN.workers, NOW - 5), [], TASKS, service(2, 2), False, False,
         DrainStep.WAIT, "waiting for ECS to stop celery@a, celery@b"),
        (Drain(4, 2, NOW - 30, DRAIN.workers, NOW - 5), [], TASKS[2:], service(2, 2), False,
         False, DrainStep.DONE, "ECS stopped celery@a, celery@b"),
        # ... a restart changes nothing then; but a drained worker ECS kept gets its queues.
        (Drain(4, 2, NOW - 30, DRAIN.workers, NOW - 5), [], TASKS, service(2, 2), False, True,
         DrainStep.WAIT, "waiting for ECS"),
        (Drain(4, 2, NOW - 30, DRAIN.workers, NOW - 5), [], TASKS[1:3], service(2, 2), False,
         False, DrainStep.ABORT, "ECS kept celery@b running"),
        (Drain(4, 2, NOW - 900, DRAIN.workers, NOW - 700), [], TASKS, service(2, 2), False,
         False, DrainStep.ABORT, "ECS has not stopped celery@a, celery@b within drainTimeout"),
    ],
)  # fmt: skip
def test_drain_progress(
    drain: Drain,
    workers: list[WorkerSnapshot],
    tasks: list[TaskInfo],
    observed: ServiceObservation,
    scaling_out: bool,
    restarted: bool,
    step: DrainStep,
    says: str,
) -> None:
    progress = drain_progress(
        drain,
        workers=workers,
        queues=("q",),
        tasks=tasks,
        service=observed,
        scaling_out=scaling_out,
        restarted=restarted,
        now=NOW,
        timeout=600,
    )
    assert progress.step is step
    assert says.replace("celery@a", node("a")).replace("celery@b", node("b")) in progress.reason
