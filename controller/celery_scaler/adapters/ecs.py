"""ECS adapter: read a service's counts and rollout state, set its desired count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celery_scaler.adapters.aws import AWS_ERRORS, describe_aws_error
from celery_scaler.adapters.permissions import IamActions, IamResource
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import ServiceObservation
from celery_scaler.core.protection import TaskInfo

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient


DESCRIBE_BATCH = 10
"""DescribeServices takes at most 10 services per call."""


def _observation(described: Any) -> ServiceObservation:
    deployments = described.get("deployments", [])
    deploying = len(deployments) > 1 or any(
        deployment.get("rolloutState") == "IN_PROGRESS" for deployment in deployments
    )
    created = [d["createdAt"].timestamp() for d in deployments if d.get("createdAt")]
    return ServiceObservation(
        desired=described.get("desiredCount", 0),
        running=described.get("runningCount", 0),
        pending=described.get("pendingCount", 0),
        deploying=deploying,
        tags={
            tag["key"]: tag.get("value", "") for tag in described.get("tags", []) if "key" in tag
        },
        arn=described.get("serviceArn", ""),
        deployment_started=max(created) if deploying and created else None,
    )


class EcsService:
    """`ServiceClient` over boto3's ECS client."""

    iam_actions: ClassVar[IamActions] = {
        "ecs:DescribeServices": IamResource.ECS_SERVICE,
        "ecs:UpdateService": IamResource.ECS_SERVICE,
        "ecs:TagResource": IamResource.ECS_SERVICE_STATE_TAGS,
        "ecs:UntagResource": IamResource.ECS_SERVICE_STATE_TAGS,
    }

    def __init__(self, client: ECSClient) -> None:
        self._client = client

    def describe(self, cluster: str, service: str) -> ServiceObservation:
        found = self.describe_many(cluster, [service])[service]
        if isinstance(found, AdapterError):
            raise found
        return found

    def describe_many(
        self, cluster: str, services: Sequence[str]
    ) -> dict[str, ServiceObservation | AdapterError]:
        """Each service's observation, or the error that kept it from being read."""
        results: dict[str, ServiceObservation | AdapterError] = {}
        names = list(dict.fromkeys(services))
        for start in range(0, len(names), DESCRIBE_BATCH):
            batch = names[start : start + DESCRIBE_BATCH]
            try:
                response = self._client.describe_services(
                    cluster=cluster, services=batch, include=["TAGS"]
                )
            except AWS_ERRORS as exc:
                error = describe_aws_error("ECS DescribeServices", exc)
                results.update(dict.fromkeys(batch, error))
                continue
            active = {
                s.get("serviceName", ""): s
                for s in response.get("services", [])
                if s.get("status") == "ACTIVE"
            }
            reasons = {
                failure.get("arn", "").rpartition("/")[2]: failure.get("reason", "MISSING")
                for failure in response.get("failures", [])
            }
            for name in batch:
                if name in active:
                    results[name] = _observation(active[name])
                else:
                    why = reasons.get(name, "not ACTIVE")
                    results[name] = AdapterError(
                        f"ECS service {name!r} in cluster {cluster!r}: {why}"
                    )
        return results

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


class EcsTaskProtection:
    """ECS task scale-in protection for the tasks of a service."""

    iam_actions: ClassVar[IamActions] = {
        "ecs:ListTasks": IamResource.ECS_CLUSTER,
        "ecs:DescribeTasks": IamResource.ECS_TASK,
        "ecs:GetTaskProtection": IamResource.ECS_TASK,
        "ecs:UpdateTaskProtection": IamResource.ECS_TASK,
    }

    def __init__(self, client: ECSClient) -> None:
        self._client = client

    def tasks(self, cluster: str, service: str) -> list[TaskInfo]:
        """The service's running tasks with their private addresses and host names."""
        try:
            arns: list[str] = []
            for page in self._client.get_paginator("list_tasks").paginate(
                cluster=cluster, serviceName=service, desiredStatus="RUNNING"
            ):
                arns.extend(page.get("taskArns", []))
            described = []
            for start in range(0, len(arns), 100):
                response = self._client.describe_tasks(
                    cluster=cluster, tasks=arns[start : start + 100]
                )
                described.extend(response.get("tasks", []))
        except AWS_ERRORS as exc:
            raise describe_aws_error("ECS ListTasks/DescribeTasks", exc) from None
        return [_task_info(task) for task in described if "taskArn" in task]

    def protected_until(self, cluster: str, arns: Sequence[str]) -> dict[str, float]:
        """Task ARN → when its protection ends, for the protected ones."""
        until: dict[str, float] = {}
        try:
            for start in range(0, len(arns), 100):
                response = self._client.get_task_protection(
                    cluster=cluster, tasks=list(arns[start : start + 100])
                )
                for task in response.get("protectedTasks", []):
                    if task.get("protectionEnabled") and "taskArn" in task:
                        expires = task.get("expirationDate")
                        until[task["taskArn"]] = expires.timestamp() if expires else float("inf")
        except AWS_ERRORS as exc:
            raise describe_aws_error("ECS GetTaskProtection", exc) from None
        return until

    def set_protection(
        self, cluster: str, arns: Sequence[str], enabled: bool, minutes: int = 60
    ) -> None:
        try:
            for start in range(0, len(arns), PROTECTION_BATCH):
                batch = list(arns[start : start + PROTECTION_BATCH])
                if enabled:
                    response = self._client.update_task_protection(
                        cluster=cluster,
                        tasks=batch,
                        protectionEnabled=True,
                        expiresInMinutes=minutes,
                    )
                else:
                    response = self._client.update_task_protection(
                        cluster=cluster, tasks=batch, protectionEnabled=False
                    )
                failures = response.get("failures", [])
                if failures:
                    reasons = ", ".join(f"{f.get('arn')}: {f.get('reason')}" for f in failures)
                    raise AdapterError(f"ECS UpdateTaskProtection failed for {reasons}")
        except AWS_ERRORS as exc:
            raise describe_aws_error("ECS UpdateTaskProtection", exc) from None


PROTECTION_BATCH = 10
"""UpdateTaskProtection takes at most 10 tasks per call."""


def _task_info(task: Any) -> TaskInfo:
    addresses: set[str] = set()
    hostnames: set[str] = set()
    for attachment in task.get("attachments", []):
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address":
                addresses.add(detail.get("value", ""))
            elif detail.get("name") == "privateDnsName":
                hostnames.add(detail.get("value", ""))
    for container in task.get("containers", []):
        for interface in container.get("networkInterfaces", []):
            if "privateIpv4Address" in interface:
                addresses.add(interface["privateIpv4Address"])
    return TaskInfo(task["taskArn"], frozenset(addresses - {""}), frozenset(hostnames - {""}))
