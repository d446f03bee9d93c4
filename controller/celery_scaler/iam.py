"""The least-privilege IAM policy for a configuration (pure).

Each AWS adapter declares, beside its code, the IAM actions it calls and what each one
acts on (`iam_actions`, an action → `IamResource` mapping, in `adapters.permissions`).
The composition root's `aws_adapters` says which adapters a configuration uses; this
module turns each kind of resource into the ARNs and conditions of the configured
clusters, services, queues, table and namespace.

Scoping follows the Service Authorization Reference: ECS DescribeServices,
UpdateService, TagResource and UntagResource take service ARNs; DescribeTasks,
GetTaskProtection and UpdateTaskProtection take task ARNs (which carry the cluster
name); ListTasks takes no resource the controller can name, so it is allowed on `*`
under the `ecs:cluster` condition; PutMetricData takes no resource but the
`cloudwatch:namespace` condition; GetMetricData takes neither.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery_scaler.adapters.permissions import DeclaresIam, IamResource
from celery_scaler.core.autoscaling import DESIRED_COUNT
from celery_scaler.core.config import Config, WorkerPool
from celery_scaler.core.names import sqs_queue_name
from celery_scaler.core.state import PREFIX

POLICY_VERSION = "2012-10-17"
AUTO_SCALING_ECS_PRINCIPAL = "ecs.application-autoscaling.amazonaws.com"
AUTO_SCALING_ECS_ROLE = "AWSServiceRoleForApplicationAutoScaling_ECSService"


@dataclass(frozen=True)
class Grant:
    """An adapter the configuration uses, and the pools it acts for."""

    adapter: type[DeclaresIam]
    pools: tuple[WorkerPool, ...]


@dataclass(frozen=True)
class Where:
    """Partition, region and account that ARNs name; `*` where not known."""

    partition: str = "aws"
    region: str = "*"
    account: str = "*"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


ACCOUNT_ID = re.compile(r"^(\d{12}|\*)$")


def where(region: str | None, account: str | None) -> Where:
    """ARN parts for a region and account; the partition follows the region."""
    if account is not None and not ACCOUNT_ID.match(account):
        raise ValueError(f"an AWS account id is 12 digits, got {account!r}")
    region = region or "*"
    partition = "aws"
    if region.startswith("cn-"):
        partition = "aws-cn"
    elif region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return Where(partition, region, account or "*")


def _cluster(place: Where, cluster: str) -> tuple[Where, str]:
    """A cluster's name, and where it lives when the configuration gives its ARN."""
    parts = cluster.split(":", 5)
    if cluster.startswith("arn:") and len(parts) == 6:
        return Where(parts[1], parts[3], parts[4]), parts[5].rpartition("/")[2]
    return place, cluster


def _service_arn(place: Where, pool: WorkerPool) -> str:
    home, cluster = _cluster(place, pool.spec.ecs.cluster)
    service = pool.spec.ecs.service
    return (
        service if service.startswith("arn:") else home.arn("ecs", f"service/{cluster}/{service}")
    )


def _scope(
    resource: IamResource, pools: Sequence[WorkerPool], config: Config, place: Where
) -> tuple[list[str], dict[str, Any]]:
    """(Resource, Condition) of a statement about `resource`."""
    clusters = [_cluster(place, cluster) for cluster in {pool.spec.ecs.cluster for pool in pools}]
    services = sorted({_service_arn(place, pool) for pool in pools})
    controller = config.controller
    match resource:
        case IamResource.ECS_SERVICE:
            return services, {}
        case IamResource.ECS_SERVICE_STATE_TAGS:
            return services, {"ForAllValues:StringLike": {"aws:TagKeys": [f"{PREFIX}*"]}}
        case IamResource.ECS_CLUSTER:
            arns = sorted(home.arn("ecs", f"cluster/{name}") for home, name in clusters)
            return ["*"], {"ArnEquals": {"ecs:cluster": arns}}
        case IamResource.ECS_TASK:
            return sorted(home.arn("ecs", f"task/{name}/*") for home, name in clusters), {}
        case IamResource.SQS_QUEUE:
            prefix = controller.sqs_queue_name_prefix
            names = {sqs_queue_name(queue, prefix) for pool in pools for queue in pool.spec.queues}
            return sorted(place.arn("sqs", name) for name in names), {}
        case IamResource.LEASE_TABLE:
            table = controller.leader_election.table
            return [place.arn("dynamodb", f"table/{table}")], {}
        case IamResource.METRIC_NAMESPACE:
            namespace = controller.cloudwatch.namespace
            return ["*"], {"StringEquals": {"cloudwatch:namespace": namespace}}
        case IamResource.ANY:
            return ["*"], {}
        case IamResource.MANAGED_ALARMS:
            return [place.arn("cloudwatch", f"alarm:{controller.alarms.name_prefix}/*")], {}
        case IamResource.ECS_CLUSTER_SERVICES:
            return sorted(home.arn("ecs", f"service/{name}/*") for home, name in clusters), {}
        case IamResource.ECS_SCALABLE_TARGETS:
            return [place.arn("application-autoscaling", "scalable-target/*")], {
                "StringEquals": {
                    "application-autoscaling:service-namespace": "ecs",
                    "application-autoscaling:scalable-dimension": DESIRED_COUNT,
                }
            }
        case IamResource.AUTO_SCALING_SERVICE_ROLE:
            # IAM is global: its ARNs name no region.
            role = f"role/aws-service-role/{AUTO_SCALING_ECS_PRINCIPAL}/{AUTO_SCALING_ECS_ROLE}"
            return [f"arn:{place.partition}:iam::{place.account}:{role}"], {
                "StringLike": {"iam:AWSServiceName": AUTO_SCALING_ECS_PRINCIPAL}
            }
        case IamResource.ECS_CLUSTER_SERVICE_STATE_TAGS:
            arns = sorted(home.arn("ecs", f"service/{name}/*") for home, name in clusters)
            return arns, {"ForAllValues:StringLike": {"aws:TagKeys": [f"{PREFIX}*"]}}


def _sid(resource: IamResource) -> str:
    return "".join(word.capitalize() for word in resource.value.split("-"))


def policy(config: Config, found: Sequence[Grant], place: Where = Where()) -> dict[str, Any]:
    """The IAM policy document allowing exactly the grants' actions on their resources."""
    statements: dict[str, dict[str, Any]] = {}
    for grant in found:
        for action, resource in grant.adapter.iam_actions.items():
            resources, condition = _scope(resource, grant.pools, config, place)
            key = json.dumps([resource.value, resources, condition], sort_keys=True)
            statement = statements.setdefault(
                key,
                {"Sid": _sid(resource), "Effect": "Allow", "Action": [], "Resource": resources},
            )
            if condition:
                statement["Condition"] = condition
            if action not in statement["Action"]:
                statement["Action"].append(action)
    ordered = sorted(statements.values(), key=lambda s: (s["Sid"], json.dumps(s, sort_keys=True)))
    seen: dict[str, int] = {}
    for statement in ordered:
        statement["Action"].sort()
        count = seen[statement["Sid"]] = seen.get(statement["Sid"], 0) + 1
        if count > 1:
            statement["Sid"] += str(count)
    return {"Version": POLICY_VERSION, "Statement": ordered}


def actions(document: Mapping[str, Any]) -> set[str]:
    """Every action a policy document allows."""
    return {action for statement in document["Statement"] for action in statement["Action"]}


MANAGED_POLICY_CHARACTERS = 6144
"""IAM's limit for a managed policy; a role's inline policies share 10,240."""


def size(document: Mapping[str, Any]) -> int:
    """Characters IAM counts against its limits: the JSON less its white space."""
    return len(json.dumps(document, separators=(",", ":")).replace(" ", ""))
