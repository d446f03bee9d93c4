"""CloudWatch: a pass's samples through PutMetricData, or as Embedded Metric Format lines.

PutMetricData takes up to 1,000 metrics and 1 MB per request (AWS API reference,
PutMetricData; it was 20 metrics and 40 KB before 2023). A pass is sent in as few
requests as those limits allow: one up to about 60 pools, 8 for 500 pools (16 metrics
each), and those are sent at once.

EMF (`cloudwatch.mode: emf`) writes the same metrics as JSON log lines on stdout
instead; CloudWatch Logs extracts them from a container's log group (awslogs driver),
with no PutMetricData request and no `cloudwatch:PutMetricData` permission. The
format is the one of AWS's "Specification: Embedded metric format".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import groupby
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote

from celery_scaler.adapters.aws import AWS_ERRORS, describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.core.errors import AdapterError
from celery_scaler.telemetry.samples import Sample

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

MAX_METRICS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
"""1 MB, read as 10^6 bytes, with the request's own fields kept well inside it."""
REQUEST_OVERHEAD_BYTES = 4096
"""Room for Action, Version and Namespace beside the metric data."""
MAX_METRICS_PER_EMF_DOCUMENT = 100
"""The specification: a MetricDirective's Metrics array holds at most 100 definitions."""
MAX_REQUESTS_IN_FLIGHT = 8
"""PutMetricData requests of one pass sent at once. One after another, the 8 requests of
500 pools took as long as the rest of the pass; at once they take about the longest
one. Each is a thread only while it is sent; botocore's clients are thread-safe."""


class MetricsSink(Protocol):
    def publish(self, samples: Sequence[Sample], timestamp: float) -> int:
        """Send the samples, stamped `timestamp` (epoch seconds); the number of API requests.

        Raises AdapterError when some were not delivered.
        """
        ...


# --- PutMetricData -----------------------------------------------------------------------


def metric_datum(sample: Sample, timestamp: float, storage_resolution: int) -> MetricDatumTypeDef:
    return {
        "MetricName": sample.name,
        "Dimensions": [{"Name": name, "Value": value} for name, value in sample.dimensions],
        "Timestamp": datetime.fromtimestamp(timestamp, UTC),
        "Value": sample.value,
        "Unit": sample.unit,  # type: ignore[typeddict-item]  # a StandardUnit by construction
        "StorageResolution": storage_resolution,
    }


def encoded_size(datum: MetricDatumTypeDef) -> int:
    """Bytes the datum takes in a request in the AWS query protocol, the most verbose one.

    botocore may send CloudWatch requests as CBOR, JSON or the query protocol; sizing
    for the query form keeps a batch under the limit whichever is used.
    """
    fields: dict[str, object] = {
        key: value for key, value in datum.items() if key not in ("Dimensions", "Timestamp")
    }
    fields["Timestamp"] = "2000-01-01T00:00:00.000000Z"
    for index, dimension in enumerate(datum.get("Dimensions", []), start=1):
        fields[f"Dimensions.member.{index}.Name"] = dimension["Name"]
        fields[f"Dimensions.member.{index}.Value"] = dimension["Value"]
    prefix = len("&MetricData.member.1000.")
    return sum(prefix + len(key) + 1 + len(quote(str(value))) for key, value in fields.items())


def batches(data: Sequence[MetricDatumTypeDef]) -> Iterator[list[MetricDatumTypeDef]]:
    """The data in order, cut into requests within PutMetricData's count and size limits."""
    batch: list[MetricDatumTypeDef] = []
    size = REQUEST_OVERHEAD_BYTES
    for datum in data:
        datum_size = encoded_size(datum)
        if batch and (
            len(batch) == MAX_METRICS_PER_REQUEST or size + datum_size > MAX_REQUEST_BYTES
        ):
            yield batch
            batch, size = [], REQUEST_OVERHEAD_BYTES
        batch.append(datum)
        size += datum_size
    if batch:
        yield batch


class CloudWatchMetrics:
    """`MetricsSink` over boto3's CloudWatch client (PutMetricData)."""

    iam_actions: ClassVar[IamActions] = {"cloudwatch:PutMetricData": IamResource.METRIC_NAMESPACE}

    def __init__(
        self, client: CloudWatchClient, namespace: str, *, storage_resolution: int = 60
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._storage_resolution = storage_resolution

    def publish(self, samples: Sequence[Sample], timestamp: float) -> int:
        data = [metric_datum(s, timestamp, self._storage_resolution) for s in samples]
        requests = list(batches(data))
        # Every batch is tried: one refused request does not lose the others' metrics.
        if len(requests) > 1:
            threads = min(MAX_REQUESTS_IN_FLIGHT, len(requests))
            with ThreadPoolExecutor(threads, thread_name_prefix="put-metric-data") as pool:
                outcomes = list(pool.map(self._put, requests))
        else:
            outcomes = [self._put(batch) for batch in requests]
        errors = [error for error in outcomes if error is not None]
        if errors:
            raise AdapterError(
                f"{len(errors)} of {len(requests)} request(s) failed: "
                f"{'; '.join(sorted(set(errors)))}"
            )
        return len(requests)

    def _put(self, batch: list[MetricDatumTypeDef]) -> str | None:
        """Send one request; why it failed, if it did."""
        try:
            self._client.put_metric_data(Namespace=self._namespace, MetricData=batch)
        except AWS_ERRORS as exc:
            return str(describe_aws_error("CloudWatch PutMetricData", exc))
        return None


# --- Embedded Metric Format ---------------------------------------------------------------


def emf_documents(
    samples: Iterable[Sample], namespace: str, timestamp: float, storage_resolution: int = 60
) -> list[dict[str, Any]]:
    """One EMF document per dimension set (each pool, the fleet, each worker).

    The dimension values and the metric values are members of the document's root,
    which the MetricDirective names; at most 100 metrics per document.
    """
    documents = []
    by_dimensions = sorted(samples, key=lambda s: s.dimensions)
    for dimensions, group in groupby(by_dimensions, key=lambda s: s.dimensions):
        group_samples = list(group)
        for start in range(0, len(group_samples), MAX_METRICS_PER_EMF_DOCUMENT):
            chunk = group_samples[start : start + MAX_METRICS_PER_EMF_DOCUMENT]
            directive = {
                "Namespace": namespace,
                "Dimensions": [[name for name, _ in dimensions]],
                "Metrics": [
                    {"Name": s.name, "Unit": s.unit, "StorageResolution": storage_resolution}
                    for s in chunk
                ],
            }
            documents.append(
                {
                    "_aws": {
                        "Timestamp": int(timestamp * 1000),
                        "CloudWatchMetrics": [directive],
                    },
                    **dict(dimensions),
                    **{s.name: s.value for s in chunk},
                }
            )
    return documents


class EmbeddedMetricsWriter:
    """`MetricsSink` that writes EMF documents, one JSON object per line, to a stream."""

    iam_actions: ClassVar[tuple[str, ...]] = ()
    """Only writes to its stream; the log driver ships the lines."""

    def __init__(self, stream: IO[str], namespace: str, *, storage_resolution: int = 60) -> None:
        self._stream = stream
        self._namespace = namespace
        self._storage_resolution = storage_resolution

    def publish(self, samples: Sequence[Sample], timestamp: float) -> int:
        documents = emf_documents(samples, self._namespace, timestamp, self._storage_resolution)
        try:
            for document in documents:
                self._stream.write(json.dumps(document, sort_keys=True) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:  # a closed pipe or stream
            raise AdapterError(f"cannot write EMF metrics: {exc}") from None
        return 0
