"""CloudWatch adapter: a pool's metric history through GetMetricData (`HistorySource`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from celery_scaler.adapters.aws import AWS_ERRORS, describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.analysis.replay import MetricQuery, Series
from celery_scaler.core.errors import AdapterError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

MAX_QUERIES = 500
"""GetMetricData's limit of metrics per request."""


class CloudWatchHistory:
    """`HistorySource` over boto3's CloudWatch client."""

    iam_actions: ClassVar[IamActions] = {"cloudwatch:GetMetricData": IamResource.ANY}

    def __init__(self, client: CloudWatchClient) -> None:
        self._client = client

    def read(
        self, queries: Sequence[MetricQuery], start: float, end: float, period: int
    ) -> dict[str, Series]:
        if len(queries) > MAX_QUERIES:
            raise ValueError(f"at most {MAX_QUERIES} queries per GetMetricData request")
        points: dict[str, list[tuple[float, float]]] = {query.id: [] for query in queries}
        request: dict[str, Any] = {
            "MetricDataQueries": [_query(query, period) for query in queries],
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
            "ScanBy": "TimestampAscending",
        }
        while True:
            try:
                response = self._client.get_metric_data(**request)
            except AWS_ERRORS as exc:
                raise describe_aws_error("CloudWatch GetMetricData", exc) from None
            for result in response.get("MetricDataResults", []):
                if result.get("StatusCode") == "Forbidden":
                    raise AdapterError(
                        f"CloudWatch GetMetricData: not allowed to read {result.get('Label')}"
                    )
                found = points.setdefault(result.get("Id", ""), [])
                found.extend(
                    (stamp.timestamp(), float(value))
                    for stamp, value in zip(
                        result.get("Timestamps", []), result.get("Values", []), strict=False
                    )
                )
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        return {name: Series(tuple(sorted(found))) for name, found in points.items()}


def _query(query: MetricQuery, period: int) -> dict[str, Any]:
    return {
        "Id": query.id,
        "MetricStat": {
            "Metric": {
                "Namespace": query.namespace,
                "MetricName": query.name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in query.dimensions],
            },
            "Period": period,
            "Stat": query.statistic,
        },
        "Label": query.name,
        "ReturnData": True,
    }
