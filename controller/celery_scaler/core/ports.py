"""The small interfaces the reconcile pass talks through; one adapter implements each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from celery_scaler.core.config import WorkerPool
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import (
    BrokerObservation,
    ScalableTarget,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.core.protection import TaskInfo


class QueueDepthSource(Protocol):
    def observe(self, queues: Sequence[str]) -> BrokerObservation:
        """Depth (and, where the broker can tell, latency) of these queues; raises AdapterError."""
        ...


ExpectedWorkers = Mapping[frozenset[str], int]
"""A pool's queues → how many workers consuming one of them should answer (ECS's running
count). Pools listing the same queues share one entry, their counts summed."""


class WorkerInspector(Protocol):
    def inspect(self, expected: ExpectedWorkers) -> tuple[WorkerSnapshot, ...]:
        """Every worker that answered this round; raises AdapterError when the broker fails.

        The round stops waiting once each pool has heard from as many of its own workers
        (consuming one of its queues) as `expected` says, and every worker seen last round
        has replied; otherwise it waits its whole timeout. Other workers on the same
        broker and control exchange answer too, and are returned, but count for no pool.
        """
        ...


class ServiceClient(Protocol):
    def describe(self, cluster: str, service: str) -> ServiceObservation:
        """The service's counts and rollout state; raises AdapterError."""
        ...

    def describe_many(
        self, cluster: str, services: Sequence[str]
    ) -> Mapping[str, ServiceObservation | AdapterError]:
        """Each service's observation or the error that kept it from being read."""
        ...

    def set_desired_count(self, cluster: str, service: str, count: int) -> None:
        """UpdateService; raises AdapterError when the write did not happen."""
        ...

    def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None:
        """Set and remove tags on the service; raises AdapterError."""
        ...


class ScalingSource(Protocol):
    """Application Auto Scaling, read to find autoscalers the controller would fight."""

    def scalable_targets(self) -> Mapping[str, ScalableTarget]:
        """Every ECS service's scalable target with its policies, by resource id
        (`service/CLUSTER/SERVICE`); raises AdapterError."""
        ...


class Election(Protocol):
    """Which pools this replica reconciles, when several replicas share the work."""

    def elect(self, pools: Sequence[WorkerPool]) -> list[WorkerPool]:
        """The pools this replica holds for this pass; raises AdapterError."""
        ...

    def holds(self, pool: str) -> bool:
        """Fencing check right before a write: whether the pool's lease is still ours."""
        ...

    def release_all(self) -> None:
        """Hand every lease back at shutdown."""
        ...


class TaskProtector(Protocol):
    """ECS task scale-in protection (see protection.py)."""

    def tasks(self, cluster: str, service: str) -> list[TaskInfo]: ...

    def protected_until(self, cluster: str, arns: Sequence[str]) -> dict[str, float]: ...

    def set_protection(
        self, cluster: str, arns: Sequence[str], enabled: bool, minutes: int = 60
    ) -> None: ...


class ConsumerControl(Protocol):
    """Which queues a worker consumes, through Celery's remote control (core/drain.py)."""

    def set_consuming(self, workers: Sequence[str], queues: Sequence[str], consuming: bool) -> None:
        """Tell exactly `workers` to stop (`cancel_consumer`) or resume (`add_consumer`)
        consuming `queues`; raises AdapterError naming the workers that did not confirm."""
        ...
