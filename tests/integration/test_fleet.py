"""The local fleet, as harsh as ECS, against the local AWS API and real Celery workers on Redis."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator

import pytest

from celery_scaler.local.aws_api import LocalAws
from celery_scaler.local.demo import TaskSender, delete_keys
from celery_scaler.local.fleet import FleetCounts, LocalFleet, local_fleet
from tests.workers import wait_for

pytestmark = pytest.mark.integration


def fleet_for(
    aws: LocalAws, redis_url: str, unique: str, desired: int, **options: object
) -> LocalFleet:
    aws.create_service(f"f-{unique}", "workers", desired=desired)
    settings: dict[str, object] = {
        "control_exchange": f"f-{unique}",
        "stop_timeout": 1.5,
        "poll_interval": 0.2,
        "name_prefix": f"f{unique}",
        **options,
    }
    return local_fleet(aws, f"f-{unique}", "workers", redis_url, [f"f-{unique}.q"], **settings)


@pytest.fixture
def cleanup(redis_url: str, unique: str) -> Iterator[None]:
    yield
    delete_keys(redis_url, f"f-{unique}")


def set_desired(aws: LocalAws, fleet: LocalFleet, count: int) -> float:
    aws.client("ecs").update_service(
        cluster=fleet.cluster, service=fleet.service, desiredCount=count
    )
    return time.time()


def protect(aws: LocalAws, fleet: LocalFleet, worker: str, enabled: bool = True) -> None:
    arn = fleet.task_of(worker)
    assert arn is not None
    aws.client("ecs").update_task_protection(
        cluster=fleet.cluster, tasks=[arn], protectionEnabled=enabled, expiresInMinutes=5
    )


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def busy_on_every_worker(
    fleet: LocalFleet, sender: TaskSender, seconds: float, per_worker: int = 2
) -> None:
    """A task of `seconds` started on each running worker (concurrency 1 each).

    Two per worker by default: a worker acknowledging on receipt (Celery's default)
    takes one more message as soon as it starts a task, so the first worker up holds two.
    """
    sender.send(seconds, per_worker * len(fleet.workers))
    wait_for(
        lambda: len({r.worker for r in sender.records()}) == len(fleet.workers),
        30,
        "a task running on every worker",
    )


def test_the_service_tasks_are_registered_and_follow_desired_count_with_a_start_delay(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 1, start_delay=1.0)
    ecs = aws.client("ecs")
    with fleet:
        # The service's current count starts at once (a service already running).
        assert [e.kind for e in fleet.events()] == ["started"]
        asked = set_desired(aws, fleet, 2)
        wait_for(lambda: fleet.counts().running == 2, 10, "a second worker")
        started = [e for e in fleet.events() if e.kind == "started"][-1]
        requested = [e for e in fleet.events() if e.kind == "requested"][-1]
        assert started.worker == requested.worker
        assert started.time - asked >= fleet.start_delay
        # Each worker's task is the service's, and its id is the worker's host name.
        listed = ecs.list_tasks(cluster=fleet.cluster, serviceName="workers")["taskArns"]
        assert sorted(listed) == sorted(fleet.task_of(w.name) or "" for w in fleet.workers)
        (task,) = ecs.describe_tasks(cluster=fleet.cluster, tasks=listed[:1])["tasks"]
        assert task["group"] == "service:workers"
        assert task["startedBy"].startswith("ecs-svc/")
        assert all(w.name.endswith("@" + (fleet.task_of(w.name) or "").rpartition("/")[2])
                   for w in fleet.workers)  # fmt: skip
    assert ecs.list_tasks(cluster=fleet.cluster, desiredStatus="RUNNING")["taskArns"] == []
    assert fleet.worker_seconds() > 0


def test_scale_in_stops_a_busy_unprotected_task_and_its_task_is_interrupted_and_lost(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 2)
    sender = TaskSender(redis_url, fleet.queues[0], f"f-{unique}.report")
    with fleet:
        busy_on_every_worker(fleet, sender, 30.0)
        set_desired(aws, fleet, 1)
        # Both are busy: ECS stops one anyway, SIGTERM, then SIGKILL after stopTimeout.
        wait_for(lambda: any(e.kind == "killed" for e in fleet.events()), 15, "a SIGKILL")
        (killed,) = [e for e in fleet.events() if e.kind == "killed"]
        assert "1 running task(s) interrupted" in killed.detail
        stopping = next(e for e in fleet.events() if e.kind == "stopping")
        assert killed.time - stopping.time >= fleet.stop_timeout
        fates = fleet.fates()
        assert (fates.interrupted, fates.lost, fates.redelivered) == (1, 1, 0)
        assert fates.interrupted_on(str(killed.worker))
        assert fleet.counts().running == 1
    sender.close()


def test_a_protected_task_survives_scale_in_until_its_protection_ends(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 3, seed=7)
    with fleet:
        kept = fleet.workers[0]
        protect(aws, fleet, kept.name)
        set_desired(aws, fleet, 1)
        wait_for(lambda: fleet.counts().stopping == 0 and fleet.counts().running == 1, 15, "1")
        assert fleet.workers == [kept]
        # At 0 the protected task is still not stopped: the service stays above desired.
        set_desired(aws, fleet, 0)
        wait_for(lambda: any(e.kind == "protected" for e in fleet.events()), 5, "a wait")
        time.sleep(5 * fleet.poll_interval)  # that many scheduler passes: none stops it
        assert fleet.workers == [kept]
        protect(aws, fleet, kept.name, enabled=False)
        idle = FleetCounts(desired=0, pending=0, running=0, stopping=0)
        wait_for(lambda: fleet.counts() == idle, 10, "the released task to stop")
    stopped = [e.worker for e in fleet.events() if e.kind == "stopped"]
    assert stopped[-1] == kept.name


def test_a_warm_shutdown_within_the_stop_timeout_lets_the_running_task_complete(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 1, stop_timeout=10.0)
    sender = TaskSender(redis_url, fleet.queues[0], f"f-{unique}.report")
    with fleet:
        busy_on_every_worker(fleet, sender, 2.0, per_worker=1)
        set_desired(aws, fleet, 0)
        wait_for(lambda: fleet.counts().stopping == 0 and not fleet.workers, 15, "a stop")
        assert [e.kind for e in fleet.events()][-2:] == ["stopping", "stopped"]
        fates = fleet.fates()
        assert (fates.completed, fates.interrupted) == (1, 0)
    sender.close()


def test_with_acks_late_an_interrupted_task_is_redelivered(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    # Redis gives an unacknowledged message back once its visibility timeout passed, at
    # kombu's next sweep (every interval times throttle seconds: 100 s by default). The timeout
    # outlasts the 4 s task: a running task's message would be given out again too.
    options = {
        "visibility_timeout": 6,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    fleet = fleet_for(
        aws,
        redis_url,
        unique,
        2,
        env={
            "CELERY_SCALER_ACKS_LATE": "1",
            "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(options),
        },
    )
    sender = TaskSender(redis_url, fleet.queues[0], f"f-{unique}.report")
    with fleet:
        busy_on_every_worker(fleet, sender, 4.0, per_worker=1)
        set_desired(aws, fleet, 1)
        wait_for(lambda: fleet.fates().completed == 2, 40, "both tasks to complete")
        fates = fleet.fates()
        assert (fates.interrupted, fates.redelivered, fates.lost) == (1, 1, 0)
    sender.close()


def test_no_worker_outlives_an_exception(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 2)
    pids: list[int] = []

    def crash() -> None:
        with fleet:
            pids.extend(worker.pid for worker in fleet.workers)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        crash()
    assert len(pids) == 2
    assert all(group_gone(pid) for pid in pids)


def test_a_deployment_replaces_every_task_and_a_protected_one_delays_it(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 2)
    ecs = aws.client("ecs")
    with fleet:
        old = {worker.name for worker in fleet.workers}
        kept = fleet.workers[0]
        protect(aws, fleet, kept.name)
        revision = ecs.register_task_definition(
            family="workers-task",
            containerDefinitions=[{"name": "worker", "image": "celery-worker:v2", "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.update_service(cluster=fleet.cluster, service="workers", taskDefinition=revision)

        def deploying() -> bool:
            (service,) = ecs.describe_services(cluster=fleet.cluster, services=["workers"])[
                "services"
            ]
            return len(service["deployments"]) > 1

        # Two new tasks start (maximumPercent 200), the unprotected old one is replaced;
        # the protected one holds the deployment open.
        (replaced,) = old - {kept.name}
        wait_for(
            lambda: any(e.kind == "stopped" and e.worker == replaced for e in fleet.events()),
            15,
            "the unprotected old task to be replaced",
        )
        assert len({w.name for w in fleet.workers} - old) == 2
        assert {w.name for w in fleet.workers} & old == {kept.name}
        assert deploying()
        protect(aws, fleet, kept.name, enabled=False)
        wait_for(lambda: not deploying(), 15, "the deployment to complete")
        # ECS marks the old task stopped at once; its worker then shuts down (SIGTERM).
        wait_for(lambda: not {w.name for w in fleet.workers} & old, 15, "the old worker to stop")


def test_a_task_protects_itself_through_the_ecs_agent_endpoint(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    fleet = fleet_for(aws, redis_url, unique, 2)
    with fleet:
        kept = fleet.workers[0]
        arn = fleet.task_of(kept.name)
        assert arn is not None
        # What the worker's container finds in its environment, and calls.
        agent = fleet.agent.env(arn)["ECS_AGENT_URI"]
        request = urllib.request.Request(
            f"{agent}/task-protection/v1/state",
            data=json.dumps({"ProtectionEnabled": True, "ExpiresInMinutes": 5}).encode(),
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            protection = json.loads(response.read())["protection"]
        assert (protection["ProtectionEnabled"], protection["TaskArn"]) == (True, arn)
        with urllib.request.urlopen(f"{agent}/task", timeout=5) as response:
            assert json.loads(response.read())["DesiredStatus"] == "RUNNING"
        set_desired(aws, fleet, 1)
        wait_for(lambda: fleet.counts().stopping == 0 and fleet.counts().running == 1, 15, "1")
        assert fleet.workers == [kept]


def test_workers_that_protect_their_own_busy_tasks_are_not_stopped_mid_task(
    aws: LocalAws, redis_url: str, unique: str, cleanup: None
) -> None:
    # What instrument(app) does on SQS, where no drain is possible: each worker protects
    # its own task through the ECS agent endpoint while it holds tasks.
    fleet = fleet_for(aws, redis_url, unique, 3, env={"CELERY_SCALER_PROTECT_BUSY_TASKS": "1.0"})
    sender = TaskSender(redis_url, fleet.queues[0], f"f-{unique}.report")
    with fleet:
        sender.send(4.0)
        wait_for(lambda: bool(sender.records()), 15, "the task to start")
        (record,) = sender.records()
        busy = next(w for w in fleet.workers if w.name == record.worker)
        set_desired(aws, fleet, 1)
        # The two idle workers go; the busy one is protected and keeps its task.
        wait_for(lambda: fleet.counts().stopping == 0 and fleet.counts().running == 1, 15, "1")
        assert fleet.workers == [busy]
        set_desired(aws, fleet, 0)
        # Released once idle, and then stopped: the task completed first.
        wait_for(lambda: fleet.counts().running == 0, 20, "the busy worker to stop")
        fates = fleet.fates()
        assert (fates.completed, fates.interrupted) == (1, 0)
    sender.close()
