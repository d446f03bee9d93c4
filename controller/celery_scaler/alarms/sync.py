"""Reading what exists and applying a plan, through two small ports (see desired.py).

`read_actual` turns what the adapters find into owned resources, foreign names and the
ARNs of the policies; `apply` writes a plan's changes in an order that never leaves an
alarm pointing at a policy that is not there yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from celery_scaler.alarms.desired import (
    Actual,
    Change,
    Kind,
    Op,
    Plan,
    PolicyRef,
    Resource,
    desired,
    diff,
    normalize_alarm,
    normalize_policy,
    normalize_target,
    owns_alarm,
    resource_id,
    wanted_body,
)
from celery_scaler.core.autoscaling import SCALABLE_TARGET, marked_pool
from celery_scaler.core.config import Config, WorkerPool
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import ServiceObservation


class AlarmStore(Protocol):
    def described(self, name_prefix: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """Each metric alarm named `name_prefix…` and its tags; raises AdapterError."""
        ...

    def put(self, body: Mapping[str, Any], tags: Mapping[str, str]) -> None: ...

    def tag(self, arn: str, tags: Mapping[str, str]) -> None: ...

    def delete(self, names: Sequence[str]) -> None: ...


class FallbackStore(Protocol):
    def targets(self) -> list[dict[str, Any]]:
        """Every ECS scalable target in the region; raises AdapterError."""
        ...

    def policies(self, resource_id: str) -> list[dict[str, Any]]: ...

    def services(
        self, cluster: str, names: Sequence[str]
    ) -> Mapping[str, ServiceObservation | AdapterError]: ...

    def mark(self, service_arn: str, key: str, value: str | None) -> None: ...

    def register(self, body: Mapping[str, Any]) -> None: ...

    def deregister(self, body: Mapping[str, Any]) -> None: ...

    def put_policy(self, body: Mapping[str, Any]) -> str: ...

    def delete_policy(self, body: Mapping[str, Any]) -> None: ...


def read_actual(
    prefix: str,
    clusters: set[str],
    wanted: Sequence[Resource],
    alarms: AlarmStore,
    fallback: FallbackStore,
) -> Actual:
    """What exists under this controller's names: its own, and others' in the way.

    Scalable targets are looked at in `clusters` only (the pools' clusters), so a removed
    pool's target is found while other teams' services elsewhere are never read.
    Raises AdapterError, also when the service of a wanted target cannot be read.
    """
    resources: list[Resource] = []
    foreign: set[tuple[str, str, str]] = set()
    for described, tags in alarms.described(f"{prefix}/"):
        body = normalize_alarm(described)
        name = str(body["AlarmName"])
        if not owns_alarm(prefix, tags):
            foreign.add((Kind.ALARM.value, "", name))
            continue
        # The name says the pool (`<prefix>/<pool>/<slug>`, pool names have no `/`); the
        # pool tag is a label, and drift in it is repaired like any other.
        parts = name.removeprefix(f"{prefix}/").split("/")
        pool, slug = (parts[0], "/".join(parts[1:])) if len(parts) > 1 else (None, parts[0])
        resources.append(
            Resource(Kind.ALARM, name, pool, slug, body, tags, arn=str(described["AlarmArn"]))
        )

    registered = {str(t["ResourceId"]): t for t in fallback.targets()}
    wanted_targets = {r.name for r in wanted if r.kind is Kind.TARGET}
    looked_at = wanted_targets | {rid for rid in registered if _cluster(rid) in clusters}
    service_arns: dict[str, str] = {}
    arns: dict[PolicyRef, str] = {}
    for cluster in sorted({_cluster(rid) for rid in looked_at}):
        ids = sorted(rid for rid in looked_at if _cluster(rid) == cluster)
        observed = fallback.services(cluster, [rid.rpartition("/")[2] for rid in ids])
        for rid in ids:
            service = observed[rid.rpartition("/")[2]]
            if isinstance(service, AdapterError):
                if rid in wanted_targets:
                    raise service
                continue  # a removed pool's service that is gone: nothing to tell
            service_arns[rid] = service.arn
            if rid not in registered:
                continue
            pool = marked_pool(prefix, service.tags)
            if pool is None:
                foreign.add((Kind.TARGET.value, rid, rid))
                continue
            marker = {SCALABLE_TARGET: service.tags[SCALABLE_TARGET]}
            target = normalize_target(registered[rid])
            resources.append(
                Resource(Kind.TARGET, rid, pool, "target", target, marker, arn=service.arn)
            )
            for described_policy in fallback.policies(rid):
                policy = normalize_policy(described_policy)
                name = str(policy["PolicyName"])
                arns[PolicyRef(rid, name)] = str(described_policy["PolicyARN"])
                slug = name.removeprefix(f"{prefix}/{pool}/")
                resources.append(Resource(Kind.POLICY, name, pool, slug, policy))
    return Actual(tuple(resources), arns, frozenset(foreign), service_arns)


def _cluster(resource_id: str) -> str:
    return resource_id.split("/")[1]


def plan(
    config: Config,
    only: Sequence[WorkerPool] | None,
    alarms: AlarmStore,
    fallback: FallbackStore,
) -> tuple[tuple[Resource, ...], Actual, Plan]:
    """(wanted, actual, plan) for the configuration, or for `only` these pools."""
    wanted = desired(config, only)
    clusters = {_cluster(resource_id(pool)) for pool in config.pools}
    actual = read_actual(config.controller.alarms.name_prefix, clusters, wanted, alarms, fallback)
    if only is not None:
        actual = actual.of_pools(pool.name for pool in only)
    return wanted, actual, diff(wanted, actual)


def apply(
    planned: Plan,
    wanted: Sequence[Resource],
    actual: Actual,
    alarms: AlarmStore,
    fallback: FallbackStore,
    applied: Callable[[Change], None] = lambda change: None,
) -> None:
    """Make it so: targets and policies, then alarms (with the policies' ARNs as they are
    now), then what goes. `applied` hears of each change once it is done.

    Raises AdapterError at the first write that fails; what was done stays done, and the
    next plan shows what is left.
    """
    if planned.conflicts:
        raise ValueError("a plan with conflicts is not applied")
    existing = {resource.key: resource for resource in actual.resources}
    arns = dict(actual.policy_arns)

    def write(change: Change) -> None:
        resource, before = change.resource, existing.get(change.resource.key)
        match resource.kind, change.op:
            case Kind.TARGET, Op.DELETE:
                fallback.deregister(resource.body)
                fallback.mark(resource.arn, SCALABLE_TARGET, None)
            case Kind.TARGET, _:
                marker = resource.tags[SCALABLE_TARGET]
                if before is None or before.tags.get(SCALABLE_TARGET) != marker:
                    # The mark first: a target registered and never marked would be foreign.
                    fallback.mark(actual.service_arns[resource.name], SCALABLE_TARGET, marker)
                if before is None or before.body != resource.body:
                    fallback.register(resource.body)
            case Kind.POLICY, Op.DELETE:
                fallback.delete_policy(resource.body)
            case Kind.POLICY, _:
                arns[resource.ref] = fallback.put_policy(resource.body)
            case Kind.ALARM, Op.DELETE:
                alarms.delete([resource.name])
            case Kind.ALARM, _:
                alarms.put(wanted_body(resource, arns), resource.tags)
                if before is not None and any(f.path.startswith("Tags.") for f in change.fields):
                    alarms.tag(before.arn, resource.tags)
        applied(change)

    for change in planned.changes:
        if change.resource.kind is not Kind.ALARM and change.op is not Op.DELETE:
            write(change)
    # Alarms against the ARNs as they are now: a policy written above may have a new one.
    own_alarms = tuple(r for r in actual.resources if r.kind is Kind.ALARM)
    alarm_plan = diff(
        [r for r in wanted if r.kind is Kind.ALARM],
        Actual(own_alarms, arns, actual.foreign, actual.service_arns),
    )
    for change in alarm_plan.changes:
        write(change)
    for change in planned.changes:
        if change.resource.kind is not Kind.ALARM and change.op is Op.DELETE:
            write(change)
