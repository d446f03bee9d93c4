"""What each AWS adapter declares it calls, for the least-privilege IAM policy (pure).

Each AWS adapter carries `iam_actions`, an action → `IamResource` mapping, beside the
code that makes those calls; `celery_scaler.iam` turns the declarations of the adapters
a configuration uses into a policy document.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar, Protocol


class IamResource(StrEnum):
    """What an AWS call acts on, as far as IAM can tell."""

    ECS_SERVICE = "ecs-services"
    """Each pool's ECS service."""
    ECS_SERVICE_STATE_TAGS = "ecs-service-state-tags"
    """The controller's own `celery-scaler.io/` tags on each pool's ECS service."""
    ECS_CLUSTER = "ecs-clusters"
    """Any resource, on the condition that `ecs:cluster` is one of the pools' clusters."""
    ECS_TASK = "ecs-tasks"
    """The tasks of the pools' clusters."""
    SQS_QUEUE = "sqs-queues"
    """The SQS queues of the pools' Celery queues."""
    LEASE_TABLE = "lease-table"
    """The leader-election DynamoDB table."""
    METRIC_NAMESPACE = "metric-namespace"
    """Any resource, on the condition that `cloudwatch:namespace` is the controller's."""
    ANY = "any-resource"
    """`*`: the action takes no resource and no condition key that could narrow it."""
    MANAGED_ALARMS = "managed-alarms"
    """The CloudWatch alarms named with the controller's `alarms.namePrefix`."""
    ECS_CLUSTER_SERVICES = "ecs-cluster-services"
    """Every service of the pools' clusters (a removed pool's too)."""
    ECS_CLUSTER_SERVICE_STATE_TAGS = "ecs-cluster-service-state-tags"
    """The controller's own `celery-scaler.io/` tags on every service of the pools' clusters."""
    ECS_SCALABLE_TARGETS = "ecs-scalable-targets"
    """Application Auto Scaling targets, on the condition that they are ECS services' desired
    counts: never a DynamoDB table's, an Aurora cluster's or a Lambda's in the same account."""
    AUTO_SCALING_SERVICE_ROLE = "auto-scaling-service-role"
    """Application Auto Scaling's service-linked role for ECS, which the first
    RegisterScalableTarget in an account creates on the caller's behalf."""


IamActions = Mapping[str, IamResource]

IMPLIED_ACTIONS = frozenset({"iam:CreateServiceLinkedRole"})
"""Actions AWS checks on the caller's behalf inside another call (RegisterScalableTarget
creates its service-linked role): declared, yet no request of the adapter names them."""


class DeclaresIam(Protocol):
    iam_actions: ClassVar[IamActions]


class Tool(StrEnum):
    """Commands people run beside the controller that need permissions of their own."""

    REPORT = "report"
    ALARMS = "alarms"
    TAKEOVER = "takeover"
