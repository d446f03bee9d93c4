"""One controller, many pools: how long a pass over 50 pools takes.

50 WorkerPools, each with its own Redis queue (random depth) and its own ECS service on
the local AWS API (moto's server over HTTP), spread over 5 clusters; 4 real Celery
workers consume every queue, so the inspect round has workers to hear from. One more
pool points at a cluster that does not exist: it fails every pass, and the others must
not wait for it. Passes run back to back through `Reconciler.reconcile`, as the
continuous loop runs them (the first pass scales most pools out and writes their tags;
later ones are mostly held by cooldowns). Run from the repository root:

    python -m benchmarks.many_pools [--pools 50] [--passes 8]

Goal: a pass over all pools well under the 15 s interval.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid

import redis
import yaml
from celery import Celery
from rich.console import Console
from rich.table import Table
from tests.workers import start_workers

from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.local.aws_api import local_aws

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")


def configuration(pools: int, tag: str, exchange: str) -> str:
    documents: list[dict[str, object]] = [
        {
            "apiVersion": "celery-scaler/v1",
            "kind": "Controller",
            "spec": {
                "broker": REDIS_URL,
                "interval": "15s",
                "inspectTimeout": "1s",
                "controlExchange": exchange,
            },
        }
    ]
    for index in range(pools + 1):
        cluster = f"{tag}-c{index % 5}" if index < pools else f"{tag}-missing"
        documents.append(
            {
                "apiVersion": "celery-scaler/v1",
                "kind": "WorkerPool",
                "metadata": {"name": f"pool-{index}"},
                "spec": {
                    "ecs": {"cluster": cluster, "service": f"svc-{index}"},
                    "queues": [f"{tag}-q{index}"],
                    "minCapacity": 0,
                    "maxCapacity": 10,
                    "metric": "queue_depth",
                    "safeScaleIn": False,
                    "scaleOut": {
                        "threshold": 10,
                        "cooldown": "60s",
                        "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
                    },
                    "scaleIn": {
                        "threshold": 0,
                        "cooldown": "60s",
                        "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
                    },
                },
            }
        )
    return yaml.safe_dump_all(documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--passes", type=int, default=8)
    args = parser.parse_args()
    console = Console()
    tag = f"bench{uuid.uuid4().hex[:6]}"
    exchange = f"x-{tag}"
    queues = [f"{tag}-q{index}" for index in range(args.pools)]
    rng = random.Random(7)

    with local_aws() as aws:
        os.environ.update(aws.env)
        for index in range(args.pools):
            aws.create_service(f"{tag}-c{index % 5}", f"svc-{index}", desired=index % 2)
        publisher = Celery(broker=REDIS_URL)
        for queue in queues:
            for _ in range(rng.randint(0, 40)):
                publisher.send_task("tests.noop", queue=queue)
        publisher.close()
        config = parse_config(configuration(args.pools, tag, exchange), "many_pools")
        with start_workers(REDIS_URL, 4, queues, control_exchange=exchange) as _fleet:
            reconciler = build(config)
            durations = []
            failing = 0
            for _ in range(args.passes):
                started = time.monotonic()
                report = reconciler.reconcile(time.time())
                durations.append(time.monotonic() - started)
                failing = sum(1 for result in report.results if result.error)
        client = redis.Redis.from_url(REDIS_URL)
        for queue in queues:
            client.delete(queue)

    table = Table(title=f"{args.pools} pools (+1 failing), 4 real workers, local AWS API")
    for column in ("first pass (s)", "median pass (s)", "max pass (s)", "failing pools"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{durations[0]:.2f}",
        f"{statistics.median(durations):.2f}",
        f"{max(durations):.2f}",
        str(failing),
    )
    console.print(table)
    goal = statistics.median(durations) < 15 / 3
    console.print(f"goal (median pass well under the 15 s interval): {'met' if goal else 'MISSED'}")


if __name__ == "__main__":
    main()
