"""The telemetry reporter: what reaches the sink, and how a failed publish is reported."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from celery_scaler.core.errors import AdapterError
from celery_scaler.telemetry.publisher import Telemetry
from celery_scaler.telemetry.samples import Sample
from tests.helpers import observation, report, worker


class Sink:
    """A MetricsSink that keeps what it is given, or refuses it."""

    def __init__(self, error: str | None = None) -> None:
        self.published: list[Sequence[Sample]] = []
        self.error = error

    def publish(self, samples: Sequence[Sample], timestamp: float) -> int:
        if self.error:
            raise AdapterError(self.error)
        self.published.append(samples)
        return 1


def test_fleet_totals_only_from_a_pass_over_every_pool() -> None:
    # With leader election a replica may reconcile some pools only: no partial fleet sums.
    sink = Sink()
    telemetry = Telemetry(pools=["a", "b"], sink=sink)
    both = {"a": observation([worker("w0")]), "b": observation([worker("w1", queues=("b",))])}
    telemetry(report(0.0, both))
    telemetry(report(15.0, {"a": observation([worker("w0")])}))
    whole, partial = ({s.name for s in samples if not s.dimensions} for samples in sink.published)
    assert "worker_status" in whole
    assert partial == {"controller_heartbeat"}


def test_a_failed_publish_is_logged_counted_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = Telemetry(pools=["a"], sink=Sink(error="PutMetricData failed: Throttling"))
    caplog.set_level(logging.INFO, logger="celery_scaler")
    for now in (0.0, 15.0):
        telemetry(report(now, {"a": observation([])}))
    passes = [r for r in caplog.records if getattr(r, "event", None) == "pass"]
    assert [r.levelno for r in passes] == [logging.WARNING, logging.WARNING]
    fields = passes[-1].fields  # type: ignore[attr-defined]
    assert fields["metrics_error"] == "PutMetricData failed: Throttling"
    assert fields["metrics_publish_failures_total"] == 2
    assert "metrics not published" in passes[-1].getMessage()
