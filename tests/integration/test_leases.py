"""Leases in DynamoDB on the local AWS API: conditional writes and fencing."""

from __future__ import annotations

import threading
import time

import pytest

from celery_scaler.adapters.leases import DynamoLeases
from celery_scaler.core.config import WorkerPool, WorkerPoolSpec
from celery_scaler.local.aws_api import LocalAws
from tests.helpers import terraform_blocks, terraform_module

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def pools(*names: str) -> list[WorkerPool]:
    spec = WorkerPoolSpec.model_validate(
        {
            "ecs": {"cluster": "c", "service": "s"},
            "scaleIn": {
                "threshold": 0,
                "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
            },
        }
    )
    return [WorkerPool(name=name, spec=spec) for name in names]


def replica(aws: LocalAws, table: str, owner: str, clock: Clock) -> DynamoLeases:
    return DynamoLeases(aws.client("dynamodb"), table, owner, lease_duration=30, clock=clock)


def test_leases_fence_a_replica_that_lost_its_pool(aws: LocalAws, unique: str) -> None:
    clock = Clock()
    table = f"leases-{unique}"
    one = replica(aws, table, "one", clock)
    two = replica(aws, table, "two", clock)
    all_pools = pools("a", "b")

    assert [p.name for p in one.elect(all_pools)] == ["a", "b"]  # creates the table
    assert one.holds("a")
    assert two.elect(all_pools) == []  # live leases of another replica are never taken

    clock.now += 31  # `one` stalls past its lease (a long GC pause, a frozen VM)
    # `one`'s heartbeat expired with its leases: `two` is alone and takes both.
    assert [p.name for p in two.elect(all_pools)] == ["a", "b"]
    # `one` wakes up mid-pass: the fencing check refuses its write.
    assert not one.holds("a")
    assert two.holds("a")
    assert two.owners() == {"a": "two", "b": "two"}


def test_an_election_writes_its_leases_at_once(aws: LocalAws, unique: str) -> None:
    # 20 pools: 20 conditional writes to take them, then 20 to renew them, each batch in
    # flight together (counted as botocore sends them), not one after another.
    client = aws.client("dynamodb")
    lock, counts = threading.Lock(), {"in_flight": 0, "most": 0}

    def sending(**_: object) -> None:
        with lock:
            counts["in_flight"] += 1
            counts["most"] = max(counts["most"], counts["in_flight"])
        time.sleep(0.05)  # the others start meanwhile, if they are sent at once

    def answered(**_: object) -> None:
        with lock:
            counts["in_flight"] -= 1

    client.meta.events.register("before-send.dynamodb.UpdateItem", sending)
    client.meta.events.register("after-call.dynamodb.UpdateItem", answered)
    leases = DynamoLeases(client, f"leases-{unique}", "one", lease_duration=30, clock=Clock())
    names = [f"p{index}" for index in range(20)]
    for _ in range(2):  # acquire, then renew
        counts["most"] = 0
        assert [pool.name for pool in leases.elect(pools(*names))] == names
        assert counts["most"] > 1


def test_release_hands_pools_over_at_once(aws: LocalAws, unique: str) -> None:
    clock = Clock()
    table = f"leases-{unique}"
    one = replica(aws, table, "one", clock)
    two = replica(aws, table, "two", clock)
    one.elect(pools("a", "b"))
    one.release_all()
    clock.now += 1  # far inside the 30 s lease
    assert [p.name for p in two.elect(pools("a", "b"))] == ["a", "b"]


def test_a_table_made_as_the_terraform_module_makes_it_needs_no_create_table(
    aws: LocalAws, unique: str
) -> None:
    (table,) = [
        body
        for tf in terraform_module().values()
        for name, body in terraform_blocks(tf, "resource").items()
        if name == "aws_dynamodb_table.leases"
    ]
    admin = aws.client("dynamodb")
    admin.create_table(
        TableName=f"leases-{unique}",
        AttributeDefinitions=[
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in table["attribute"]
        ],
        KeySchema=[{"AttributeName": table["hash_key"], "KeyType": "HASH"}],
        BillingMode=table["billing_mode"],
    )
    client = aws.client("dynamodb")
    created: list[str] = []

    def refuse(**_: object) -> None:
        created.append("CreateTable")
        raise AssertionError("CreateTable called although the table exists")

    client.meta.events.register("before-call.dynamodb.CreateTable", refuse)
    leases = DynamoLeases(client, f"leases-{unique}", "one", lease_duration=30, clock=Clock())
    assert [p.name for p in leases.elect(pools("a"))] == ["a"]
    assert leases.holds("a")
    assert created == []
