"""The local fleet against the local AWS API and real Celery workers on Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from celery_scaler.local.aws_api import LocalAws
from celery_scaler.local.demo import TaskSender, delete_keys
from celery_scaler.local.fleet import LocalFleet, local_fleet
from tests.workers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(aws: LocalAws, redis_url: str, unique: str) -> Iterator[LocalFleet]:
    aws.create_service(f"f-{unique}", "workers", desired=2)
    exchange = f"f-{unique}"
    yield local_fleet(
        aws,
        f"f-{unique}",
        "workers",
        redis_url,
        [f"f-{unique}.q"],
        control_exchange=exchange,
        start_delay=1.0,
        stop_timeout=15,
        poll_interval=0.2,
        name_prefix=f"f{unique}",
    )
    delete_keys(redis_url, f"f-{unique}")


def set_desired(aws: LocalAws, fleet: LocalFleet, count: int) -> float:
    aws.client("ecs").update_service(
        cluster=fleet.cluster, service=fleet.service, desiredCount=count
    )
    return time.time()


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_follows_desired_count_with_start_delay_and_stops_idle_workers_first(
    aws: LocalAws, fleet: LocalFleet, redis_url: str
) -> None:
    sender = TaskSender(redis_url, fleet.queues[0], f"{fleet.queues[0]}.report")
    with fleet:
        # The service's current count starts at once (a service already running).
        assert [e.kind for e in fleet.events()] == ["started", "started"]
        first, second = fleet.workers

        # One worker runs a 3 s task.
        sender.send(3.0)
        wait_for(lambda: bool(sender.records()), 30, "the task to start")
        (record,) = sender.records()
        busy = first if record.worker == first.name else second
        idle = second if busy is first else first

        asked = set_desired(aws, fleet, 3)
        wait_for(lambda: fleet.counts().running == 3, 10, "a third worker")
        started = [e for e in fleet.events() if e.kind == "started"][-1]
        requested = [e for e in fleet.events() if e.kind == "requested"][-1]
        assert started.worker == requested.worker
        assert started.time - asked >= fleet.start_delay
        third = fleet.workers[-1]

        # 3 → 1: the two idle workers stop (the newest first is not the rule: idle is).
        set_desired(aws, fleet, 1)
        wait_for(lambda: fleet.counts().stopping == 0 and fleet.counts().running == 1, 15, "1")
        stopped = {e.worker for e in fleet.events() if e.kind == "stopping"}
        assert stopped == {idle.name, third.name}
        assert fleet.workers == [busy]

        # 1 → 0 while it runs its task: a warm shutdown lets the task finish first.
        set_desired(aws, fleet, 0)

        def stopped_event() -> float | None:
            events = fleet.events()
            return next(
                (e.time for e in events if e.kind == "stopped" and e.worker == busy.name), None
            )

        wait_for(lambda: stopped_event() is not None, 15, "the busy worker to stop")
        assert busy.process.returncode == 0, busy.log_tail()
        assert (stopped_event() or 0) >= record.started + 3.0
    sender.close()
    assert fleet.worker_seconds() > 0


def test_no_worker_outlives_an_exception(fleet: LocalFleet) -> None:
    pids: list[int] = []

    def crash() -> None:
        with fleet:
            pids.extend(worker.pid for worker in fleet.workers)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        crash()
    assert len(pids) == 2
    assert all(group_gone(pid) for pid in pids)
