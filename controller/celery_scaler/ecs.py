"""ECS adapter: read a service's counts and rollout state, set its desired count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .aws import AWS_ERRORS, describe_aws_error
from .model import ServiceObservation
from .ports import AdapterError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient


class EcsService:
    """`ServiceClient` over boto3's ECS client."""

    iam_actions = (
        "ecs:DescribeServices",
        "ecs:UpdateService",
        "ecs:TagResource",
        "ecs:UntagResource",
    )

    def __init__(self, client: ECSClient) -> None:
        self._client = client

    def describe(self, cluster: str, service: str) -> ServiceObservation:
        try:
            response = self._client.describe_services(
                cluster=cluster, services=[service], include=["TAGS"]
            )
        except AWS_ERRORS as exc:
            raise describe_aws_error("ECS DescribeServices", exc) from None
        found = [s for s in response.get("services", []) if s.get("status") == "ACTIVE"]
        if not found:
            reasons = {f.get("reason", "MISSING") for f in response.get("failures", [])}
            why = ", ".join(sorted(reasons)) or "not ACTIVE"
            raise AdapterError(f"ECS service {service!r} in cluster {cluster!r}: {why}")
        described = found[0]
        deployments = described.get("deployments", [])
        deploying = len(deployments) > 1 or any(
            deployment.get("rolloutState") == "IN_PROGRESS" for deployment in deployments
        )
        return ServiceObservation(
            desired=described.get("desiredCount", 0),
            running=described.get("runningCount", 0),
            pending=described.get("pendingCount", 0),
            deploying=deploying,
            tags={
                tag["key"]: tag.get("value", "")
                for tag in described.get("tags", [])
                if "key" in tag
            },
            arn=described.get("serviceArn", ""),
        )

    def set_desired_count(self, cluster: str, service: str, count: int) -> None:
        try:
            self._client.update_service(cluster=cluster, service=service, desiredCount=count)
        except AWS_ERRORS as exc:
            raise describe_aws_error("ECS UpdateService", exc) from None

    def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None:
        try:
            if tags:
                self._client.tag_resource(
                    resourceArn=arn, tags=[{"key": k, "value": v} for k, v in tags.items()]
                )
            if remove:
                self._client.untag_resource(resourceArn=arn, tagKeys=list(remove))
        except AWS_ERRORS as exc:
            raise describe_aws_error("ECS TagResource", exc) from None
