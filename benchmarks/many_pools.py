"""One controller, many pools: how long a pass over N pools takes, telemetry included.

N WorkerPools, each with its own Redis queue (random depth, real Celery messages) and
its own ECS service on the local AWS API, spread over 5 clusters; real Celery workers
consume every queue, so the inspect round has workers to hear from. One more pool
points at a cluster that does not exist: it fails every pass, and the others must not
wait for it.

Each controller runs in a process of its own, as `celery-scaler reconcile` would: a
pass is `Reconciler.reconcile` and then its reporters (the `--output json` lines, and
the telemetry: PutMetricData to the local AWS API, the Prometheus registry, one JSON
log line per pool; both streams go to /dev/null). The first pass starts from a new
controller, so it includes building it (clients, connections) and scales most pools
out, writing their tags; later ones are mostly held by cooldowns. Passes run back to
back. The local AWS API (moto's server) runs in a process of its own too, as AWS is not
in the controller's process: the CPU reported is the controller process's alone.

With `--replicas R`, R controllers share the pools through leader election (a DynamoDB
lease table on the local AWS API), started together; each reports its own passes and
the figures are the slowest replica's. On this machine they share its cores with the
workers, Redis and the local AWS API. Run from the repository root:

    python -m benchmarks.many_pools [--pools 500] [--passes 6] [--replicas 1] [--json]

Goals (ratios to the 15 s interval, for 500 pools): first pass <= 1/2 of it, later
passes <= 1/5. `--json` prints one object: pools, interval_s, first_pass_s,
median_pass_s (the median of the later passes), cpu_s_per_pass (their median CPU),
and the spread and per-replica details beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INTERVAL = 15.0
CLUSTERS = 5
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")

# The local AWS API in a process of its own: prints its endpoint, serves until stdin closes.
AWS_SERVER = """
import sys
from celery_scaler.local.aws_api import local_aws
with local_aws() as aws:
    print(aws.endpoint_url, flush=True)
    sys.stdin.read()
"""


def configuration(
    pools: int, tag: str, exchange: str, replicas: int, extra: dict[str, Any] | None = None
) -> str:
    import yaml

    documents: list[dict[str, object]] = [
        {
            "apiVersion": "celery-scaler/v1",
            "kind": "Controller",
            "spec": {
                "broker": REDIS_URL,
                "interval": f"{INTERVAL:g}s",
                "inspectTimeout": "1s",
                "controlExchange": exchange,
                "cloudwatch": {"enabled": True, "mode": "api", "namespace": f"Bench/{tag}"},
                # Port 0: any free one, as replicas share this machine.
                "prometheus": {"enabled": True, "port": 0},
                "leaderElection": {
                    "enabled": replicas > 1,
                    "table": f"{tag}-leases",
                    "leaseDuration": "60s",
                },
            },
        }
    ]
    for index in range(pools + 1):
        cluster = f"{tag}-c{index % CLUSTERS}" if index < pools else f"{tag}-missing"
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
                    # Cooldowns longer than the run: after the first pass, passes hold,
                    # so each later pass is the steady one (describe, read, decide, report).
                    "scaleOut": {
                        "threshold": 10,
                        "cooldown": "10m",
                        "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
                    },
                    "scaleIn": {
                        "threshold": 0,
                        "cooldown": "10m",
                        "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
                    },
                    **(extra or {}),
                },
            }
        )
    return yaml.safe_dump_all(documents)


# --- one controller replica, in its own process ---------------------------------------------


def replica(config_path: str, passes: int) -> None:
    """Run `passes` passes once stdin says go; print one JSON line of what they took.

    Then go on with passes, unmeasured, until stdin says stop: a replica done early
    must not hand its pools to the others while they still measure.
    """
    from rich.console import Console

    from celery_scaler.compose import build, build_telemetry
    from celery_scaler.core.config import parse_config
    from celery_scaler.engine.runner import release_leases
    from celery_scaler.tables import print_report
    from celery_scaler.telemetry.logs import LogFormat, configure_logging

    config = parse_config(Path(config_path).read_text(), config_path)
    calls = count_aws_calls()
    null = open(os.devnull, "w")  # noqa: SIM115  # for the whole process
    configure_logging("info", LogFormat.JSON, stream=null)
    console = Console(file=null)
    print("ready", flush=True)
    sys.stdin.readline()

    measured: list[dict[str, Any]] = []
    started, cpu = time.monotonic(), time.process_time()
    reconciler = build(config)
    telemetry = build_telemetry(config, config.pools, continuous=True)
    # Its registry is updated every pass; the HTTP server and the task-event receiver
    # are threads of their own that a pass does not wait for.
    telemetry.server = telemetry.events = None
    stop = threading.Event()
    with contextlib.redirect_stdout(null):
        while not stop.is_set():
            # What engine.runner.run_once does, with the reporters timed apart.
            report = reconciler.reconcile(time.time())
            reported = time.monotonic()
            print_report(console, report, output="json")
            telemetry(report)
            if len(measured) == passes:
                continue
            measured.append(
                {
                    "wall_s": time.monotonic() - started,
                    "report_s": time.monotonic() - reported,
                    "cpu_s": time.process_time() - cpu,
                    "pools": len(report.results),
                    "failing": sum(1 for result in report.results if result.error),
                    "aws_calls": dict(calls),
                }
            )
            calls.clear()
            started, cpu = time.monotonic(), time.process_time()
            if len(measured) == passes:
                print(json.dumps(measured), file=sys.__stdout__, flush=True)
                threading.Thread(target=lambda: (sys.stdin.readline(), stop.set())).start()
        release_leases(reconciler)


def count_aws_calls() -> Counter[str]:
    """Counts every AWS API call this process makes, by operation, from now on."""
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    make_api_call = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        calls[operation] += 1
        return make_api_call(self, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    return calls


# --- the parent: fixtures, replicas, figures ---------------------------------------------------


@contextlib.contextmanager
def aws_server() -> Iterator[tuple[str, int]]:
    """The local AWS API's endpoint and process id."""
    server = subprocess.Popen(
        [sys.executable, "-c", AWS_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        yield server.stdout.readline().strip(), server.pid
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (Linux /proc), for the local AWS API's share."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_services(endpoint: str, tag: str, pools: int) -> None:
    """Every pool's service, settled at 0 or 1 task (created at 0, then updated: moto
    reports a service created above 0 as rolling out forever)."""
    import boto3

    ecs: Any = boto3.client("ecs", endpoint_url=endpoint)
    for cluster in range(CLUSTERS):
        ecs.create_cluster(clusterName=f"{tag}-c{cluster}")

    def one(index: int) -> None:
        cluster, service = f"{tag}-c{index % CLUSTERS}", f"svc-{index}"
        ecs.register_task_definition(
            family=f"{service}-task",
            containerDefinitions=[{"name": "worker", "image": "celery-worker", "memory": 512}],
        )
        ecs.create_service(
            cluster=cluster, serviceName=service, taskDefinition=f"{service}-task", desiredCount=0
        )
        if index % 2:
            ecs.update_service(cluster=cluster, service=service, desiredCount=1)

    for index in range(pools):
        # One at a time: moto's ECS backend iterates its services unlocked.
        one(index)


def fill_queues(queues: list[str]) -> None:
    """0 to 40 copies of one real Celery message in each queue, in one round trip.

    The task sleeps an hour: each worker (concurrency 1, prefetch 1) takes one and holds
    it, so the depths stay put and the later passes are the steady ones. Tasks that end
    at once would have the workers drain thousands of messages during the run, on the
    controller's cores, with pools scaling in pass after pass as their queues empty.
    """
    import redis
    from celery import Celery

    client = redis.Redis.from_url(REDIS_URL)
    publisher = Celery(broker=REDIS_URL, set_as_current=False)
    template = f"{queues[0]}-template"
    publisher.send_task("tests.sleep", args=(3600,), queue=template)
    publisher.close()
    message = client.rpop(template)
    rng = random.Random(7)
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        count = rng.randint(0, 40)
        if count:
            pipe.lpush(queue, *[message] * count)
    pipe.execute()


def run_replicas(
    config_path: str, replicas: int, passes: int, env: dict[str, str], aws_pid: int
) -> tuple[list[Any], float]:
    """Each replica's measured passes, and the local AWS API's CPU while they ran."""
    children = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "benchmarks.many_pools"),
                *("--replica-of", config_path, "--passes", str(passes)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**env, "CELERY_SCALER_REPLICA_ID": f"bench-replica-{index}"},
        )
        for index in range(replicas)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("a replica did not start")
    aws_cpu = cpu_seconds(aws_pid)
    for child in children:  # all at once, as replicas of one deployment start
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        assert child.stdout is not None
        results.append(json.loads(child.stdout.readline()))
    aws_cpu = cpu_seconds(aws_pid) - aws_cpu
    for child in children:  # every replica measured: now they may stop
        child.communicate("stop\n", timeout=600)
    return results, aws_cpu


def figures(pools: int, results: list[list[dict[str, Any]]]) -> dict[str, Any]:
    later = [sorted(one["wall_s"] for one in passes[1:]) for passes in results]
    slowest = max(range(len(results)), key=lambda index: statistics.median(later[index]))
    first = max(passes[0]["wall_s"] for passes in results)
    return {
        "pools": pools,
        "interval_s": INTERVAL,
        "first_pass_s": round(first, 3),
        "median_pass_s": round(statistics.median(later[slowest]), 3),
        "cpu_s_per_pass": round(statistics.median(one["cpu_s"] for one in results[slowest][1:]), 3),
        "first_pass_cpu_s": round(max(passes[0]["cpu_s"] for passes in results), 3),
        "report_s_per_pass": round(
            statistics.median(one["report_s"] for one in results[slowest][1:]), 3
        ),
        "later_passes_s": [round(value, 3) for value in later[slowest]],
        "replicas": len(results),
        "pools_per_replica": [passes[-1]["pools"] for passes in results],
        "failing_pools": sum(passes[-1]["failing"] for passes in results),
        "aws_calls_first_pass": dict(
            sum((Counter(passes[0]["aws_calls"]) for passes in results), Counter())
        ),
        "aws_calls_last_pass": dict(
            sum((Counter(passes[-1]["aws_calls"]) for passes in results), Counter())
        ),
        "first_pass_of_interval": round(first / INTERVAL, 3),
        "median_pass_of_interval": round(statistics.median(later[slowest]) / INTERVAL, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--passes", type=int, default=6, help="passes per replica (>= 2)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--pool-spec",
        type=json.loads,
        default={},
        metavar="JSON",
        help="fields added to every WorkerPool's spec, e.g. '{\"safeScaleIn\": true}'",
    )
    parser.add_argument("--replica-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica_of:
        replica(args.replica_of, args.passes)
        return
    if args.passes < 2:
        parser.error("--passes must be at least 2: the first pass and a later one")

    from tests.workers import start_workers

    tag = f"bench{uuid.uuid4().hex[:6]}"
    queues = [f"{tag}-q{index}" for index in range(args.pools)]
    with aws_server() as (endpoint, aws_pid), tempfile.TemporaryDirectory() as directory:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        os.environ.update(env)
        create_services(endpoint, tag, args.pools)
        fill_queues(queues)
        config_path = Path(directory) / "celery-scaler.yaml"
        text = configuration(args.pools, tag, f"x-{tag}", args.replicas, args.pool_spec)
        config_path.write_text(text)
        with start_workers(REDIS_URL, args.workers, queues, control_exchange=f"x-{tag}"):
            results, aws_cpu = run_replicas(
                str(config_path), args.replicas, args.passes, env, aws_pid
            )

    found = figures(args.pools, results)
    # What the local AWS API spent answering them (AWS's own time, on this machine's cores).
    found["aws_api_cpu_s_per_pass"] = round(aws_cpu / (args.passes * args.replicas), 3)
    if args.json:
        print(json.dumps(found))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{args.pools} pools (+1 failing) over {args.replicas} replica(s), "
        f"{args.workers} real workers, local AWS API, {INTERVAL:g} s interval"
    )
    for column in ("first pass", "later passes: median", "min-max", "CPU per pass"):
        table.add_column(column, justify="right")
    later = found["later_passes_s"]
    table.add_row(
        f"{found['first_pass_s']:.2f} s ({found['first_pass_of_interval']:.0%})",
        f"{found['median_pass_s']:.2f} s ({found['median_pass_of_interval']:.0%})",
        f"{min(later):.2f}-{max(later):.2f} s",
        f"{found['cpu_s_per_pass']:.2f} s",
    )
    console = Console()
    console.print(table)
    console.print(f"pools held per replica at the last pass: {found['pools_per_replica']}")
    first_ok = found["first_pass_s"] <= INTERVAL / 2
    later_ok = found["median_pass_s"] <= INTERVAL / 5
    console.print(
        f"goals: first pass <= half the interval {'met' if first_ok else 'MISSED'}; "
        f"later passes <= a fifth {'met' if later_ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
