"""The CloudWatch history adapter's paging and errors, against a fake client from data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from celery_scaler.analysis.history import CloudWatchHistory
from celery_scaler.analysis.replay import MetricQuery, Series
from celery_scaler.core.errors import AdapterError

QUERIES = [
    MetricQuery("metric", "CeleryMetrics", "queue_depth", (("Pool", "p"),), "Average"),
    MetricQuery(
        "current_capacity", "CeleryMetrics", "current_capacity", (("Pool", "p"),), "Average"
    ),
]


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class FakeCloudWatch:
    """GetMetricData answered page by page from a list of responses."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return self.pages[len(self.requests) - 1]


def test_pages_are_followed_and_merged_in_time_order() -> None:
    fake = FakeCloudWatch(
        [
            {
                "MetricDataResults": [
                    {"Id": "metric", "Timestamps": [at(120), at(60)], "Values": [3.0, 2.0]},
                    {"Id": "current_capacity", "Timestamps": [], "Values": []},
                ],
                "NextToken": "page-2",
            },
            {
                "MetricDataResults": [
                    {"Id": "metric", "Timestamps": [at(0)], "Values": [1.0]},
                    {"Id": "current_capacity", "Timestamps": [at(0)], "Values": [4.0]},
                ]
            },
        ]
    )
    found = CloudWatchHistory(fake).read(QUERIES, 0, 180, 60)  # type: ignore[arg-type]
    assert found == {
        "metric": Series(((0.0, 1.0), (60.0, 2.0), (120.0, 3.0))),
        "current_capacity": Series(((0.0, 4.0),)),
    }
    first, second = fake.requests
    assert "NextToken" not in first
    assert second["NextToken"] == "page-2"
    stat = first["MetricDataQueries"][0]["MetricStat"]
    assert stat == {
        "Metric": {
            "Namespace": "CeleryMetrics",
            "MetricName": "queue_depth",
            "Dimensions": [{"Name": "Pool", "Value": "p"}],
        },
        "Period": 60,
        "Stat": "Average",
    }
    assert (first["StartTime"], first["EndTime"]) == (at(0), at(180))


def test_errors_are_one_line() -> None:
    class Denied(FakeCloudWatch):
        def get_metric_data(self, **request: Any) -> dict[str, Any]:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "GetMetricData"
            )

    with pytest.raises(AdapterError, match="CloudWatch GetMetricData failed: AccessDenied"):
        CloudWatchHistory(Denied([])).read(QUERIES, 0, 60, 60)  # type: ignore[arg-type]

    forbidden = FakeCloudWatch(
        [
            {
                "MetricDataResults": [
                    {"Id": "metric", "Label": "queue_depth", "StatusCode": "Forbidden"}
                ]
            }
        ]
    )
    with pytest.raises(AdapterError, match="not allowed to read queue_depth"):
        CloudWatchHistory(forbidden).read(QUERIES, 0, 60, 60)  # type: ignore[arg-type]


def test_declares_its_iam_actions() -> None:
    assert tuple(CloudWatchHistory.iam_actions) == ("cloudwatch:GetMetricData",)
