"""Prometheus `/metrics`, and the `/healthz` and `/readyz` endpoints, on one port.

`ControllerMetrics` keeps the latest pass and the controller's own counters on a
registry of its own (never the global one). A custom collector renders the latest
samples at every scrape, so a pool or worker that is gone leaves no stale series:
the metric names of docs/metrics.md prefixed `celery_scaler_`, labelled `pool` (and
`queue` for `queue_depth`), the task counters as running totals (`..._total`), plus
`reconcile_total{pool,result}`, `reconcile_errors_total`,
`reconcile_duration_seconds`, `last_success_timestamp_seconds{pool}`,
`scale_events_total{pool,direction}`, `metrics_publish_errors_total`, the pool's own
series of `POOL_SERIES` (its ECS counts, bounds, thresholds, fallback and conditions) and
`build_info{version}`. Every family is served at every scrape, with or without samples, so
a rule or a dashboard can tell a name that does not exist from a series that is absent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, ClassVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from celery_scaler.core.conditions import Condition
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.policy import fallback_active
from celery_scaler.telemetry.samples import METRICS, Sample

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from celery_scaler.core.config import ScalingPolicySpec, WorkerPoolSpec
    from celery_scaler.engine.reconcile import PassReport

PREFIX = "celery_scaler_"
READY_WITHIN_INTERVALS = 3
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class PoolSeries:
    """A gauge of each pool of the latest pass, beside the metric table's (docs/metrics.md)."""

    help: str
    labels: tuple[str, ...] = ("pool",)


POOL_SERIES: Mapping[str, PoolSeries] = {
    "ecs_running_tasks": PoolSeries("Tasks ECS runs for the pool's service (runningCount)."),
    "ecs_pending_tasks": PoolSeries("Tasks ECS is starting for the pool's service."),
    "min_capacity": PoolSeries("The pool's minCapacity in force (its own, or a schedule's)."),
    "max_capacity": PoolSeries("The pool's maxCapacity in force (its own, or a schedule's)."),
    "scaling_value": PoolSeries(
        "The value of the pool's metric its last decision read (over its window).",
        ("pool", "metric"),
    ),
    "scale_out_threshold": PoolSeries(
        "Where the pool scales out on the metric: a policy's scaleOut.threshold or "
        "targetTracking.targetValue (the first policy's, when several read the metric).",
        ("pool", "metric"),
    ),
    "scale_in_threshold": PoolSeries(
        "Where the pool scales in on the metric: a policy's scaleIn.threshold or 0.9 x "
        "targetTracking.targetValue (the first policy's, when several read the metric).",
        ("pool", "metric"),
    ),
    "fallback_active": PoolSeries(
        "1 while the pool is held at its fallback.capacity after fallback.failureThreshold "
        "failed passes in a row, else 0."
    ),
    "condition": PoolSeries(
        "1 while the condition holds for the pool (docs/semantics.md), else 0.",
        ("pool", "condition"),
    ),
}

PoolRow = tuple[str, tuple[str, ...], float]
"""A sample of `POOL_SERIES`: the series' name, its label values, its value."""


def policy_thresholds(policy: ScalingPolicySpec) -> tuple[float | None, float | None]:
    """Where a policy scales out and where it scales in, when it does."""
    tracking = policy.target_tracking
    if tracking is not None:
        return tracking.target_value, None if tracking.disable_scale_in else tracking.scale_in_below
    out, in_ = policy.scale_out, policy.scale_in
    return (out.threshold if out else None), (in_.threshold if in_ else None)


def pool_rows(report: PassReport, specs: Mapping[str, WorkerPoolSpec]) -> list[PoolRow]:
    """The `POOL_SERIES` samples of a pass; a pool without a spec gets no bounds or thresholds."""
    rows: list[PoolRow] = []
    for result in report.results:
        pool, metric = result.pool, result.metric
        obs = report.observations.get(pool)
        service = obs.service if obs is not None else None
        if service is not None:
            rows.append(("ecs_running_tasks", (pool,), service.running))
            rows.append(("ecs_pending_tasks", (pool,), service.pending))
        if result.value is not None:
            rows.append(("scaling_value", (pool, metric), result.value))
        spec = specs.get(pool)
        if spec is not None:
            # The bounds in force: a schedule's, where one set them (core/schedules.py).
            bounds = spec.bounds_at(report.time)
            rows.append(("min_capacity", (pool,), bounds.min_capacity))
            rows.append(("max_capacity", (pool,), bounds.max_capacity))
            # Labelled with each policy's own metric, which the decision may not have read.
            thresholds: dict[tuple[str, str], float] = {}
            for policy in spec.scaling_policies:
                out, in_ = policy_thresholds(policy)
                for name, threshold in (("scale_out_threshold", out), ("scale_in_threshold", in_)):
                    if threshold is not None:
                        thresholds.setdefault((name, policy.metric.value), threshold)
            rows += [(name, (pool, on), value) for (name, on), value in thresholds.items()]
            active = fallback_active(spec, result.failures)
            rows.append(("fallback_active", (pool,), float(active)))
        # Every condition, held or not: a rule reads `== 1` and never needs absent().
        held = set(result.conditions)
        rows += [("condition", (pool, c.value), float(c.value in held)) for c in Condition]
    return rows


def readiness(
    pools: Iterable[str],
    last_success: Mapping[str, float],
    last_error: Mapping[str, str],
    now: float,
    interval: float,
) -> dict[str, str]:
    """Why each pool that is not ready is not (empty: ready).

    Ready: a pass of the pool succeeded within the last 3 intervals. A single failed
    pass does not make the controller unready; three intervals without success do.
    """
    window = READY_WITHIN_INTERVALS * interval
    problems = {}
    for pool in pools:
        succeeded = last_success.get(pool)
        if succeeded is not None and now - succeeded <= window:
            continue
        why = (
            "no successful pass yet"
            if succeeded is None
            else f"last successful pass {now - succeeded:.0f}s ago, more than "
            f"{READY_WITHIN_INTERVALS} intervals ({window:g}s)"
        )
        if pool in last_error:
            why += f"; last error: {last_error[pool]}"
        problems[pool] = why
    return problems


class ControllerMetrics:
    """The controller's Prometheus registry and the state `/readyz` answers from."""

    def __init__(
        self,
        pools: Sequence[str],
        interval: float,
        *,
        specs: Mapping[str, WorkerPoolSpec] | None = None,
        clock: Callable[[], float] = time.time,
        version: str | None = None,
    ) -> None:
        """`specs`: the pools' specs by name, for their bounds, thresholds and fallback;
        `version`: for `build_info` (default: the installed distribution's)."""
        # `_created` series double every counter in the text format and tell nothing a
        # scraper needs (a process-wide setting; this process serves only these metrics).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the client
        self.registry = CollectorRegistry()
        if version is None:
            import celery_scaler

            version = celery_scaler.__version__
        build = Gauge(
            f"{PREFIX}build_info",
            "The controller's version, as a label; always 1.",
            ["version"],
            registry=self.registry,
        )
        build.labels(version).set(1)
        self._specs = dict(specs or {})
        self._pool_rows: tuple[PoolRow, ...] = ()
        self._pools = tuple(pools)
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: tuple[Sample, ...] = ()
        self._queue_depths: dict[tuple[str, str], int] = {}
        self._totals: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._last_success: dict[str, float] = {}
        self._last_error: dict[str, str] = {}
        self._reconciles = Counter(
            f"{PREFIX}reconcile",
            "Pool reconciliations, by result (success or error).",
            ["pool", "result"],
            registry=self.registry,
        )
        self._errors = Counter(
            f"{PREFIX}reconcile_errors",
            "Pool reconciliations that could not observe or act.",
            registry=self.registry,
        )
        self._duration = Histogram(
            f"{PREFIX}reconcile_duration_seconds",
            "Duration of a pass over every pool.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._scale_events = Counter(
            f"{PREFIX}scale_events",
            "Desired-count changes applied to ECS, by direction (out or in).",
            ["pool", "direction"],
            registry=self.registry,
        )
        self._publish_errors = Counter(
            f"{PREFIX}metrics_publish_errors",
            "Passes whose CloudWatch metrics could not all be published.",
            registry=self.registry,
        )
        # Every series exists from the start, so rate() and increase() see the first event.
        for pool in self._pools:
            for result in ("success", "error"):
                self._reconciles.labels(pool, result)
            for direction in ("out", "in"):
                self._scale_events.labels(pool, direction)
        self.registry.register(_LatestPass(self.snapshot))

    def observe(self, report: PassReport, samples: Sequence[Sample]) -> None:
        """Take in a finished pass and the samples it published."""
        with self._lock:
            self._samples = tuple(samples)
            self._queue_depths = {
                (pool, queue): depth
                for pool, obs in report.observations.items()
                if obs.broker is not None
                for queue, depth in obs.broker.per_queue.items()
            }
            for sample in samples:
                pool = dict(sample.dimensions).get("Pool")
                if pool is not None and METRICS[sample.name].counter:
                    self._totals[(sample.name, pool)] += sample.value
            self._pool_rows = tuple(pool_rows(report, self._specs))
            # Readiness is about the pools this replica reconciles now: with leader
            # election, a pool another replica took is not this one's to be late on.
            self._pools = tuple(result.pool for result in report.results)
            for result in report.results:
                if result.error is None:
                    self._last_success[result.pool] = report.time
                    self._last_error.pop(result.pool, None)
                else:
                    self._last_error[result.pool] = result.error
                    self._errors.inc()
                self._reconciles.labels(result.pool, "error" if result.error else "success").inc()
                if result.applied and result.action in ("scale_out", "scale_in"):
                    direction = result.action.removeprefix("scale_")
                    self._scale_events.labels(result.pool, direction).inc()
            self._duration.observe(report.duration_seconds)

    def publish_failed(self) -> None:
        self._publish_errors.inc()

    def not_ready(self) -> dict[str, str]:
        """`readiness` now, for the pools of the latest pass (before one: every pool)."""
        with self._lock:
            pools, last_success = self._pools, dict(self._last_success)
            last_error = dict(self._last_error)
        return readiness(pools, last_success, last_error, self._clock(), self._interval)

    def snapshot(self) -> Snapshot:
        """A consistent copy of what the latest pass left, for one scrape."""
        with self._lock:
            return Snapshot(
                self._samples,
                dict(self._queue_depths),
                dict(self._totals),
                dict(self._last_success),
                self._pool_rows,
            )


@dataclass(frozen=True)
class Snapshot:
    samples: tuple[Sample, ...]
    queue_depths: Mapping[tuple[str, str], int]
    """(pool, queue) → messages waiting."""
    totals: Mapping[tuple[str, str], float]
    """(counter name, pool) → running total since the controller started."""
    last_success: Mapping[str, float]
    pool_rows: tuple[PoolRow, ...] = ()


class _LatestPass(Collector):
    """Renders the latest pass at every scrape: no series outlives its pool or worker."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # names vary with the samples; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        latest = self._snapshot()
        gauges = {
            name: GaugeMetricFamily(f"{PREFIX}{name}", info.help, labels=["pool"])
            for name, info in METRICS.items()
            if info.per_pool and not info.counter and name != "queue_depth"
        }
        for sample in latest.samples:
            pool = dict(sample.dimensions).get("Pool")
            if pool is not None and sample.name in gauges:
                gauges[sample.name].add_metric([pool], sample.value)
        yield from gauges.values()

        depth = GaugeMetricFamily(
            f"{PREFIX}queue_depth", METRICS["queue_depth"].help, labels=["pool", "queue"]
        )
        for (pool, queue), value in sorted(latest.queue_depths.items()):
            depth.add_metric([pool, queue], value)
        yield depth

        counters = {
            name: CounterMetricFamily(f"{PREFIX}{name}", info.help, labels=["pool"])
            for name, info in METRICS.items()
            if info.per_pool and info.counter
        }
        for (name, pool), total in sorted(latest.totals.items()):
            counters[name].add_metric([pool], total)
        yield from counters.values()

        series = {
            name: GaugeMetricFamily(f"{PREFIX}{name}", info.help, labels=list(info.labels))
            for name, info in POOL_SERIES.items()
        }
        for row_name, labels, row_value in latest.pool_rows:
            series[row_name].add_metric(list(labels), row_value)
        yield from series.values()

        success = GaugeMetricFamily(
            f"{PREFIX}last_success_timestamp_seconds",
            "When the pool's last successful pass began (Unix time).",
            labels=["pool"],
        )
        for pool, when in sorted(latest.last_success.items()):
            success.add_metric([pool], when)
        yield success


# --- the HTTP server ----------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape on stderr would drown the controller's own logs


class TelemetryServer:
    """`/metrics`, `/healthz` and `/readyz` over HTTP, served from a daemon thread."""

    iam_actions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, metrics: ControllerMetrics, port: int, host: str = "") -> None:
        """Binds at once (port 0: any free port; see `port`); raises AdapterError."""
        self._metrics = metrics
        self._prometheus = make_wsgi_app(metrics.registry)
        try:
            self._server = make_server(
                host, port, self._app, server_class=_Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise AdapterError(
                f"cannot serve /metrics on port {port}: {exc.strerror or exc}"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="celery-scaler-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            response: Iterable[bytes] = self._prometheus(environ, start_response)
            return response
        if path == "/healthz":
            return _respond(start_response, "200 OK", {"alive": True})
        if path == "/readyz":
            problems = self._metrics.not_ready()
            if problems:
                body = {"ready": False, "pools": problems}
                return _respond(start_response, "503 Service Unavailable", body)
            return _respond(start_response, "200 OK", {"ready": True})
        return _respond(start_response, "404 Not Found", {"error": f"no such path: {path}"})


def _respond(start_response: StartResponse, status: str, body: object) -> list[bytes]:
    data = json.dumps(body, sort_keys=True).encode() + b"\n"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
