"""`celery-scaler takeover`: hand a pool's ECS service over from another autoscaler.

An Application Auto Scaling target with policies this controller did not create is a
conflict (core/autoscaling.py): the pool holds. Taking over suspends that target's
dynamic scaling, in and out, with RegisterScalableTarget's SuspendedState alone: the
policies and their alarms stay (the alarms keep alerting), MinCapacity and MaxCapacity
and scheduled scaling are left as they are. The state before is recorded on the ECS
service (`celery-scaler.io/takeover`) first, so `--undo` restores exactly it.

`plan` is pure; `read` and `apply` go through two small ports, so a dry run is the plan
alone and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from celery_scaler.core.autoscaling import (
    DESIRED_COUNT,
    ECS_NAMESPACE,
    TAKEOVER,
    marked_pool,
    parse_takeover,
    resource_id,
    takeover_tag,
)
from celery_scaler.core.config import WorkerPool
from celery_scaler.core.model import ScalableTarget, ServiceObservation


class TargetStore(Protocol):
    def target(self, resource_id: str) -> ScalableTarget | None:
        """The service's desired-count target with its policies; raises AdapterError."""
        ...

    def set_suspended(self, target: ScalableTarget, scale_in: bool, scale_out: bool) -> None: ...


class ServiceStore(Protocol):
    def describe(self, cluster: str, service: str) -> ServiceObservation: ...

    def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None: ...


Suspended = tuple[bool, bool]
"""(DynamicScalingInSuspended, DynamicScalingOutSuspended)."""


@dataclass(frozen=True)
class Takeover:
    """What `takeover` (or `takeover --undo`) does to one pool's service."""

    pool: str
    resource_id: str
    undo: bool
    target: ScalableTarget | None
    service_arn: str
    nothing: str | None = None
    """Why there is nothing to do; None when there is."""
    before: Suspended = (False, False)
    after: Suspended = (False, False)
    tag: str | None = None
    """The takeover tag to write first (a takeover not recorded yet)."""
    untag: bool = False
    """Remove the takeover tag once the target is restored (an undo)."""

    @property
    def changes_target(self) -> bool:
        return self.nothing is None and self.before != self.after


def read(
    pool: WorkerPool, targets: TargetStore, services: ServiceStore
) -> tuple[ScalableTarget | None, ServiceObservation]:
    """The pool's scalable target and its ECS service (for the tags); raises AdapterError."""
    service = services.describe(pool.spec.ecs.cluster, pool.spec.ecs.service)
    return targets.target(resource_id(pool.spec.ecs.cluster, pool.spec.ecs.service)), service


def plan(
    pool: WorkerPool,
    prefix: str,
    target: ScalableTarget | None,
    service: ServiceObservation,
    now: float,
    *,
    undo: bool = False,
) -> Takeover:
    """What to do so the controller alone drives the count (or, `undo`, so it no longer does).

    `prefix` is `alarms.namePrefix`: a target marked as this controller's own fallback
    is never touched. Nothing to do is not an error: a second run changes nothing.
    """
    rid = resource_id(pool.spec.ecs.cluster, pool.spec.ecs.service)
    base = Takeover(pool.name, rid, undo, target, service.arn)
    if target is None:
        return _nothing(base, f"{rid} has no Application Auto Scaling scalable target")
    if marked_pool(prefix, service.tags) is not None:
        return _nothing(base, f"{rid}'s scalable target is this controller's own fallback")
    now_state = (target.scale_in_suspended, target.scale_out_suspended)
    recorded = parse_takeover(service.tags.get(TAKEOVER))
    if undo:
        if recorded is None:
            return _nothing(base, f"no takeover is recorded on {rid} (tag {TAKEOVER})")
        return Takeover(
            pool.name, rid, undo, target, service.arn, before=now_state, after=recorded, untag=True
        )
    if not target.policies:
        return _nothing(base, f"{rid}'s scalable target has no scaling policy")
    if now_state == (True, True):
        return _nothing(base, f"{rid}'s dynamic scaling is already suspended, in and out")
    # A takeover already recorded keeps the state from before it: Terraform may have
    # resumed the target since, and undo must still restore what people had.
    when = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tag = None if recorded is not None else takeover_tag(*now_state, when)
    return Takeover(
        pool.name, rid, undo, target, service.arn, before=now_state, after=(True, True), tag=tag
    )


def _nothing(base: Takeover, why: str) -> Takeover:
    return Takeover(
        base.pool, base.resource_id, base.undo, base.target, base.service_arn, nothing=why
    )


def apply(takeover: Takeover, targets: TargetStore, services: ServiceStore) -> None:
    """Carry out the plan; raises AdapterError, leaving what was done.

    Taking over records the state before first: a stop between the two writes leaves a
    tag `--undo` can act on, never a suspended target with nothing to restore it from.
    Undoing restores first and removes the tag last, so a failed undo can be run again.
    """
    if takeover.nothing is not None or takeover.target is None:
        return
    if takeover.tag is not None:
        services.write_tags(takeover.service_arn, {TAKEOVER: takeover.tag}, [])
    if takeover.changes_target:
        targets.set_suspended(takeover.target, *takeover.after)
    if takeover.untag:
        services.write_tags(takeover.service_arn, {}, [TAKEOVER])


# --- what a person reads ---------------------------------------------------------------------


def describe(takeover: Takeover, *, applied: bool, region: str | None) -> list[str]:
    """What was found, what is (or would be) done, and how to undo it: one line each."""
    target = takeover.target
    if takeover.nothing is not None or target is None:
        return [f"nothing to do: {takeover.nothing}."]
    lines = [f"{takeover.resource_id}: {_policies(target)}."]
    verb = "" if applied else "would "
    state = _state(takeover.after)
    if takeover.tag is not None:
        lines.append(
            f"{verb}record the state before ({_state(takeover.before)}) on the ECS service: "
            f"tag {TAKEOVER}={takeover.tag}"
        )
    if takeover.changes_target:
        done = "suspended" if takeover.after == (True, True) else "restored"
        lines.append(
            f"{verb}register the scalable target with {state}: dynamic scaling {done}; "
            "policies, alarms, "
            "MinCapacity/MaxCapacity and scheduled scaling are left as they are"
        )
    else:
        lines.append(f"the scalable target already has {state}")
    if takeover.untag:
        lines.append(f"{verb}remove the tag {TAKEOVER} from the ECS service")
    if not applied:
        lines.append("dry run: nothing changed; run again with --apply to do it.")
    if not takeover.undo:
        lines.append(
            f"to undo: celery-scaler takeover --pool {takeover.pool} --undo --apply, or: "
            + aws_command(takeover.resource_id, takeover.before, target, region)
        )
        lines.append(
            "if Terraform manages this target, give its aws_appautoscaling_target "
            "suspended_state { dynamic_scaling_in_suspended = true, "
            "dynamic_scaling_out_suspended = true }, or the next terraform apply may resume it."
        )
    return lines


def aws_command(rid: str, suspended: Suspended, target: ScalableTarget, region: str | None) -> str:
    """The AWS CLI command that sets the target's SuspendedState to `suspended`."""
    where = f" --region {region}" if region else ""
    return (
        f"aws application-autoscaling register-scalable-target{where} "
        f"--service-namespace {ECS_NAMESPACE} --resource-id {rid} "
        f"--scalable-dimension {DESIRED_COUNT} --suspended-state "
        f"DynamicScalingInSuspended={str(suspended[0]).lower()},"
        f"DynamicScalingOutSuspended={str(suspended[1]).lower()},"
        f"ScheduledScalingSuspended={str(target.scheduled_suspended).lower()}"
    )


def _policies(target: ScalableTarget) -> str:
    named = []
    for policy in target.policies:
        alarms = f", triggered by {', '.join(policy.alarms)}" if policy.alarms else ""
        named.append(f"{policy.name} ({policy.policy_type}{alarms})")
    if not named:
        return "no scaling policy"
    noun = "scaling policy" if len(named) == 1 else "scaling policies"
    return f"{noun} {'; '.join(named)}, not created by celery-scaler"


def _state(suspended: Suspended) -> str:
    return (
        f"DynamicScalingInSuspended={str(suspended[0]).lower()}, "
        f"DynamicScalingOutSuspended={str(suspended[1]).lower()}"
    )
