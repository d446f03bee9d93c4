"""Busy tasks keep ECS task scale-in protection, so ECS stops idle ones first (pure).

ECS picks which tasks to stop when the desired count drops; a task with scale-in
protection is skipped. The controller maps each Celery worker to the ECS task it runs
in and keeps protection on the tasks whose worker is busy, releasing it once idle.

Mapping a worker to its task, most exact first:

1. the ECS task id in the worker's node name: start workers with
   `celery worker -n "celery@${TASK_ID}"` where TASK_ID is the last part of the task
   ARN from `$ECS_CONTAINER_METADATA_URI_V4/task`;
2. the task's private IP in the node name's host, as awsvpc hostnames have it
   (`celery@ip-10-0-1-23.ec2.internal` is 10.0.1.23), or the IP itself;
3. the task's private DNS name, first label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from celery_scaler.core.model import WorkerSnapshot

_IP_HOST = re.compile(r"^ip-(\d+)-(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True)
class TaskInfo:
    """A running ECS task of a pool's service, with what identifies its worker."""

    arn: str
    addresses: frozenset[str] = frozenset()
    hostnames: frozenset[str] = frozenset()

    @property
    def task_id(self) -> str:
        return self.arn.rpartition("/")[2]


def task_of_worker(worker: str, tasks: Iterable[TaskInfo]) -> TaskInfo | None:
    """The task a worker node name belongs to, or None when nothing identifies it."""
    tasks = list(tasks)
    host = worker.partition("@")[2] or worker
    for task in tasks:
        if task.task_id and task.task_id in worker:
            return task
    label = host.split(".")[0]
    match = _IP_HOST.match(label)
    address = ".".join(match.groups()) if match else host
    for task in tasks:
        if address in task.addresses:
            return task
    for task in tasks:
        if label in {name.split(".")[0] for name in task.hostnames}:
            return task
    return None


@dataclass(frozen=True)
class ProtectionChanges:
    protect: tuple[str, ...]
    """Task ARNs to protect, or whose protection to renew, for `minutes`."""
    release: tuple[str, ...]
    unmapped: tuple[str, ...]
    """Busy workers whose task could not be told: they stay unprotected."""
    minutes: int = 60


def busy_and_idle(
    workers: Iterable[WorkerSnapshot], tasks: Sequence[TaskInfo]
) -> tuple[set[str], set[str], list[str]]:
    """(ARNs of tasks whose worker is busy, of those whose worker answered idle, busy
    workers matched to no task)."""
    busy: set[str] = set()
    idle: set[str] = set()
    unmapped: list[str] = []
    for worker in workers:
        task = task_of_worker(worker.name, tasks)
        if task is None:
            if worker.busy:
                unmapped.append(worker.name)
            continue
        (busy if worker.busy else idle).add(task.arn)
    return busy, idle - busy, unmapped


def protection_changes(
    workers: Iterable[WorkerSnapshot],
    tasks: Iterable[TaskInfo],
    protected_until: Mapping[str, float],
    protected_by_us: Iterable[str],
    now: float,
    renew_within: float,
    *,
    draining: Collection[str] | None = None,
    busy_only_until: float | None = None,
    protect_busy: bool = True,
    minutes: int = 60,
    drain_minutes: int = 60,
) -> ProtectionChanges:
    """Which task ARNs to protect (or renew) and which to release this pass.

    What this controller wants protected, by what is going on:

    - a drain (`draining`, the drained workers' names; core/drain.py): every task but the
      drained workers', for `drain_minutes` at a time, so ECS can stop only those;
    - a deployment rolling out (`busy_only_until`): the tasks of busy workers, and only
      until then, so protection never holds a deployment up for long; every other task
      this controller protected is released;
    - otherwise, with `protect_busy` (protectBusyTasks): the busy workers' tasks, and the
      ones it protected whose worker did not answer (their state is unknown).

    Protection is renewed when less than `renew_within` seconds of it are left. Only
    protection this controller set is ever released: the application's own is not ours.
    """
    tasks = list(tasks)
    ours = set(protected_by_us)
    busy, idle, unmapped = busy_and_idle(workers, tasks)
    if draining is not None:
        drained = {task.arn for name in draining if (task := task_of_worker(name, tasks))}
        wanted = {task.arn for task in tasks} - drained
        minutes, unmapped = drain_minutes, []
    elif busy_only_until is not None:
        wanted = busy if now < busy_only_until else set()
        minutes = max(1, math.ceil((busy_only_until - now) / 60))
    elif protect_busy:
        unknown = {task.arn for task in tasks} - busy - idle
        wanted = busy | (unknown & ours)
    else:
        wanted, unmapped = set(), []
    protect = sorted(arn for arn in wanted if protected_until.get(arn, 0.0) - now < renew_within)
    release = sorted(arn for arn in ours - wanted if arn in protected_until)
    return ProtectionChanges(tuple(protect), tuple(release), tuple(sorted(unmapped)), minutes)
