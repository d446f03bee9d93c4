"""Telemetry with real parts: real workers, real Redis, PutMetricData to the local AWS API.

Metrics are read back with GetMetricData, GetMetricStatistics and ListMetrics; the
requests the controller makes are counted with botocore's event hooks. The CLI tests
scrape /metrics, /healthz and /readyz of a running `celery-scaler reconcile`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config as BotocoreConfig
from prometheus_client import generate_latest

from celery_scaler.compose import build, build_telemetry
from celery_scaler.core.config import Config, parse_config
from celery_scaler.engine.reconcile import PassReport
from celery_scaler.engine.runner import run_once
from celery_scaler.local.aws_api import LocalAws
from celery_scaler.telemetry.cloudwatch import CloudWatchMetrics
from celery_scaler.telemetry.prometheus import ControllerMetrics
from celery_scaler.telemetry.publisher import Telemetry
from tests.helpers import SCRIPT, assert_emf, desired_count, publish
from tests.workers import WorkersError, start_workers, wait_for

pytestmark = pytest.mark.integration


def config_text(
    broker: str,
    cluster: str,
    queue: str,
    *,
    exchange: str = "celery",
    controller: Mapping[str, Any] | None = None,
    pools: Mapping[str, str] | None = None,
) -> str:
    """A Controller document and one WorkerPool per `pools` item (name → ECS service)."""
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "celery-scaler/v1",
            "kind": "Controller",
            "spec": {
                "broker": broker,
                "controlExchange": exchange,
                "interval": "1s",
                "inspectTimeout": "1s",
                **(controller or {}),
            },
        }
    ]
    for name, service in (pools or {"p": "workers"}).items():
        documents.append(
            {
                "apiVersion": "celery-scaler/v1",
                "kind": "WorkerPool",
                "metadata": {"name": name},
                "spec": {
                    "ecs": {"cluster": cluster, "service": service},
                    "queues": [queue],
                    "minCapacity": 1,
                    "maxCapacity": 10,
                    "metric": "queue_depth",
                    "safeScaleIn": False,
                    "scaleOut": {
                        "threshold": 5,
                        "cooldown": "0s",
                        "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
                    },
                },
            }
        )
    return yaml.safe_dump_all(documents)


def load(text: str) -> Config:
    return parse_config(text, "test.yaml")


def metric_values(
    cloudwatch: Any, namespace: str, name: str, stat: str, dims: Mapping[str, str]
) -> list[float]:
    now = datetime.now(UTC)
    response = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 60,
                    "Stat": stat,
                },
            }
        ],
        StartTime=now - timedelta(minutes=30),
        EndTime=now + timedelta(minutes=5),
    )
    return list(response["MetricDataResults"][0]["Values"])


def listed(cloudwatch: Any, namespace: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    found = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page["Metrics"]:
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
            found.add((metric["MetricName"], dims))
    return found


def test_four_real_workers_one_request_per_pass_read_back_from_cloudwatch(
    aws: LocalAws,
    redis_url: str,
    unique: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, namespace, exchange = f"c-{unique}", f"T{unique}", f"x-{unique}"
    aws.create_service(cluster, "workers", desired=4)  # moto: runningCount 4 too
    config = load(
        config_text(
            redis_url,
            cluster,
            queue,
            exchange=exchange,
            controller={
                "cloudwatch": {"namespace": namespace, "highResolution": True},
                "prometheus": {"enabled": False},
                # The round ends when all 4 answered; the bound is for a loaded machine.
                "inspectTimeout": "5s",
            },
        )
    )
    session = boto3.Session()
    requests: list[list[dict[str, Any]]] = []  # the metric data of each call
    sent: list[object] = []  # each HTTP request (a retry would be a second one)
    session.events.register(
        "before-parameter-build.cloudwatch.PutMetricData",
        lambda params, **_: requests.append(params["MetricData"]),
    )
    session.events.register("before-send.cloudwatch.PutMetricData", lambda **_: sent.append(1))
    reconciler = build(config, session=session)
    telemetry = build_telemetry(config, config.pools, continuous=True, session=session)
    assert telemetry.events is not None
    # Workers as an application runs them: instrument(app) in the app's module.
    monkeypatch.setenv("CELERY_SCALER_INSTRUMENT", "1")

    reports: list[PassReport] = []

    def one_pass() -> list[dict[str, Any]]:
        before = len(requests)
        reports.append(run_once(reconciler, [telemetry]))
        assert len(requests) == before + 1, "a pass is one PutMetricData request"
        assert len(sent) == len(requests)
        return requests[-1]

    with telemetry, start_workers(redis_url, 4, [queue], control_exchange=exchange) as fleet:
        events = telemetry.events
        wait_for(lambda: events.listening, 10, "the task-event receiver to subscribe")
        # A pass that sees all 4 workers (one may miss a round on a loaded machine).
        wait_for(
            lambda: bool(one_pass()) and reports[-1].results[0].observed["worker_status"] == 4,
            30,
            "a pass that sees the 4 workers",
        )
        # No previous pass yet: no counter can be an increase.
        assert not {d["MetricName"] for d in requests[0]} & {"processed_tasks", "failed_tasks"}

        for _ in range(5):
            fleet.app.send_task("tests.noop", queue=queue)
        fleet.app.send_task("tests.fail", queue=queue)
        fleet.app.send_task("tests.retry_once", queue=queue)
        # 5 + 1 + 2 messages (the retry is a new one): 8 received, 6 succeeded.
        expected = {
            "processed_tasks": 8,
            "succeeded_tasks": 6,
            "failed_tasks": 1,
            "retried_tasks": 1,
        }
        published: dict[str, float] = dict.fromkeys(expected, 0.0)

        def counted() -> bool:
            for datum in one_pass():
                if datum["MetricName"] in expected and datum["Dimensions"] == [
                    {"Name": "Pool", "Value": "p"}
                ]:
                    published[datum["MetricName"]] += datum["Value"]
            return published == expected or any(published[k] > v for k, v in expected.items())

        wait_for(counted, 60, f"the increases to add up to {expected}", lambda: str(published))
        assert published == expected
        one_pass()  # nothing new: the counters add nothing more
        assert all(d["StorageResolution"] == 1 for batch in requests for d in batch)

        # perWorkerMetrics: one metric per worker name and metric, only when asked.
        per_worker = load(
            config_text(
                redis_url,
                cluster,
                queue,
                exchange=exchange,
                controller={"cloudwatch": {"namespace": f"{namespace}w", "perWorkerMetrics": True}},
            )
        )
        reporter = build_telemetry(per_worker, per_worker.pools, continuous=False, session=session)
        run_once(build(per_worker, session=session), [reporter])

    cloudwatch = aws.client("cloudwatch")
    pool = {"Pool": "p"}
    for name, total in expected.items():
        assert sum(metric_values(cloudwatch, namespace, name, "Sum", pool)) == total, name
    # Each answering worker counted once: 4 when all answered, never 8.
    assert max(metric_values(cloudwatch, namespace, "worker_status", "Maximum", pool)) == 4.0
    for report, batch in zip(reports, requests, strict=False):
        answered = {w.name for w in report.observations["p"].workers or ()}
        assert [d["Value"] for d in batch if d["MetricName"] == "worker_status"] == [
            len(answered),  # the pool's
            len(answered),  # the fleet's
        ]
    # The fleet totals, as sent (moto reads a query without dimensions as "any dimensions").
    fleet_data = [d for batch in requests for d in batch if not d["Dimensions"]]
    for name, total in expected.items():
        assert sum(d["Value"] for d in fleet_data if d["MetricName"] == name) == total, name
    assert {d["Value"] for d in fleet_data if d["MetricName"] == "worker_status"} == {4}
    # memory_usage: the largest max RSS over the passes, converted from Celery's kilobytes.
    largest_kb = max(w.max_rss_kb or 0 for r in reports for w in r.observations["p"].workers or ())
    stats = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="memory_usage",
        Dimensions=[{"Name": "Pool", "Value": "p"}],
        StartTime=datetime.now(UTC) - timedelta(minutes=30),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=3600,
        Statistics=["Maximum"],
    )
    assert {point["Unit"] for point in stats["Datapoints"]} == {"Megabytes"}
    largest_mb = max(point["Maximum"] for point in stats["Datapoints"])
    assert largest_mb == pytest.approx(largest_kb / 1024)
    assert 10 < largest_mb < 1024  # a Python worker's RSS, in megabytes

    metrics = listed(cloudwatch, namespace)
    assert {("controller_heartbeat", ()), ("desired_capacity", (("Pool", "p"),))} <= metrics
    assert ("queue_depth", ()) in metrics
    assert not [m for m in metrics if any(d == "WorkerName" for d, _ in m[1])]

    workers = {dict(m[1]).get("WorkerName") for m in listed(cloudwatch, f"{namespace}w")}
    assert workers == {None, *fleet.names}


def test_a_failed_publish_is_logged_and_counted_and_scaling_goes_on(
    aws: LocalAws,
    redis_url: str,
    unique: str,
    queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    publish(redis_url, queue, 8)  # 8 ≥ 5: scale out by one
    config = load(config_text(redis_url, cluster, queue, controller={"inspectTimeout": "0.3s"}))
    # A CloudWatch that is not there; one attempt, so the test does not wait on retries.
    dead = boto3.client(
        "cloudwatch",
        endpoint_url="http://127.0.0.1:1",
        config=BotocoreConfig(retries={"max_attempts": 1}, connect_timeout=1),
    )
    prometheus = ControllerMetrics(["p"], interval=1.0)
    telemetry = Telemetry(pools=["p"], sink=CloudWatchMetrics(dead, "N"), prometheus=prometheus)
    caplog.set_level(logging.INFO, logger="celery_scaler")

    report = run_once(build(config), [telemetry])
    assert (report.results[0].action, report.results[0].applied) == ("scale_out", True)
    assert desired_count(aws, cluster) == 3
    (event,) = [r for r in caplog.records if getattr(r, "event", None) == "pass"]
    assert event.levelno == logging.WARNING
    fields: dict[str, Any] = event.fields  # type: ignore[attr-defined]
    assert "CloudWatch PutMetricData failed" in fields["metrics_error"]
    assert fields["metrics_publish_failures_total"] == 1
    assert b"celery_scaler_metrics_publish_errors_total 1.0" in generate_latest(prometheus.registry)


# --- the console script ----------------------------------------------------------------------


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def test_continuous_reconcile_serves_metrics_health_and_readiness(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster, exchange = f"c-{unique}", f"x-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(
        config_text(
            redis_url,
            cluster,
            queue,
            exchange=exchange,
            controller={
                "prometheus": {"port": 0},
                "cloudwatch": {"namespace": f"T{unique}"},
            },
            pools={"p": "workers", "q": "later"},  # q's service does not exist yet
        )
    )
    with start_workers(redis_url, 2, [queue], control_exchange=exchange):
        process = subprocess.Popen(
            [SCRIPT, "reconcile", "--dry-run", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        logs: list[dict[str, Any]] = []
        reader = threading.Thread(
            target=lambda: logs.extend(json.loads(line) for line in process.stderr or ()),
            daemon=True,
        )
        reader.start()
        try:
            port = wait_for_event(logs, "http_serving", process)["port"]
            base = f"http://127.0.0.1:{port}"
            assert get(f"{base}/healthz") == (200, {"alive": True})

            def scraped() -> str:
                return str(get(f"{base}/metrics")[1])

            wait_for(
                lambda: 'celery_scaler_worker_status{pool="p"} 2.0' in scraped(),
                30,
                "/metrics to show both workers",
                scraped,
            )
            text = scraped()
            assert f'celery_scaler_queue_depth{{pool="p",queue="{queue}"}} 0.0' in text
            assert 'celery_scaler_reconcile_total{pool="q",result="error"}' in text
            assert 'celery_scaler_last_success_timestamp_seconds{pool="p"}' in text
            assert "celery_scaler_reconcile_duration_seconds_bucket" in text
            # The pool's own series, from the configuration the controller was given.
            assert 'celery_scaler_ecs_running_tasks{pool="p"} 2.0' in text
            assert 'celery_scaler_max_capacity{pool="p"}' in text
            assert 'celery_scaler_condition{condition="WorkersUnreachable",pool="p"} 0.0' in text
            assert "celery_scaler_build_info{version=" in text

            status, body = get(f"{base}/readyz")
            assert status == 503
            assert set(body["pools"]) == {"q"}
            assert "no successful pass yet" in body["pools"]["q"]
            assert "'later'" in body["pools"]["q"]  # the reason: the missing service

            aws.create_service(cluster, "later", desired=1)
            wait_for(
                lambda: get(f"{base}/readyz") == (200, {"ready": True}),
                30,
                "/readyz once q's service exists",
                lambda: str(get(f"{base}/readyz")),
            )

            pools = {e["pool"] for e in logs if e.get("event") == "pool_reconciled"}
            assert pools == {"p", "q"}
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_for_event(
    logs: list[dict[str, Any]], event: str, process: subprocess.Popen[str]
) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        if process.poll() is not None:
            raise WorkersError(f"celery-scaler exited with {process.returncode}: {logs}")
        found[:] = [e for e in logs if e.get("event") == event]
        return bool(found)

    wait_for(seen, 30, f"the {event} log event")
    return found[0]


def run_once_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, "reconcile", "--once", "--output", "json", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def test_emf_lines_on_stdout_beside_the_json_output_and_text_logs_on_stderr(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster, namespace = f"c-{unique}", f"T{unique}"
    aws.create_service(cluster, "workers", desired=1)
    publish(redis_url, queue, 3)
    path = tmp_path / "celery-scaler.yaml"
    controller = {"cloudwatch": {"namespace": namespace, "mode": "emf"}, "inspectTimeout": "0.3s"}
    path.write_text(config_text(redis_url, cluster, queue, controller=controller))

    result = run_once_cli(path, "--dry-run", "--log-format", "text", "--log-level", "info")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    outputs = [line for line in lines if "_aws" not in line]
    documents = [line for line in lines if "_aws" in line]
    assert [(o["pool"], o["observed"]["queue_depth"]) for o in outputs] == [("p", 3)]
    for document in documents:
        assert_emf(document)
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace
    pool = next(d for d in documents if d.get("Pool") == "p")
    fleet = next(d for d in documents if "Pool" not in d)
    assert (pool["queue_depth"], pool["current_capacity"]) == (3, 1)
    assert (fleet["queue_depth"], fleet["controller_heartbeat"]) == (3, 1)
    assert "processed_tasks" not in pool  # --once: no previous pass to count from
    assert not listed(aws.client("cloudwatch"), namespace)  # no PutMetricData in EMF mode
    assert " INFO    pool_reconciled: p: " in result.stderr

    # An unreachable broker with a password: the error is logged, the password is not.
    path.write_text(
        config_text("redis://:s3cret@127.0.0.1:1/0", cluster, queue, controller=controller)
    )
    result = run_once_cli(path, "--log-level", "info")
    assert result.returncode == 1
    assert "s3cret" not in result.stdout + result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # JSON: not a terminal
    (failed,) = [e for e in events if e["event"] == "pool_reconciled"]
    assert failed["level"] == "warning"
    assert "redis://:***@127.0.0.1:1/0" in failed["error"]
