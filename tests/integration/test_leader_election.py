"""Several real controller processes sharing pools through DynamoDB leases.

The local AWS API records every request it serves; each replica signs with its own
access key, so the recording is the ECS API's own history of who called UpdateService
for which service, in order.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from celery_scaler.local.aws_api import LocalAws
from tests import aws_calls
from tests.helpers import publish
from tests.workers import wait_for

pytestmark = pytest.mark.integration

SCRIPT = str(Path(sys.executable).parent / "celery-scaler")
INTERVAL, LEASE, INSPECT_TIMEOUT = 0.5, 4.0, 1.0


def config(broker: str, cluster: str, queues: list[str], table: str) -> str:
    controller = {
        "broker": broker,
        "interval": f"{INTERVAL}s",
        "inspectTimeout": f"{INSPECT_TIMEOUT}s",
        "controlExchange": f"x-{table}",
        "prometheus": {"enabled": False},
        "cloudwatch": {"enabled": False},
        "leaderElection": {"enabled": True, "table": table, "leaseDuration": f"{LEASE}s"},
    }
    docs: list[dict[str, object]] = [
        {"apiVersion": "celery-scaler/v1", "kind": "Controller", "spec": controller}
    ]
    for index, queue in enumerate(queues):
        spec = {
            "ecs": {"cluster": cluster, "service": f"svc{index}"},
            "queues": [queue],
            "minCapacity": 0,
            "maxCapacity": 10_000,
            "metric": "queue_depth",
            "safeScaleIn": False,
            # Every pass scales out by one: a steady stream of writes to watch.
            "scaleOut": {
                "threshold": 1,
                "cooldown": 0,
                "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
            },
        }
        docs.append(
            {
                "apiVersion": "celery-scaler/v1",
                "kind": "WorkerPool",
                "metadata": {"name": f"pool{index}"},
                "spec": spec,
            }
        )
    return yaml.safe_dump_all(docs)


class Recording:
    """UpdateService calls as the local AWS API saw them: (replica, service) in order."""

    def __init__(self) -> None:
        self._since = aws_calls.mark()

    def updates(self) -> list[tuple[str, str]]:
        calls = []
        for entry in aws_calls.entries(self._since):
            headers = entry["headers"]
            if not headers.get("X-Amz-Target", "").endswith(".UpdateService"):
                continue
            body = entry["body"]
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            key = headers["Authorization"].split("Credential=")[1].split("/")[0]
            calls.append((key, json.loads(body)["service"]))
        return calls

    def reset(self) -> None:
        self._since = aws_calls.mark()


def owners(calls: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Service → the replicas that wrote it, in order, each run of writes once."""
    runs: dict[str, list[str]] = {}
    for replica, service in calls:
        seen = runs.setdefault(service, [])
        if not seen or seen[-1] != replica:
            seen.append(replica)
    return runs


def assert_never_two_writers(calls: list[tuple[str, str]]) -> None:
    # A handover moves a pool from one replica to another once; writes from two
    # replicas taking turns (A, B, A) would mean two writers at the same time.
    for service, replicas in owners(calls).items():
        assert len(replicas) == len(set(replicas)), f"{service} written by {replicas}"


@pytest.fixture
def replicas(
    aws: LocalAws, tmp_path: Path
) -> Iterator[Callable[[str, Path], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(name: str, path: Path) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": name,
            "CELERY_SCALER_REPLICA_ID": name,
        }
        process = subprocess.Popen(
            [SCRIPT, "reconcile", "-o", "json", "--log-level", "warning", "--config", str(path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("count", [2, 3])
def test_replicas_share_pools_one_writer_each_and_fail_over(
    count: int,
    aws: LocalAws,
    redis_url: str,
    unique: str,
    tmp_path: Path,
    replicas: Callable[[str, Path], subprocess.Popen[str]],
) -> None:
    cluster = f"c-{unique}"
    pools = 2 * count
    queues = [f"q-{unique}-{i}" for i in range(pools)]
    for index, queue in enumerate(queues):
        aws.create_service(cluster, f"svc{index}", desired=0)
        publish(redis_url, queue, 3)
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(config(redis_url, cluster, queues, f"leases-{unique}"))
    recording = Recording()
    names = [f"replica{i}" for i in range(count)]
    processes = {name: replicas(name, path) for name in names}

    def settled() -> bool:
        calls = recording.updates()
        per_service = owners(calls)
        if any(len(r) != 1 for r in per_service.values()):
            all_calls.extend(calls)
            recording.reset()  # still handing pools over: look again from here
            return False
        if len(per_service) < pools or len(calls) < 3 * pools:
            return False
        share = [sum(1 for r in per_service.values() if r == [n]) for n in names]
        return share == [2] * count

    all_calls: list[tuple[str, str]] = []  # every UpdateService call, in order
    wait_for(settled, 60, f"{pools} pools to spread over {count} replicas")
    all_calls += recording.updates()
    assert_never_two_writers(all_calls)
    status = subprocess.run(
        [SCRIPT, "status", "-o", "json", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    leaders = [json.loads(line)["leader"] for line in status.stdout.splitlines()]
    assert sorted(leaders) == sorted(names * 2)

    victim = names[0]
    theirs = {s for s, r in owners(all_calls).items() if r == [victim]}
    recording.reset()
    processes[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()

    def taken_over() -> bool:
        return theirs <= {s for k, s in recording.updates() if k != victim}

    wait_for(taken_over, 3 * LEASE, f"the pools of {victim} to move")
    failover = time.monotonic() - killed
    # Expiry of the lease, plus a pass until another replica looks (no worker answers
    # here, so each pass waits out its inspect timeout) and, on a loaded machine, one
    # more; a takeover that waited for a second lease term would take longer still.
    assert failover <= LEASE + 2 * (INTERVAL + INSPECT_TIMEOUT) + 1.5, failover
    after = recording.updates()
    assert all(replica != victim for replica, _ in after)
    assert_never_two_writers(after)

    # SIGTERM: the pass in flight finishes, leases are handed back, exit 0, quickly.
    survivor = processes[names[1]]
    stopping = time.monotonic()
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=10) == 0, survivor.stderr.read() if survivor.stderr else ""
    assert time.monotonic() - stopping <= 2 * INSPECT_TIMEOUT + 1
