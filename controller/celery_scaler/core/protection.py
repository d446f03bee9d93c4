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

import re
from collections.abc import Iterable, Mapping
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
    release: tuple[str, ...]
    unmapped: tuple[str, ...]
    """Busy workers whose task could not be told: they stay unprotected."""


def protection_changes(
    workers: Iterable[WorkerSnapshot],
    tasks: Iterable[TaskInfo],
    protected_until: Mapping[str, float],
    protected_by_us: Iterable[str],
    now: float,
    renew_within: float,
) -> ProtectionChanges:
    """Which task ARNs to protect (or renew) and which to release this pass.

    Only a task whose worker answered idle is released, and only if this controller
    protected it: protection the application set itself is not ours to take away.
    """
    tasks = list(tasks)
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
    protect = sorted(arn for arn in busy if protected_until.get(arn, 0.0) - now < renew_within)
    release = sorted(arn for arn in (idle - busy) & set(protected_by_us) if arn in protected_until)
    return ProtectionChanges(tuple(protect), tuple(release), tuple(sorted(unmapped)))
