"""Leader election: per-pool leases in DynamoDB, shared fairly among controller replicas.

Every replica heartbeats a `replica/<id>` item and holds a lease item per pool it
reconciles (owner, expiry, fencing token). Each pass, a replica renews what it holds,
takes free or expired leases up to its fair share (pools / live replicas, rounded up),
and hands back what it holds beyond that share, so pools spread over replicas and a
dead replica's pools move to the others once its leases expire. Before every
UpdateService the pass renews the pool's lease on the condition that owner and token
are still its own (`holds`): a replica that lost a lease, paused past its expiry say,
finds out before it writes, never after.

Lease expiry compares wall clocks across replicas: keep them in sync (NTP), and keep the
lease duration well above the interval and any clock skew.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from botocore.exceptions import ClientError

from celery_scaler.adapters.aws import AWS_ERRORS, describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.core.config import WorkerPool

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.literals import BillingModeType
    from mypy_boto3_dynamodb.type_defs import AttributeDefinitionTypeDef, KeySchemaElementTypeDef

T = TypeVar("T")

REPLICA_PREFIX = "replica/"
KEY = "name"

# The table `elect` creates when it finds none; charts/terraform creates the same one, and
# with it there the controller only ever describes it (CreateTable is then never called).
TABLE_ATTRIBUTES: Sequence[AttributeDefinitionTypeDef] = (
    {"AttributeName": KEY, "AttributeType": "S"},
)
TABLE_KEY_SCHEMA: Sequence[KeySchemaElementTypeDef] = ({"AttributeName": KEY, "KeyType": "HASH"},)
TABLE_BILLING_MODE: BillingModeType = "PAY_PER_REQUEST"


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    expires: float
    token: int

    def live(self, now: float) -> bool:
        return self.expires > now


@dataclass(frozen=True)
class LeasePlan:
    """What one replica does with the leases this pass (pure outcome of `plan`)."""

    renew: tuple[str, ...]
    acquire: tuple[str, ...]
    release: tuple[str, ...]


def plan(
    me: str, pools: Sequence[str], leases: Mapping[str, Lease], replicas: int, now: float
) -> LeasePlan:
    """Renew what I hold up to my fair share, take free pools up to it, release the rest."""
    share = math.ceil(len(pools) / max(replicas, 1))

    def held_by_me(pool: str) -> bool:
        lease = leases.get(pool)
        return lease is not None and lease.owner == me and lease.live(now)

    mine = [pool for pool in pools if held_by_me(pool)]
    keep, release = mine[:share], mine[share:]
    free = [pool for pool in pools if not ((lease := leases.get(pool)) and lease.live(now))]
    acquire = free[: max(share - len(keep), 0)]
    return LeasePlan(tuple(keep), tuple(acquire), tuple(release))


LEASE_WRITES_AT_ONCE = 16
"""Conditional writes of one election in flight together."""


def _at_once(write: Callable[[str], T], names: Sequence[str]) -> list[T]:
    """`write` of each name, in flight together (up to LEASE_WRITES_AT_ONCE); the results
    in order. The first error raised is raised, once every write has ended."""
    if len(names) <= 1:
        return [write(name) for name in names]
    threads = min(LEASE_WRITES_AT_ONCE, len(names))
    with ThreadPoolExecutor(threads, thread_name_prefix="lease") as pool:
        return list(pool.map(write, names))


class DynamoLeases:
    """Leases as items of one DynamoDB table (key `name`), written with conditions only."""

    iam_actions: ClassVar[IamActions] = {
        "dynamodb:DescribeTable": IamResource.LEASE_TABLE,
        "dynamodb:CreateTable": IamResource.LEASE_TABLE,
        "dynamodb:Scan": IamResource.LEASE_TABLE,
        "dynamodb:PutItem": IamResource.LEASE_TABLE,
        "dynamodb:UpdateItem": IamResource.LEASE_TABLE,
    }

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        owner: str,
        lease_duration: float,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._table = table
        self.owner = owner
        self._duration = lease_duration
        self._clock = clock
        self._held: dict[str, int] = {}
        """Pool → fencing token of the lease this replica holds."""
        self._lock = threading.Lock()
        self._table_ready = False

    # -- the election, once per pass

    def elect(self, pools: Sequence[WorkerPool]) -> list[WorkerPool]:
        """The pools this replica reconciles this pass."""
        self._ensure_table()
        now = self._clock()
        self._put(f"{REPLICA_PREFIX}{self.owner}", now + self._duration)
        items = self._scan()
        replicas = sum(
            1
            for lease in items.values()
            if lease.name.startswith(REPLICA_PREFIX) and lease.live(now)
        )
        names = [pool.name for pool in pools]
        decided = plan(self.owner, names, items, replicas, now)
        # One conditional write per lease, each on its own: at once rather than one after
        # another (a replica of 500 pools over 3 renews about 170 of them every pass).
        _at_once(self._release, decided.release)
        renewed = _at_once(lambda name: self._renew(name, items[name].token), decided.renew)
        acquired = _at_once(lambda name: self._acquire(name, items.get(name)), decided.acquire)
        held = {
            name
            for name, won in zip(
                (*decided.renew, *decided.acquire), (*renewed, *acquired), strict=True
            )
            if won
        }
        with self._lock:
            self._held = {name: token for name, token in self._held.items() if name in held}
        return [pool for pool in pools if pool.name in held]

    def holds(self, pool: str) -> bool:
        """Fencing: renew the lease only if owner and token are still this replica's."""
        with self._lock:
            token = self._held.get(pool)
        return token is not None and self._renew(pool, token)

    def release_all(self) -> None:
        """Hand every lease back (shutdown), so other replicas need not wait for expiry."""
        with self._lock:
            held = list(self._held)
        for name in held:
            self._release(name)
        self._update(
            f"{REPLICA_PREFIX}{self.owner}",
            "SET expires = :zero",
            "attribute_exists(#name)",
            {":zero": {"N": "0"}},
        )

    def owners(self) -> dict[str, str]:
        """Pool → owner of its live lease (for `status`)."""
        now = self._clock()
        return {
            name: lease.owner
            for name, lease in self._scan().items()
            if not name.startswith(REPLICA_PREFIX) and lease.live(now)
        }

    # -- conditional writes

    def _acquire(self, name: str, seen: Lease | None) -> bool:
        now = self._clock()
        # Taken only if nobody holds it, or the holder let it expire; a new holder
        # means a new token, so writes fenced by the old one are refused.
        token = (seen.token if seen else 0) + 1
        won = self._update(
            name,
            "SET #owner = :me, expires = :expires, #token = :token",
            "attribute_not_exists(#name) OR expires <= :now",
            {
                ":me": {"S": self.owner},
                ":expires": {"N": repr(now + self._duration)},
                ":token": {"N": str(token)},
                ":now": {"N": repr(now)},
            },
        )
        if won:
            with self._lock:
                self._held[name] = token
        return won

    def _renew(self, name: str, token: int) -> bool:
        now = self._clock()
        renewed = self._update(
            name,
            "SET expires = :expires",
            "#owner = :me AND #token = :token AND expires > :now",
            {
                ":me": {"S": self.owner},
                ":expires": {"N": repr(now + self._duration)},
                ":token": {"N": str(token)},
                ":now": {"N": repr(now)},
            },
        )
        if renewed:
            with self._lock:
                self._held[name] = token
        else:
            with self._lock:
                self._held.pop(name, None)
        return renewed

    def _release(self, name: str) -> None:
        with self._lock:
            self._held.pop(name, None)
        self._update(
            name,
            "SET expires = :zero",
            "#owner = :me",
            {":me": {"S": self.owner}, ":zero": {"N": "0"}},
        )

    def _update(self, name: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        # DynamoDB refuses names an expression does not use.
        names = {
            placeholder: attribute
            for placeholder, attribute in (("#name", KEY), ("#owner", "owner"), ("#token", "token"))
            if placeholder in update or placeholder in condition
        }
        try:
            self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": name}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise describe_aws_error("DynamoDB UpdateItem", exc) from None
        except AWS_ERRORS as exc:
            raise describe_aws_error("DynamoDB UpdateItem", exc) from None
        return True

    def _put(self, name: str, expires: float) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    KEY: {"S": name},
                    "owner": {"S": self.owner},
                    "expires": {"N": repr(expires)},
                    "token": {"N": "0"},
                },
            )
        except AWS_ERRORS as exc:
            raise describe_aws_error("DynamoDB PutItem", exc) from None

    def _scan(self) -> dict[str, Lease]:
        items: dict[str, Lease] = {}
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        try:
            while True:
                page = self._client.scan(**kwargs)
                for item in page.get("Items", []):
                    lease = Lease(
                        name=item[KEY]["S"],
                        owner=item.get("owner", {}).get("S", ""),
                        expires=float(item.get("expires", {}).get("N", "0")),
                        token=int(item.get("token", {}).get("N", "0")),
                    )
                    items[lease.name] = lease
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except AWS_ERRORS as exc:
            raise describe_aws_error("DynamoDB Scan", exc) from None

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        try:
            self._client.describe_table(TableName=self._table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise describe_aws_error("DynamoDB DescribeTable", exc) from None
            self._create_table()
        except AWS_ERRORS as exc:
            raise describe_aws_error("DynamoDB DescribeTable", exc) from None
        self._table_ready = True

    def _create_table(self) -> None:
        try:
            self._client.create_table(
                TableName=self._table,
                AttributeDefinitions=TABLE_ATTRIBUTES,
                KeySchema=TABLE_KEY_SCHEMA,
                BillingMode=TABLE_BILLING_MODE,
            )
            self._client.get_waiter("table_exists").wait(
                TableName=self._table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
        except ClientError as exc:
            # Another replica created it first.
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise describe_aws_error("DynamoDB CreateTable", exc) from None
        except AWS_ERRORS as exc:
            raise describe_aws_error("DynamoDB CreateTable", exc) from None
