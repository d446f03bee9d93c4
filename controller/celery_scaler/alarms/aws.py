"""Adapters for `alarms plan|apply`: CloudWatch alarms, and Application Auto Scaling of ECS.

Thin: they read and write AWS's shapes; what is owned, what differs and in which
order to write is desired.py's and sync.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celery_scaler.adapters.autoscaling import ScalableTargets
from celery_scaler.adapters.aws import AWS_ERRORS, describe_aws_error
from celery_scaler.adapters.ecs import EcsService
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import ServiceObservation

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import TagTypeDef

DELETE_BATCH = 100
"""DeleteAlarms takes at most 100 names per call."""


def _tags(tags: Mapping[str, str]) -> list[TagTypeDef]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


class CloudWatchAlarms:
    """The metric alarms whose names start with a prefix, with their tags."""

    iam_actions: ClassVar[IamActions] = {
        # DescribeAlarms filters by name prefix; it cannot be scoped to ARNs ahead of time.
        "cloudwatch:DescribeAlarms": IamResource.ANY,
        "cloudwatch:ListTagsForResource": IamResource.MANAGED_ALARMS,
        "cloudwatch:PutMetricAlarm": IamResource.MANAGED_ALARMS,
        "cloudwatch:TagResource": IamResource.MANAGED_ALARMS,
        "cloudwatch:DeleteAlarms": IamResource.MANAGED_ALARMS,
    }

    def __init__(self, client: CloudWatchClient) -> None:
        self._client = client

    def described(self, name_prefix: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """Each metric alarm named `name_prefix…` (a DescribeAlarms entry) and its tags."""
        found = []
        try:
            pages = self._client.get_paginator("describe_alarms").paginate(
                AlarmNamePrefix=name_prefix, AlarmTypes=["MetricAlarm"]
            )
            for page in pages:
                for alarm in page.get("MetricAlarms", []):
                    tags = self._client.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])
                    found.append(
                        (
                            dict(alarm),
                            {tag["Key"]: tag["Value"] for tag in tags.get("Tags", [])},
                        )
                    )
        except AWS_ERRORS as exc:
            raise describe_aws_error("CloudWatch DescribeAlarms", exc) from None
        return found

    def put(self, body: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        """PutMetricAlarm: creates, or replaces the whole definition (its tags are kept)."""
        try:
            self._client.put_metric_alarm(**body, Tags=_tags(tags))
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                f"CloudWatch PutMetricAlarm {body['AlarmName']}", exc
            ) from None

    def tag(self, arn: str, tags: Mapping[str, str]) -> None:
        """PutMetricAlarm ignores the tags of an alarm that exists: they are set here."""
        try:
            self._client.tag_resource(ResourceARN=arn, Tags=_tags(tags))
        except AWS_ERRORS as exc:
            raise describe_aws_error("CloudWatch TagResource", exc) from None

    def delete(self, names: Sequence[str]) -> None:
        try:
            for start in range(0, len(names), DELETE_BATCH):
                self._client.delete_alarms(AlarmNames=list(names[start : start + DELETE_BATCH]))
        except AWS_ERRORS as exc:
            raise describe_aws_error("CloudWatch DeleteAlarms", exc) from None


class AutoScalingFallback(ScalableTargets):
    """Scalable targets and step policies of ECS services, and the service tag that says
    which of them this controller owns (Application Auto Scaling keeps no tags that
    every implementation of its API can read back; operator state lives on the service, see
    docs/faults.md). The reads are `ScalableTargets`'."""

    iam_actions: ClassVar[IamActions] = {
        **ScalableTargets.iam_actions,
        # Scalable target ARNs are random ids, unknown before registration: the writes are
        # held to ECS services' desired counts by condition instead.
        "application-autoscaling:RegisterScalableTarget": IamResource.ECS_SCALABLE_TARGETS,
        "application-autoscaling:DeregisterScalableTarget": IamResource.ECS_SCALABLE_TARGETS,
        "application-autoscaling:PutScalingPolicy": IamResource.ECS_SCALABLE_TARGETS,
        "application-autoscaling:DeleteScalingPolicy": IamResource.ECS_SCALABLE_TARGETS,
        "iam:CreateServiceLinkedRole": IamResource.AUTO_SCALING_SERVICE_ROLE,
        # The ownership tag, read and written through EcsService, on any service of the
        # pools' clusters: a removed pool's target is found and released too.
        "ecs:DescribeServices": IamResource.ECS_CLUSTER_SERVICES,
        "ecs:TagResource": IamResource.ECS_CLUSTER_SERVICE_STATE_TAGS,
        "ecs:UntagResource": IamResource.ECS_CLUSTER_SERVICE_STATE_TAGS,
    }

    def __init__(self, client: ApplicationAutoScalingClient, ecs: EcsService) -> None:
        super().__init__(client)
        self._ecs = ecs

    def services(
        self, cluster: str, names: Sequence[str]
    ) -> Mapping[str, ServiceObservation | AdapterError]:
        return self._ecs.describe_many(cluster, names)

    def mark(self, service_arn: str, key: str, value: str | None) -> None:
        """Set the ownership tag on the service, or remove it (None)."""
        if value is None:
            self._ecs.write_tags(service_arn, {}, [key])
        else:
            self._ecs.write_tags(service_arn, {key: value}, [])

    def register(self, body: Mapping[str, Any]) -> None:
        try:
            self._client.register_scalable_target(**body)
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                f"Application Auto Scaling RegisterScalableTarget {body['ResourceId']}", exc
            ) from None

    def deregister(self, body: Mapping[str, Any]) -> None:
        try:
            self._client.deregister_scalable_target(
                ServiceNamespace=body["ServiceNamespace"],
                ResourceId=body["ResourceId"],
                ScalableDimension=body["ScalableDimension"],
            )
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                f"Application Auto Scaling DeregisterScalableTarget {body['ResourceId']}", exc
            ) from None

    def put_policy(self, body: Mapping[str, Any]) -> str:
        """PutScalingPolicy; the policy's ARN."""
        try:
            return self._client.put_scaling_policy(**body)["PolicyARN"]
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                f"Application Auto Scaling PutScalingPolicy {body['PolicyName']}", exc
            ) from None

    def delete_policy(self, body: Mapping[str, Any]) -> None:
        try:
            self._client.delete_scaling_policy(
                PolicyName=body["PolicyName"],
                ServiceNamespace=body["ServiceNamespace"],
                ResourceId=body["ResourceId"],
                ScalableDimension=body["ScalableDimension"],
            )
        except AWS_ERRORS as exc:
            raise describe_aws_error(
                f"Application Auto Scaling DeleteScalingPolicy {body['PolicyName']}", exc
            ) from None
