"""Application Auto Scaling of ECS services: read the scalable targets and their policies,
and suspend or resume a target's dynamic scaling.

Thin: what is foreign and what to suspend is core/autoscaling.py's and
alarms/takeover.py's; `alarms apply`'s writes are alarms/aws.py's, on top of this reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celery_scaler.adapters.aws import AWS_ERRORS, describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.core.autoscaling import DESIRED_COUNT, ECS_NAMESPACE
from celery_scaler.core.model import ScalableTarget, ScalingPolicy

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient


class ScalableTargets:
    """The ECS scalable targets of the region and their scaling policies (`ScalingSource`)."""

    iam_actions: ClassVar[IamActions] = {
        # The Describe calls take no resource and no condition key: `*`.
        "application-autoscaling:DescribeScalableTargets": IamResource.ANY,
        "application-autoscaling:DescribeScalingPolicies": IamResource.ANY,
    }

    def __init__(self, client: ApplicationAutoScalingClient) -> None:
        self._client = client

    def targets(self, resource_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every ECS service's scalable target in the region (or these resource ids'), as
        DescribeScalableTargets says."""
        try:
            paginator = self._client.get_paginator("describe_scalable_targets")
            pages = (
                paginator.paginate(ServiceNamespace=ECS_NAMESPACE, ResourceIds=list(resource_ids))
                if resource_ids
                else paginator.paginate(ServiceNamespace=ECS_NAMESPACE)
            )
            return [dict(t) for page in pages for t in page.get("ScalableTargets", [])]
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                "Application Auto Scaling DescribeScalableTargets", exc
            ) from None

    def policies(self, resource_id: str | None = None) -> list[dict[str, Any]]:
        """The scaling policies of one ECS service's target, or (None) of every ECS target."""
        try:
            paginator = self._client.get_paginator("describe_scaling_policies")
            pages = (
                paginator.paginate(ServiceNamespace=ECS_NAMESPACE, ResourceId=resource_id)
                if resource_id is not None
                else paginator.paginate(ServiceNamespace=ECS_NAMESPACE)
            )
            return [dict(p) for page in pages for p in page.get("ScalingPolicies", [])]
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                "Application Auto Scaling DescribeScalingPolicies", exc
            ) from None

    def scalable_targets(self) -> dict[str, ScalableTarget]:
        """Every ECS service's desired-count target with its policies, by resource id.

        Two paginated reads for the whole region (50 targets or policies a page), however
        many pools there are: the reconcile pass calls this, not one read per pool.
        """
        policies: dict[str, list[ScalingPolicy]] = {}
        for policy in self.policies():
            if policy.get("ScalableDimension") == DESIRED_COUNT:
                policies.setdefault(str(policy["ResourceId"]), []).append(scaling_policy(policy))
        return {
            str(target["ResourceId"]): scalable_target(
                target, policies.get(str(target["ResourceId"]), [])
            )
            for target in self.targets()
            if target.get("ScalableDimension") == DESIRED_COUNT
        }

    def target(self, resource_id: str) -> ScalableTarget | None:
        """One ECS service's desired-count target with its policies; None if it has none."""
        found = [
            t for t in self.targets([resource_id]) if t.get("ScalableDimension") == DESIRED_COUNT
        ]
        if not found:
            return None
        policies = [
            scaling_policy(policy)
            for policy in self.policies(resource_id)
            if policy.get("ScalableDimension") == DESIRED_COUNT
        ]
        return scalable_target(found[0], policies)


def scaling_policy(policy: Mapping[str, Any]) -> ScalingPolicy:
    """A DescribeScalingPolicies entry as the core sees it."""
    return ScalingPolicy(
        name=str(policy["PolicyName"]),
        policy_type=str(policy.get("PolicyType", "")),
        alarms=tuple(str(alarm["AlarmName"]) for alarm in policy.get("Alarms", [])),
    )


def scalable_target(target: Mapping[str, Any], policies: list[ScalingPolicy]) -> ScalableTarget:
    """A DescribeScalableTargets entry and its policies as the core sees them."""
    suspended = target.get("SuspendedState") or {}
    return ScalableTarget(
        resource_id=str(target["ResourceId"]),
        min_capacity=int(target.get("MinCapacity", 0)),
        max_capacity=int(target.get("MaxCapacity", 0)),
        scale_in_suspended=bool(suspended.get("DynamicScalingInSuspended", False)),
        scale_out_suspended=bool(suspended.get("DynamicScalingOutSuspended", False)),
        scheduled_suspended=bool(suspended.get("ScheduledScalingSuspended", False)),
        policies=tuple(policies),
    )


class ScalingSuspension(ScalableTargets):
    """The reader, and RegisterScalableTarget of a SuspendedState alone (`takeover`)."""

    iam_actions: ClassVar[IamActions] = {
        **ScalableTargets.iam_actions,
        # Held to ECS services' desired counts by condition: target ARNs are random ids.
        "application-autoscaling:RegisterScalableTarget": IamResource.ECS_SCALABLE_TARGETS,
    }

    def set_suspended(self, target: ScalableTarget, scale_in: bool, scale_out: bool) -> None:
        """Suspend or resume the target's dynamic scaling; everything else is kept.

        Without MinCapacity and MaxCapacity, RegisterScalableTarget updates only what it
        is given. All three SuspendedState fields are sent, scheduled scaling as it is, so
        nothing depends on how AWS treats a field left out.
        """
        try:
            self._client.register_scalable_target(
                ServiceNamespace=ECS_NAMESPACE,
                ResourceId=target.resource_id,
                ScalableDimension=DESIRED_COUNT,
                SuspendedState={
                    "DynamicScalingInSuspended": scale_in,
                    "DynamicScalingOutSuspended": scale_out,
                    "ScheduledScalingSuspended": target.scheduled_suspended,
                },
            )
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                f"Application Auto Scaling RegisterScalableTarget {target.resource_id}", exc
            ) from None
