"""The Prometheus registry, readiness, and the HTTP endpoints on a real socket."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import celery_scaler
from celery_scaler.core.conditions import Condition
from celery_scaler.core.errors import AdapterError
from celery_scaler.engine.reconcile import PassReport
from celery_scaler.telemetry.prometheus import (
    POOL_SERIES,
    ControllerMetrics,
    TelemetryServer,
    readiness,
)
from celery_scaler.telemetry.samples import METRICS, CounterState, pass_samples
from tests.helpers import design_pool, observation, report, worker


def scrape(metrics: ControllerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def observe(
    metrics: ControllerMetrics, pass_report: PassReport, state: CounterState
) -> CounterState:
    samples, state = pass_samples(pass_report, state)
    metrics.observe(pass_report, samples)
    return state


# --- readiness ------------------------------------------------------------------------------


def test_ready_when_every_pool_succeeded_within_three_intervals() -> None:
    assert readiness(["a", "b"], {"a": 100.0, "b": 90.0}, {}, now=130.0, interval=15.0) == {}


def test_not_ready_names_the_pool_and_why() -> None:
    problems = readiness(
        ["a", "b", "c"],
        {"a": 100.0, "b": 50.0},
        {"b": "ECS DescribeServices failed: Throttling", "c": "broker down"},
        now=100.0,
        interval=15.0,
    )
    assert set(problems) == {"b", "c"}
    assert problems["b"].startswith("last successful pass 50s ago, more than 3 intervals (45s)")
    assert "Throttling" in problems["b"]
    assert problems["c"] == "no successful pass yet; last error: broker down"


def test_one_failed_pass_does_not_make_the_controller_unready() -> None:
    assert readiness(["a"], {"a": 100.0}, {"a": "timeout"}, now=115.0, interval=15.0) == {}


# --- the registry -----------------------------------------------------------------------------


def test_latest_pass_rendered_with_pool_and_queue_labels() -> None:
    metrics = ControllerMetrics(["p"], interval=15.0)
    fleet = [worker("w0", active=1, processed=10), worker("w1", processed=5)]
    state = observe(
        metrics, report(100.0, {"p": observation(fleet, {"q": 7, "r": 1})}), CounterState()
    )
    fleet = [worker("w0", active=1, processed=13), worker("w1", processed=5)]
    observe(metrics, report(115.0, {"p": observation(fleet, {"q": 2, "r": 1})}), state)

    seen = scrape(metrics)
    assert seen[("celery_scaler_worker_status", (("pool", "p"),))] == 2
    assert seen[("celery_scaler_busy_ratio", (("pool", "p"),))] == 0.5
    assert seen[("celery_scaler_queue_depth", (("pool", "p"), ("queue", "q")))] == 2
    assert seen[("celery_scaler_queue_depth", (("pool", "p"), ("queue", "r")))] == 1
    assert seen[("celery_scaler_processed_tasks_total", (("pool", "p"),))] == 3
    assert seen[("celery_scaler_last_success_timestamp_seconds", (("pool", "p"),))] == 115.0
    assert seen[("celery_scaler_reconcile_total", (("pool", "p"), ("result", "success")))] == 2
    assert seen[("celery_scaler_reconcile_total", (("pool", "p"), ("result", "error")))] == 0
    assert seen[("celery_scaler_reconcile_duration_seconds_count", ())] == 2
    assert seen[("celery_scaler_scale_events_total", (("direction", "out"), ("pool", "p")))] == 0
    # Only per-pool series: the fleet totals are a sum() away in PromQL.
    assert not [key for key in seen if key[0] == "celery_scaler_worker_status" and not key[1]]
    assert not any(name.endswith("_created") for name, _ in seen)


def test_a_pool_gone_from_the_pass_leaves_no_stale_series() -> None:
    metrics = ControllerMetrics(["a", "b"], interval=15.0)
    both = {"a": observation([worker("w0")]), "b": observation([worker("w1", queues=("b",))])}
    state = observe(metrics, report(0.0, both), CounterState())
    observe(metrics, report(15.0, {"a": observation([worker("w0")])}), state)
    pools = {
        dict(labels).get("pool") for name, labels in scrape(metrics) if "worker_status" in name
    }
    assert pools == {"a"}


def test_errors_and_applied_scaling_are_counted() -> None:
    metrics = ControllerMetrics(["p"], interval=15.0)
    failed = report(0.0, {"p": observation(None)})  # inspect failed: the result has an error
    observe(metrics, failed, CounterState())
    seen = scrape(metrics)
    assert seen[("celery_scaler_reconcile_errors_total", ())] == 1
    assert seen[("celery_scaler_reconcile_total", (("pool", "p"), ("result", "error")))] == 1
    assert metrics.not_ready() == {"p": "no successful pass yet; last error: inspect failed"}

    scaled = report(15.0, {"p": observation([])}, desired=3)
    result = replace(scaled.results[0], action="scale_out", applied=True)
    observe(metrics, replace(scaled, results=(result,)), CounterState())
    assert (
        scrape(metrics)[("celery_scaler_scale_events_total", (("direction", "out"), ("pool", "p")))]
        == 1
    )


def test_each_pool_exports_its_ecs_counts_bounds_thresholds_fallback_and_conditions() -> None:
    spec = design_pool(metric="queue_depth", fallback={"capacity": 4, "failureThreshold": 3}).spec
    metrics = ControllerMetrics(["p"], interval=15.0, specs={"p": spec})
    passed = report(0.0, {"p": observation([worker("w0")], {"q": 30}, desired=3)})
    held = ("WorkersUnreachable",)
    result = replace(passed.results[0], value=12.5, conditions=held, failures=3)
    observe(metrics, replace(passed, results=(result,)), CounterState())
    seen = scrape(metrics)
    pool = (("pool", "p"),)
    metric = (("metric", "queue_depth"), ("pool", "p"))
    assert seen[("celery_scaler_ecs_running_tasks", pool)] == 3
    assert seen[("celery_scaler_ecs_pending_tasks", pool)] == 0
    assert (
        seen[("celery_scaler_min_capacity", pool)],
        seen[("celery_scaler_max_capacity", pool)],
    ) == (1, 20)
    assert seen[("celery_scaler_scaling_value", metric)] == 12.5
    assert seen[("celery_scaler_scale_out_threshold", metric)] == 10
    assert seen[("celery_scaler_scale_in_threshold", metric)] == 2
    assert seen[("celery_scaler_fallback_active", pool)] == 1
    conditions = {
        dict(labels)["condition"]: value
        for (name, labels), value in seen.items()
        if name == "celery_scaler_condition"
    }
    assert conditions == {c.value: float(c.value in held) for c in Condition}

    # One failure short of the threshold: not on the fallback yet.
    result = replace(result, failures=2)
    observe(metrics, replace(passed, results=(result,)), CounterState())
    assert scrape(metrics)[("celery_scaler_fallback_active", pool)] == 0


def test_the_bounds_exported_are_those_in_force() -> None:
    # From 2026-03-04T08:00:00Z on, a schedule raises minCapacity to 5.
    busy = {"name": "busy", "schedule": "at(2026-03-04T08:00:00)", "minCapacity": 5}
    spec = design_pool(metric="queue_depth", schedules=[busy]).spec
    metrics = ControllerMetrics(["p"], interval=15.0, specs={"p": spec})
    pool = (("pool", "p"),)
    for now, expected in ((1_772_604_000.0, 1), (1_772_618_400.0, 5)):  # 06:00, 10:00 UTC
        observe(metrics, report(now, {"p": observation([], {"q": 0})}), CounterState())
        assert scrape(metrics)[("celery_scaler_min_capacity", pool)] == expected


def test_build_info_names_the_version() -> None:
    seen = scrape(ControllerMetrics(["p"], interval=15.0, version="1.2.3"))
    assert seen[("celery_scaler_build_info", (("version", "1.2.3"),))] == 1
    installed = scrape(ControllerMetrics(["p"], interval=15.0))
    assert installed[("celery_scaler_build_info", (("version", celery_scaler.__version__),))] == 1


def test_every_family_is_served_before_its_first_sample() -> None:
    # A rule or a dashboard that names a series of the table finds its family at once.
    text = generate_latest(ControllerMetrics(["p"], interval=15.0).registry).decode()
    families = {family.name for family in text_string_to_metric_families(text)}
    table = {f"celery_scaler_{name}" for name, info in METRICS.items() if info.per_pool}
    assert table | {f"celery_scaler_{name}" for name in POOL_SERIES} <= families
    assert "celery_scaler_controller_heartbeat" not in families  # the fleet's, CloudWatch only


def test_the_controller_never_uses_the_global_registry() -> None:
    metrics = ControllerMetrics(["p"], interval=15.0)
    observe(metrics, report(0.0, {"p": observation([worker("w0")])}), CounterState())
    assert b"celery_scaler_" in generate_latest(metrics.registry)
    assert b"celery_scaler_" not in generate_latest(REGISTRY)


# --- HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[ControllerMetrics, str]]:
    metrics = ControllerMetrics(["p"], interval=15.0)
    server = TelemetryServer(metrics, port=0, host="127.0.0.1")
    server.start()
    try:
        yield metrics, f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoints_over_http(served: tuple[ControllerMetrics, str]) -> None:
    metrics, base = served
    assert get(f"{base}/healthz") == (200, '{"alive": true}\n')
    status, body = get(f"{base}/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "pools": {"p": "no successful pass yet"}}

    observe(metrics, report(time.time(), {"p": observation([worker("w0")])}), CounterState())
    assert get(f"{base}/readyz") == (200, '{"ready": true}\n')
    status, text = get(f"{base}/metrics")
    assert status == 200
    assert 'celery_scaler_worker_status{pool="p"} 1.0' in text
    assert get(f"{base}/nope")[0] == 404


def test_a_taken_port_is_one_clear_error(served: tuple[ControllerMetrics, str]) -> None:
    metrics, base = served
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(AdapterError, match=f"cannot serve /metrics on port {port}"):
        TelemetryServer(metrics, port=port, host="127.0.0.1")


def test_readiness_follows_the_pools_of_the_latest_pass() -> None:
    # With leader election, a pool another replica holds is not this replica's to be late on.
    metrics = ControllerMetrics(["a", "b"], interval=15.0, clock=lambda: 20.0)
    assert set(metrics.not_ready()) == {"a", "b"}  # before any pass: every pool
    observe(metrics, report(10.0, {"a": observation([worker("w0")])}), CounterState())
    assert metrics.not_ready() == {}
