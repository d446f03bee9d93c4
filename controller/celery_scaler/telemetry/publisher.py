"""The telemetry reporter: each pass's metrics to CloudWatch and Prometheus, and its log events.

`Telemetry` is a `Reporter` (runner.py): it turns a PassReport into samples with the
pure `telemetry.pass_samples`, hands them to a CloudWatch sink (PutMetricData or EMF
lines), to the Prometheus registry, and logs one event per pool, one per scaling
action and one per pass. A failure to publish is logged and counted; it never stops
the pass, which has already scaled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from celery_scaler.core.errors import AdapterError
from celery_scaler.telemetry.logs import log_event
from celery_scaler.telemetry.samples import CounterState, Sample, pass_samples

if TYPE_CHECKING:
    from celery_scaler.engine.reconcile import PassReport, PoolResult
    from celery_scaler.telemetry.cloudwatch import MetricsSink
    from celery_scaler.telemetry.prometheus import ControllerMetrics, TelemetryServer
    from celery_scaler.telemetry.task_events import TaskEventCounter

log = logging.getLogger(__name__)


@dataclass(repr=False)
class Telemetry:
    """Publishes every pass; `start()` and `close()` run its HTTP server and event receiver."""

    pools: Sequence[str]
    """The pools this controller reconciles."""
    fleet: bool = True
    """The pools are all the configuration's: a pass over all of them gives fleet totals
    (with leader election, a replica that holds only some of them publishes none)."""
    per_worker: bool = False
    sink: MetricsSink | None = None
    prometheus: ControllerMetrics | None = None
    server: TelemetryServer | None = None
    events: TaskEventCounter | None = None
    counters: CounterState = field(default_factory=CounterState)
    publish_failures: int = 0

    def __repr__(self) -> str:  # short: the runner names a failing reporter in its log
        return f"Telemetry(pools={list(self.pools)})"

    def start(self) -> None:
        if self.events is not None:
            self.events.start()
        if self.server is not None:
            self.server.start()
            log_event(
                log,
                logging.INFO,
                "http_serving",
                f"serving /metrics, /healthz and /readyz on port {self.server.port}",
                port=self.server.port,
            )

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.events is not None:
            self.events.close()

    def __enter__(self) -> Telemetry:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, report: PassReport) -> None:
        events = self.events.drain() if self.events is not None else None
        whole = self.fleet and {result.pool for result in report.results} == set(self.pools)
        samples, self.counters = pass_samples(
            report, self.counters, events, per_worker=self.per_worker, fleet=whole
        )
        requests, error = self._publish(samples, report.time)
        if self.prometheus is not None:
            self.prometheus.observe(report, samples)
        for result in report.results:
            _log_result(result)
        log_event(
            log,
            logging.WARNING if error else logging.INFO,
            "pass",
            f"pass over {len(report.results)} pool(s) in {report.duration_seconds:.3f}s"
            + (f"; metrics not published: {error}" if error else ""),
            duration_seconds=round(report.duration_seconds, 6),
            pools=len(report.results),
            errors=sum(1 for result in report.results if result.error),
            metrics=len(samples),
            metrics_requests=requests,
            metrics_error=error,
            metrics_publish_failures_total=self.publish_failures,
        )

    def _publish(self, samples: Sequence[Sample], timestamp: float) -> tuple[int, str | None]:
        if self.sink is None:
            return 0, None
        try:
            return self.sink.publish(samples, timestamp), None
        except AdapterError as exc:
            self.publish_failures += 1
            if self.prometheus is not None:
                self.prometheus.publish_failed()
            return 0, str(exc)


def _log_result(result: PoolResult) -> None:
    fields = result.to_json()
    # A warning (a condition held too long) is as loud as an error, though nothing failed.
    level = logging.WARNING if result.error or result.warnings else logging.INFO
    log_event(log, level, "pool_reconciled", f"{result.pool}: {result.reason}", **fields)
    if result.action != "hold" and (result.applied or result.dry_run):
        verb = "scaled" if result.applied else "would scale (dry run)"
        log_event(
            log,
            logging.INFO,
            result.action,
            f"{result.pool}: {verb} {result.cluster}/{result.service} "
            f"from {result.current} to {result.desired}",
            pool=result.pool,
            cluster=result.cluster,
            service=result.service,
            current=result.current,
            desired=result.desired,
            applied=result.applied,
            dry_run=result.dry_run,
            reason=result.reason,
        )
