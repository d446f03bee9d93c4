"""A pass over an SQS broker as deployed: the composition root builds the SQS client.

The adapter tests in test_broker.py hand SqsQueueDepth a client of their own; this one
runs `celery-scaler reconcile --once` so the SQS calls are the controller's own (and the
IAM coverage test in tests/test_iam.py sees them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_scaler.core.names import sqs_queue_name
from celery_scaler.local.aws_api import LocalAws
from tests.helpers import json_lines, pool_config, run, write

pytestmark = pytest.mark.integration


def test_reconcile_reads_sqs_depth(aws: LocalAws, unique: str, tmp_path: Path) -> None:
    cluster, queue = f"c-{unique}", f"q-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=sqs_queue_name(queue))["QueueUrl"]
    for number in range(7):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{number}")
    path = write(tmp_path, pool_config("sqs://", cluster, queue))

    result = run("reconcile", "--once", "--dry-run", "-o", "json", "--config", str(path))

    assert result.returncode == 0, result.stderr
    (report,) = json_lines(result.stdout)
    assert report["observed"]["queue_depth"] == 7
    # 7 is 2 above the threshold of 5: one more worker, not applied in a dry run.
    assert (report["current"], report["desired"], report["applied"]) == (2, 3, False)
