"""What `reconcile --once` sees of a pool's own real workers, on Redis and the local AWS API.

A pool's workers share the broker and the control exchange with other workers (here:
workers of no pool of the configuration), and they may prefetch more than they can run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from celery_scaler.local.aws_api import LocalAws
from tests.helpers import json_lines, pool_config, run, write
from tests.workers import SLEEP_TASK, Worker, WorkerFleet, start_workers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SCALE_IN_NOW = {
    "threshold": 0,
    "cooldown": 0,
    "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
}


def config(tmp_path: Path, text: str, **controller: object) -> Path:
    """`text` (one Controller, then pools) with these Controller settings changed."""
    documents = list(yaml.safe_load_all(text))
    documents[0]["spec"].update(controller)
    return write(tmp_path, yaml.safe_dump_all(documents))


def test_a_pool_counts_all_its_own_workers_among_others(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster, exchange = f"c-{unique}", f"x-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    text = pool_config(redis_url, cluster, queue, control_exchange=exchange, scaleIn=SCALE_IN_NOW)
    path = config(tmp_path, text, inspectTimeout="5s")
    with (
        # Started first, so they tend to answer first; ECS counts none of them.
        start_workers(
            redis_url, 6, [f"others-{unique}"], pool="threads", control_exchange=exchange
        ),
        start_workers(redis_url, 3, [queue], control_exchange=exchange, stop_timeout=2) as fleet,
    ):
        fleet.make_busy(fleet[0])

        result = run("reconcile", "--once", "--dry-run", "-o", "json", "--config", str(path))

        assert result.returncode == 0, result.stdout + result.stderr
        (line,) = json_lines(result.stdout)
        observed = line["observed"]
        assert isinstance(observed, dict)
        assert (observed["worker_status"], observed["active_tasks"]) == (3, 1)
        # All 3 running workers answered, 1 busy: the empty queue's scale-in goes ahead.
        assert (line["action"], line["desired"]) == ("scale_in", 2), line["reason"]


def reserved(fleet: WorkerFleet, worker: Worker) -> int:
    """How many messages the worker holds prefetched (0 when it did not answer)."""
    inspect = fleet.app.control.inspect(destination=[worker.name], timeout=0.5)
    return len((inspect.reserved() or {}).get(worker.name) or [])


def test_prefetch_hoarding_is_an_event_a_condition_and_a_metric(
    tmp_path: Path,
    aws: LocalAws,
    redis_url: str,
    unique: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, exchange = f"c-{unique}", f"x-{unique}"
    aws.create_service(cluster, "workers", desired=1)
    path = config(tmp_path, pool_config(redis_url, cluster, queue, control_exchange=exchange))
    # Celery's default multiplier: one slot prefetches 4 messages.
    monkeypatch.setenv("CELERY_PREFETCH_MULTIPLIER", "4")
    with start_workers(redis_url, 1, [queue], control_exchange=exchange, stop_timeout=2) as fleet:
        (worker,) = fleet
        # 5 long tasks: 1 runs, the 4 others wait on the worker, none in the queue.
        for _ in range(5):
            fleet.app.send_task(SLEEP_TASK, args=[120], queue=queue)
        wait_for(
            lambda: bool(fleet.active(worker)) and reserved(fleet, worker) == 4,
            30,
            "1 active and 4 reserved tasks",
            worker.log_tail,
        )

        result = run("reconcile", "--once", "-o", "json", "--config", str(path))

        assert result.returncode == 0, result.stdout + result.stderr
        (line,) = json_lines(result.stdout)
        observed = line["observed"]
        assert isinstance(observed, dict)
        assert (observed["queue_depth"], observed["hoarded_tasks"]) == (0, 4)
        assert line["conditions"] == ["PrefetchHoarding"]
        events = line["events"]
        assert isinstance(events, list)
        (event,) = [e for e in events if str(e).startswith("PrefetchHoarding")]
        assert f"{worker.name} holds 4 for 1 slot, prefetch_count 4" in event
        assert "worker_prefetch_multiplier = 1 and task_acks_late = True" in event

        status = run("status", "-o", "json", "--config", str(path))
        assert status.returncode == 0, status.stderr
        (pool,) = json_lines(status.stdout)
        conditions = pool["conditions"]
        assert isinstance(conditions, dict)
        assert conditions["PrefetchHoarding"] is True
