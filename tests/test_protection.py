"""Busy workers' ECS tasks keep scale-in protection (pure mapping and planning)."""

from __future__ import annotations

import pytest

from celery_scaler.core.model import WorkerSnapshot
from celery_scaler.core.protection import TaskInfo, protection_changes, task_of_worker

ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/"
A = TaskInfo(ARN + "0123456789abcdef0123456789abcdef", frozenset({"10.0.1.23"}))
B = TaskInfo(
    ARN + "fedcba9876543210fedcba9876543210",
    frozenset({"10.0.2.7"}),
    frozenset({"ip-10-0-2-7.ec2.internal"}),
)
C = TaskInfo(ARN + "11112222333344445555666677778888", frozenset(), frozenset({"worker-c.local"}))
TASKS = [A, B, C]


@pytest.mark.parametrize(
    ("worker", "task"),
    [
        ("celery@0123456789abcdef0123456789abcdef", A),  # the task id, exact
        ("celery@ip-10-0-1-23.ec2.internal", A),  # awsvpc hostname
        ("celery@10.0.2.7", B),  # the IP itself
        ("celery@worker-c", C),  # private DNS name, first label
        ("celery@somewhere-else", None),
        ("celery@ip-10-0-9-9", None),
    ],
)
def test_task_of_worker(worker: str, task: TaskInfo | None) -> None:
    assert task_of_worker(worker, TASKS) == task


def worker(name: str, active: int) -> WorkerSnapshot:
    return WorkerSnapshot(name, frozenset({"q"}), active, 0, 0, 0, 1)


NOW = 10_000.0


def test_busy_tasks_are_protected_renewed_near_expiry_and_idle_ones_released() -> None:
    workers = [
        worker("celery@ip-10-0-1-23", 1),  # A busy, unprotected → protect
        worker("celery@10.0.2.7", 1),  # B busy, protection ends soon → renew
        worker("celery@worker-c", 0),  # C idle, protected by us → release
    ]
    until = {B.arn: NOW + 30, C.arn: NOW + 3000}
    changes = protection_changes(workers, TASKS, until, {C.arn}, NOW, renew_within=90)
    assert changes.protect == tuple(sorted([A.arn, B.arn]))
    assert changes.release == (C.arn,)
    assert changes.unmapped == ()


def test_protection_someone_else_set_is_left_alone() -> None:
    changes = protection_changes(
        [worker("celery@worker-c", 0)], TASKS, {C.arn: NOW + 3000}, set(), NOW, 90
    )
    assert changes.release == ()


def test_a_task_whose_worker_did_not_answer_keeps_its_protection() -> None:
    changes = protection_changes([], TASKS, {A.arn: NOW + 3000}, {A.arn}, NOW, 90)
    assert (changes.protect, changes.release) == ((), ())


def test_busy_but_far_from_expiry_is_not_rewritten_and_unmapped_busy_are_named() -> None:
    changes = protection_changes(
        [worker("celery@ip-10-0-1-23", 2), worker("celery@elsewhere", 1)],
        TASKS,
        {A.arn: NOW + 3000},
        {A.arn},
        NOW,
        90,
    )
    assert (changes.protect, changes.release) == ((), ())
    assert changes.unmapped == ("celery@elsewhere",)


def test_a_drain_protects_every_task_but_the_drained_ones_and_releases_those() -> None:
    workers = [worker("celery@ip-10-0-1-23", 0), worker("celery@10.0.2.7", 1)]
    changes = protection_changes(
        workers,
        TASKS,
        {A.arn: NOW + 3000},
        {A.arn},
        NOW,
        90,
        draining=("celery@ip-10-0-1-23",),
        drain_minutes=11,
    )
    # B (busy) and C (its worker did not even answer) are protected; A, drained, released.
    assert changes.protect == tuple(sorted([B.arn, C.arn]))
    assert (changes.release, changes.minutes) == ((A.arn,), 11)


def test_during_a_rollout_only_busy_tasks_stay_protected_and_only_for_a_while() -> None:
    workers = [worker("celery@ip-10-0-1-23", 1), worker("celery@10.0.2.7", 0)]
    ours = {A.arn, B.arn, C.arn}
    until = dict.fromkeys(ours, NOW + 30)
    during = protection_changes(workers, TASKS, until, ours, NOW, 90, busy_only_until=NOW + 150)
    assert (during.protect, during.minutes) == ((A.arn,), 3)
    assert during.release == tuple(sorted([B.arn, C.arn]))  # idle, and not answering
    after = protection_changes(workers, TASKS, until, ours, NOW, 90, busy_only_until=NOW - 1)
    assert (after.protect, after.release) == ((), tuple(sorted(ours)))


def test_without_protect_busy_everything_this_controller_protected_is_released() -> None:
    changes = protection_changes(
        [worker("celery@ip-10-0-1-23", 1)], TASKS, {A.arn: NOW + 9}, {A.arn}, NOW, 90,
        protect_busy=False,
    )  # fmt: skip
    assert (changes.protect, changes.release, changes.unmapped) == ((), (A.arn,), ())
