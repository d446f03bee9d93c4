"""PutMetricData batching and the Embedded Metric Format, checked against their limits and spec."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from typing import Any
from urllib.parse import urlencode

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.serialize import create_serializer

from celery_scaler.core.errors import AdapterError
from celery_scaler.telemetry.cloudwatch import (
    MAX_METRICS_PER_EMF_DOCUMENT,
    MAX_METRICS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    MAX_REQUESTS_IN_FLIGHT,
    REQUEST_OVERHEAD_BYTES,
    CloudWatchMetrics,
    EmbeddedMetricsWriter,
    batches,
    emf_documents,
    encoded_size,
    metric_datum,
)
from celery_scaler.telemetry.samples import METRICS, Sample
from tests.helpers import assert_emf


def sample(name: str = "queue_depth", value: float = 1.0, pool: str | None = "p") -> Sample:
    return Sample(name, value, (("Pool", pool),) if pool else ())


# --- PutMetricData ------------------------------------------------------------------------


def test_datum_carries_name_unit_dimensions_and_resolution() -> None:
    datum = metric_datum(Sample("memory_usage", 200.0, (("Pool", "p"),)), 1_700_000_000.0, 1)
    assert datum["MetricName"] == "memory_usage"
    assert datum["Unit"] == "Megabytes"
    assert datum["Dimensions"] == [{"Name": "Pool", "Value": "p"}]
    assert datum["StorageResolution"] == 1
    assert datum["Timestamp"].timestamp() == 1_700_000_000.0


def test_a_pass_fits_one_request_up_to_the_api_limit() -> None:
    # The original sent 20 metrics per request; the API takes 1,000 since 2023.
    data = [metric_datum(sample(value=i), 0.0, 60) for i in range(2500)]
    sizes = [len(batch) for batch in batches(data)]
    assert sizes == [MAX_METRICS_PER_REQUEST, MAX_METRICS_PER_REQUEST, 500]
    assert [d for batch in batches(data) for d in batch] == data  # nothing lost or reordered
    assert len(list(batches(data[:64]))) == 1


class CountingCloudWatch:
    """put_metric_data that counts how many requests are in flight at once.

    With `together`, each request waits until that many are in flight (a barrier): sent
    one after another, the first would wait in vain and the request fail.
    """

    def __init__(self, together: int | None = None, fail_request: int | None = None) -> None:
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(together) if together else None
        self._fail = fail_request
        self.in_flight = self.most = 0
        self.sizes: list[int] = []

    def put_metric_data(self, Namespace: str, MetricData: list[Any]) -> None:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.sizes.append(len(MetricData))
            index = len(self.sizes)
        try:
            if self._barrier is not None:
                self._barrier.wait(timeout=10)
            else:
                time.sleep(0.02)  # long enough for the others to start meanwhile
            if index == self._fail:
                raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "Put")
        finally:
            with self._lock:
                self.in_flight -= 1


def test_the_requests_of_a_pass_are_sent_at_once() -> None:
    client = CountingCloudWatch(together=3)
    samples = [sample(value=i) for i in range(2500)]
    assert CloudWatchMetrics(client, "N").publish(samples, 0.0) == 3  # type: ignore[arg-type]
    assert client.most == 3
    assert sorted(client.sizes) == [500, MAX_METRICS_PER_REQUEST, MAX_METRICS_PER_REQUEST]


def test_at_most_a_bounded_number_of_requests_at_once() -> None:
    client = CountingCloudWatch()
    samples = [sample(value=i) for i in range(20 * MAX_METRICS_PER_REQUEST)]
    assert CloudWatchMetrics(client, "N").publish(samples, 0.0) == 20  # type: ignore[arg-type]
    assert 1 < client.most <= MAX_REQUESTS_IN_FLIGHT
    assert sum(client.sizes) == len(samples)


def test_a_failed_request_loses_only_its_own_metrics() -> None:
    client = CountingCloudWatch(together=3, fail_request=2)
    samples = [sample(value=i) for i in range(2500)]
    with pytest.raises(AdapterError, match=r"1 of 3 request\(s\) failed: .*Throttling: slow down"):
        CloudWatchMetrics(client, "N").publish(samples, 0.0)  # type: ignore[arg-type]
    assert sum(client.sizes) == 2500, "every batch was sent"


def test_batches_stay_under_the_request_size_limit() -> None:
    # Long worker names: 1,000 of them would not fit in 1 MB.
    data = [
        metric_datum(Sample("active_tasks", 1.0, (("WorkerName", f"{i}-" + "w" * 1000),)), 0.0, 60)
        for i in range(1000)
    ]
    cut = list(batches(data))
    assert len(cut) > 1
    for batch in cut:
        assert REQUEST_OVERHEAD_BYTES + sum(encoded_size(d) for d in batch) <= MAX_REQUEST_BYTES


@pytest.mark.parametrize("protocol", ["query", "json", "smithy-rpc-v2-cbor"])
def test_size_estimate_bounds_every_wire_protocol(protocol: str) -> None:
    # botocore's own serializers for each protocol CloudWatch speaks: the estimate is
    # never below the real body, and not far above the most verbose one.
    operation = botocore.session.get_session().get_service_model("cloudwatch")
    data = [
        metric_datum(Sample("busy_ratio", 0.25 + i, (("WorkerName", f"celery@ip-{i} x"),)), 1e9, 1)
        for i in range(1000)
    ]
    request = create_serializer(protocol).serialize_to_request(
        {"Namespace": "CeleryMetrics", "MetricData": data},
        operation.operation_model("PutMetricData"),
    )
    body = request["body"]
    real = len(urlencode(body)) if isinstance(body, dict) else len(body)
    estimate = REQUEST_OVERHEAD_BYTES + sum(encoded_size(datum) for datum in data)
    assert real <= estimate
    if protocol == "query":
        assert estimate < real * 1.1


# --- Embedded Metric Format -----------------------------------------------------------------


def test_emf_documents_follow_the_specification() -> None:
    samples = [
        sample("queue_depth", 4.0),
        sample("memory_usage", 200.0),
        sample("worker_status", 3.0, pool="q"),
        sample("queue_depth", 9.0, pool=None),
        Sample("controller_heartbeat", 1.0),
        Sample("active_tasks", 1.0, (("WorkerName", "celery@ip-10-0-0-1"),)),
    ]
    documents = emf_documents(samples, "CeleryMetrics", 1_700_000_000.123, 60)
    for document in documents:
        assert_emf(document)
    by_dims = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in documents}
    assert set(by_dims) == {(), ("Pool",), ("WorkerName",)}
    fleet = by_dims[()]
    assert (fleet["queue_depth"], fleet["controller_heartbeat"]) == (9.0, 1.0)
    assert fleet["_aws"]["Timestamp"] == 1_700_000_000_123
    pools = [d for d in documents if d.get("Pool")]
    assert {d["Pool"] for d in pools} == {"p", "q"}
    p = next(d for d in pools if d["Pool"] == "p")
    assert {m["Name"]: m["Unit"] for m in p["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {
        "queue_depth": "Count",
        "memory_usage": "Megabytes",
    }


def test_emf_documents_hold_at_most_100_metrics() -> None:
    wide = [Sample(name, 1.0, ()) for name in METRICS] * 8  # one dimension set, 136 metrics
    documents = emf_documents(wide, "N", 0.0)
    counts = [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in documents]
    assert max(counts) <= MAX_METRICS_PER_EMF_DOCUMENT
    assert sum(counts) == len(wide)


def test_emf_writer_writes_one_json_object_per_line() -> None:
    stream = io.StringIO()
    writer = EmbeddedMetricsWriter(stream, "CeleryMetrics", storage_resolution=1)
    assert writer.publish([sample(), Sample("controller_heartbeat", 1.0)], 1_700_000_000.0) == 0
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        document = json.loads(line)
        assert_emf(document)
        assert re.fullmatch(r"\{.*\}", line)  # nothing before or after the object
        assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] == 1


def test_emf_writer_reports_a_closed_stream() -> None:
    stream = io.StringIO()
    stream.close()
    with pytest.raises(AdapterError, match="cannot write EMF metrics"):
        EmbeddedMetricsWriter(stream, "N").publish([sample()], 0.0)
