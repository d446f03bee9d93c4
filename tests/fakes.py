"""Hand-written fakes of the ports in celery_scaler.core.ports, one per port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from celery_scaler.core.config import WorkerPool
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import (
    BrokerObservation,
    ScalableTarget,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.core.protection import TaskInfo


@dataclass
class FakeBroker:
    """A QueueDepthSource: fixed depths per queue, or an AdapterError with `failing`."""

    depths: dict[str, int]
    failing: bool = False

    def observe(self, queues: Sequence[str]) -> BrokerObservation:
        if self.failing:
            raise AdapterError("cannot reach redis://:***@broker:6379/0")
        per_queue = {queue: self.depths.get(queue, 0) for queue in queues}
        return BrokerObservation(queue_depth=sum(per_queue.values()), per_queue=per_queue)


@dataclass
class FakeInspector:
    """A WorkerInspector: the same workers every round (each round's `expected` kept in
    `rounds`), or an AdapterError with `failing`."""

    workers: tuple[WorkerSnapshot, ...] = ()
    failing: bool = False
    rounds: list[Mapping[frozenset[str], int]] = field(default_factory=list)

    def inspect(self, expected: Mapping[frozenset[str], int]) -> tuple[WorkerSnapshot, ...]:
        self.rounds.append(expected)
        if self.failing:
            raise AdapterError("inspect failed: broker connection lost")
        return self.workers


@dataclass
class FakeEcs:
    """A ServiceClient: services by name with their desired counts and tags; writes are
    recorded in `writes`, and fail with `failing_writes` or `failing_tags`."""

    desired: dict[str, int]
    failing_writes: bool = False
    failing_tags: bool = False
    writes: list[tuple[str, int]] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def describe(self, cluster: str, service: str) -> ServiceObservation:
        if service not in self.desired:
            raise AdapterError(f"ECS service {service!r} in cluster {cluster!r}: MISSING")
        count = self.desired[service]
        return ServiceObservation(
            desired=count,
            running=count,
            pending=0,
            deploying=False,
            tags=dict(self.tags.get(service, {})),
            arn=service,
        )

    def describe_many(
        self, cluster: str, services: Sequence[str]
    ) -> dict[str, ServiceObservation | AdapterError]:
        results: dict[str, ServiceObservation | AdapterError] = {}
        for service in services:
            try:
                results[service] = self.describe(cluster, service)
            except AdapterError as exc:
                results[service] = exc
        return results

    def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None:
        if self.failing_tags:
            raise AdapterError("ECS TagResource failed: AccessDeniedException: not allowed")
        current = self.tags.setdefault(arn, {})
        current.update(tags)
        for key in remove:
            current.pop(key, None)

    def set_desired_count(self, cluster: str, service: str, count: int) -> None:
        if self.failing_writes:
            raise AdapterError("ECS UpdateService failed: ThrottlingException: Rate exceeded")
        self.writes.append((service, count))
        self.desired[service] = count


@dataclass
class FakeProtector:
    """A TaskProtector: one task per worker address; protection calls go to `calls`."""

    calls: list[str]
    tasks_by_worker: dict[str, str]
    reads: int = 0
    """How often the service's tasks were read."""

    def tasks(self, cluster: str, service: str) -> list[TaskInfo]:
        self.reads += 1
        return [TaskInfo(arn, frozenset({ip})) for ip, arn in self.tasks_by_worker.items()]

    protected: set[str] = field(default_factory=set)
    """The ARNs protected now (by anyone: a test may protect one itself)."""

    def protected_until(self, cluster: str, arns: Sequence[str]) -> dict[str, float]:
        return {arn: float("inf") for arn in arns if arn in self.protected}

    def set_protection(
        self, cluster: str, arns: Sequence[str], enabled: bool, minutes: int = 60
    ) -> None:
        self.calls.append(f"protect {','.join(arns)} {enabled} {minutes}m")
        if enabled:
            self.protected.update(arns)
        else:
            self.protected.difference_update(arns)


@dataclass
class FakeConsumers:
    """A ConsumerControl: what it was told goes to `calls`; fails with `failing`."""

    calls: list[str]
    failing: bool = False

    def set_consuming(self, workers: Sequence[str], queues: Sequence[str], consuming: bool) -> None:
        verb = "add_consumer" if consuming else "cancel_consumer"
        self.calls.append(f"{verb} {','.join(workers)} {','.join(queues)}")
        if self.failing:
            raise AdapterError(f"workers not confirmed: {workers[0]} did not answer")


@dataclass
class FakeElection:
    """An Election that elects every pool; its leases hold while `held`, and each fencing
    check is kept in `checks`."""

    held: bool = True
    checks: list[str] = field(default_factory=list)

    def elect(self, pools: Sequence[WorkerPool]) -> list[WorkerPool]:
        return list(pools)

    def holds(self, pool: str) -> bool:
        self.checks.append(pool)
        return self.held

    def release_all(self) -> None:
        pass


@dataclass
class FakeScaling:
    """A ScalingSource: fixed scalable targets by resource id, or an AdapterError with
    `failing`; each read is counted in `reads`."""

    targets: dict[str, ScalableTarget] = field(default_factory=dict)
    failing: bool = False
    reads: int = 0

    def scalable_targets(self) -> Mapping[str, ScalableTarget]:
        self.reads += 1
        if self.failing:
            raise AdapterError(
                "Application Auto Scaling DescribeScalableTargets failed: AccessDeniedException"
            )
        return dict(self.targets)
