"""One reconcile pass: observe every pool, decide with the pure policy, act on ECS."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from celery_scaler.core.autoscaling import foreign_scaling, resource_id
from celery_scaler.core.conditions import note_conditions
from celery_scaler.core.config import Config, WorkerPool
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.metrics import compute_metrics, workers_in_pool
from celery_scaler.core.model import (
    Action,
    BrokerObservation,
    Decision,
    Observation,
    PoolMemory,
    ScalableTarget,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.core.policy import after_scaling, before_scaling, plan_pass
from celery_scaler.core.ports import (
    ConsumerControl,
    Election,
    QueueDepthSource,
    ScalingSource,
    ServiceClient,
    TaskProtector,
    WorkerInspector,
)
from celery_scaler.core.state import memory_from_tags, tag_changes, tags_after
from celery_scaler.engine.guard import TaskGuard

T = TypeVar("T")

MAX_THREADS = 32
"""Pools reconciled at once; AWS calls dominate and release the GIL while they wait."""

DESCRIBE_CALL = 10
"""Services one ECS DescribeServices call takes. Each call is a task of its own: a
cluster's calls go out together rather than one after another (100 services are 10
calls), and a pool goes ahead once its own call is answered."""

Described = Future[Mapping[str, ServiceObservation | AdapterError]]
"""One DescribeServices call: each of its services' observation, or why it is missing."""

SCALING_REFRESH = 60.0
"""Seconds one read of Application Auto Scaling (every ECS target and policy of the region,
two paginated calls) serves the passes for: at 500 pools and 15 s passes that is about
20 requests a minute, not 2 per pool per pass. A foreign autoscaler added, or suspended by
`takeover`, shows within this much and one pass; a new process reads at its first pass."""


@dataclass(frozen=True)
class PoolResult:
    """What happened to one pool in one pass: the `--output json` line."""

    pool: str
    cluster: str
    service: str
    metric: str
    value: float | None
    current: int | None
    desired: int | None
    action: str
    applied: bool
    dry_run: bool
    reason: str
    observed: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    events: tuple[str, ...] = ()
    """Things a person should know happened, such as a desiredCount changed by someone else."""
    conditions: tuple[str, ...] = ()
    """The conditions that hold after this pass (core/conditions.py), by name."""
    warnings: tuple[str, ...] = ()
    """What a person must act on that changed no count, such as a condition held too long."""
    failures: int = 0
    """Passes in a row that could not observe the pool, this one included (the failures tag):
    with fallback.capacity, the fallback applies from fallback.failureThreshold on."""
    policy: str | None = None
    """The scaling policy the count follows (`default`: the pool's own metric and rules),
    or that held it; None when no policy was asked (paused, a failed pass)."""
    bounds: Mapping[str, Any] | None = None
    """minCapacity and maxCapacity in force this pass, and the schedules that set them
    (`schedules`, empty when the pool's own apply)."""
    drain: Mapping[str, Any] | None = None
    """A drain-then-remove scale-in in progress (engine/guard.py): `from`, `to`, `since`,
    `workers` and `phase` (`draining`, or `removing` once the count was lowered)."""

    def to_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: every value is already JSON-ready (str,
        # number, tuple of str, dict), and asdict's deep copy cost ~0.1 ms a pool, twice a
        # pass (the JSON line and the log line): a tenth of a steady pass at 500 pools.
        return {name: getattr(self, name) for name in _RESULT_FIELDS}


_RESULT_FIELDS = tuple(member.name for member in fields(PoolResult))


@dataclass(frozen=True)
class PassReport:
    """One pass over the pools: what every reporter (output, metrics, logs) is given."""

    time: float
    """Wall-clock seconds when the pass began (the `now` the policy decided at)."""
    duration_seconds: float
    results: tuple[PoolResult, ...]
    observations: Mapping[str, Observation]
    """By pool name: the raw observation behind each result (workers, queues, service)."""


@dataclass
class Reconciler:
    """Runs passes over a configuration and remembers per-pool state between them."""

    config: Config
    broker: QueueDepthSource
    ecs: ServiceClient
    inspector: WorkerInspector | None
    """None where the broker has no remote control (SQS)."""
    election: Election | None = None
    """Set when replicas share the pools (leader election): only held pools are reconciled."""
    protector: TaskProtector | None = None
    """Set when a pool has protectBusyTasks or drains its scale-ins (engine/guard.py)."""
    consumers: ConsumerControl | None = None
    """Celery's remote control of the workers' queues, for drains; None on SQS."""
    scaling: ScalingSource | None = None
    """Application Auto Scaling, read for autoscalers the pools would fight (`Conflict`)."""
    scaling_targets: Mapping[str, ScalableTarget] = field(default_factory=dict)
    """The last read of `scaling`, by resource id, and when it was read (`now` of a pass)."""
    scaling_read_at: float | None = None
    memory: dict[str, PoolMemory] = field(default_factory=dict)
    protected_by_us: dict[str, set[str]] = field(default_factory=dict)
    """Pool → task ARNs this process protected (others' protection is never released)."""

    def reconcile(
        self, now: float, *, dry_run: bool = False, only: Sequence[WorkerPool] | None = None
    ) -> PassReport:
        """One pass over `only` (default: every pool) at time `now`.

        Pools are observed and acted on concurrently: each pool goes ahead as soon as its
        own service is described, so a slow or failing cluster delays only its pools.
        The broker is read once and the workers inspected once for every pool.
        """
        started = time.monotonic()
        deadline = started + self.config.controller.pass_deadline
        pools = list(only) if only is not None else list(self.config.pools)
        if self.election is not None:
            try:
                held = self.election.elect(pools)
            except AdapterError as exc:
                failed = tuple(
                    _unreconciled(pool, f"leader election: {exc}", dry_run) for pool in pools
                )
                return PassReport(now, time.monotonic() - started, failed, {})
            # A pool another replica holds is theirs this pass; and a pool whose lease
            # was lost is forgotten, so its state is read from its tags again on return.
            for name in {pool.name for pool in pools} - {pool.name for pool in held}:
                self.memory.pop(name, None)
            pools = held
        by_cluster: dict[str, dict[str, None]] = {}
        for pool in pools:
            by_cluster.setdefault(pool.spec.ecs.cluster, {})[pool.spec.ecs.service] = None
        calls = [
            (cluster, list(services)[start : start + DESCRIBE_CALL])
            for cluster, services in by_cluster.items()
            for start in range(0, len(services), DESCRIBE_CALL)
        ]
        queues = [queue for pool in pools for queue in pool.spec.queues]
        threads = min(MAX_THREADS, len(calls) + len(pools) + 3)
        executor = ThreadPoolExecutor(threads, thread_name_prefix="reconcile")
        try:
            # Submitted first, so they run before the pool passes that wait on them; the
            # broker read before the describes, so it starts at once however many they are.
            broker = executor.submit(self._observe_broker, queues)
            scaling = executor.submit(self._read_scaling, now)
            describes: dict[tuple[str, str], Described] = {}
            for cluster, services in calls:
                call = executor.submit(self.ecs.describe_many, cluster, services)
                describes.update(dict.fromkeys(((cluster, s) for s in services), call))
            workers = executor.submit(self._inspect, pools, describes)
            # A pool's pass is submitted once what it reads is in: the broker, the inspect
            # round, the autoscalers and its own DescribeServices call (or once the pass
            # deadline passed, when its pass reports what did not answer). Its thread then
            # decides and writes without waiting, rather than hundreds of passes holding
            # every thread, all woken at once when the inspect round ends.
            of_call: dict[Described, list[int]] = {}
            for index, pool in enumerate(pools):
                call = describes[pool.spec.ecs.cluster, pool.spec.ecs.service]
                of_call.setdefault(call, []).append(index)
            passes: list[Future[tuple[PoolResult, Observation]] | None] = [None] * len(pools)

            def submit(indexes: list[int]) -> None:
                for index in indexes:
                    pool = pools[index]
                    passes[index] = executor.submit(
                        self._pool_pass,
                        pool,
                        describes[pool.spec.ecs.cluster, pool.spec.ecs.service],
                        broker,
                        workers,
                        scaling,
                        now,
                        dry_run,
                        deadline,
                    )

            shared: list[Future[Any]] = [broker, workers, scaling]
            wait(shared, timeout=max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                for call in as_completed(
                    list(of_call), timeout=max(0.0, deadline - time.monotonic())
                ):
                    submit(of_call.pop(call))
            for indexes in of_call.values():
                submit(indexes)
            # Each pool pass reads its observations only until the deadline and writes
            # nothing without them, so these results come in about then at the latest.
            outcomes = [future.result() for future in passes if future is not None]
        finally:
            # A read still out past the deadline (a blackholed endpoint) ends on its own,
            # bounded by the client's timeouts; its pools have already failed this pass.
            executor.shutdown(wait=False)
        return PassReport(
            time=now,
            duration_seconds=time.monotonic() - started,
            results=tuple(result for result, _ in outcomes),
            observations={pool.name: obs for pool, (_, obs) in zip(pools, outcomes, strict=True)},
        )

    def _pool_pass(
        self,
        pool: WorkerPool,
        described: Described,
        broker: Future[BrokerObservation | str],
        inspected: Future[tuple[tuple[WorkerSnapshot, ...] | None, str | None]],
        scaling: Future[tuple[Mapping[str, ScalableTarget], str | None]],
        now: float,
        dry_run: bool,
        deadline: float,
    ) -> tuple[PoolResult, Observation]:
        errors: list[str] = []
        described_all = self._in_time(described, deadline, f"ECS ({pool.spec.ecs.cluster})")
        service = (
            described_all
            if isinstance(described_all, AdapterError)
            else described_all[pool.spec.ecs.service]
        )
        if isinstance(service, AdapterError):
            errors.append(str(service))
        queues = self._in_time(broker, deadline, "the broker")
        if isinstance(queues, str | AdapterError):
            errors.append(str(queues))
        else:
            # A queue that failed, or that the broker does not have, fails only its pools.
            queues = queues.subset(pool.spec.queues)
            errors.extend(queues.problems())
        inspect_result = self._in_time(inspected, deadline, "the inspect round")
        workers, inspect_error = (
            (None, str(inspect_result))
            if isinstance(inspect_result, AdapterError)
            else inspect_result
        )
        if inspect_error:
            errors.append(inspect_error)
        read = self._in_time(scaling, deadline, "Application Auto Scaling")
        targets, scaling_error = (
            (self.scaling_targets, _unread_scaling(str(read), self.scaling_read_at, now))
            if isinstance(read, AdapterError)
            else read
        )
        described_service = service if isinstance(service, ServiceObservation) else None
        foreign = None
        if described_service is not None:
            target = targets.get(resource_id(pool.spec.ecs.cluster, pool.spec.ecs.service))
            prefix = self.config.controller.alarms.name_prefix
            foreign = foreign_scaling(target, described_service.tags, prefix)
        observation = Observation(
            broker=queues if isinstance(queues, BrokerObservation) else None,
            workers=(
                workers_in_pool(workers, pool.spec.queues, self._draining(pool, described_service))
                if workers is not None
                else None
            ),
            service=described_service,
            errors=tuple(errors),
            foreign_scaling=foreign,
        )
        result = self._reconcile_pool(pool, observation, now, dry_run, scaling_error)
        return result, observation

    def _in_time(self, future: Future[T], deadline: float, what: str) -> T | AdapterError:
        """The future's result, or the error that it was not in by the pass deadline."""
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            limit = self.config.controller.pass_deadline
            return AdapterError(f"{what} did not answer within the pass deadline ({limit:g}s)")

    def _inspect(
        self,
        pools: Sequence[WorkerPool],
        describes: Mapping[tuple[str, str], Described],
    ) -> tuple[tuple[WorkerSnapshot, ...] | None, str | None]:
        if self.inspector is None:
            return None, None
        # Each pool's ECS running count says how many of its own workers to wait for; a
        # cluster slow to answer holds the round back by one inspect timeout at most.
        wait(set(describes.values()), timeout=self.config.controller.inspect_timeout)
        expected: dict[frozenset[str], int] = {}
        for pool in pools:
            described = describes[pool.spec.ecs.cluster, pool.spec.ecs.service]
            service = described.result()[pool.spec.ecs.service] if described.done() else None
            if isinstance(service, ServiceObservation):
                # Pools on the same queues share their workers: wait for all of them.
                queues = frozenset(pool.spec.queues)
                expected[queues] = expected.get(queues, 0) + service.running
        try:
            return self.inspector.inspect(expected), None
        except AdapterError as exc:
            return None, str(exc)

    def _read_scaling(self, now: float) -> tuple[Mapping[str, ScalableTarget], str | None]:
        """Application Auto Scaling's targets, read again once `SCALING_REFRESH` has passed;
        on failure the last answer and why it could not be read anew."""
        if self.scaling is None:
            return {}, None
        last = self.scaling_read_at
        if last is not None and 0 <= now - last < SCALING_REFRESH:
            return self.scaling_targets, None
        try:
            self.scaling_targets = self.scaling.scalable_targets()
        except AdapterError as exc:
            return self.scaling_targets, _unread_scaling(str(exc), last, now)
        self.scaling_read_at = now
        return self.scaling_targets, None

    def _observe_broker(self, queues: Sequence[str]) -> BrokerObservation | str:
        try:
            return self.broker.observe(list(dict.fromkeys(queues)))
        except AdapterError as exc:
            return str(exc)

    def _reconcile_pool(
        self,
        pool: WorkerPool,
        obs: Observation,
        now: float,
        dry_run: bool,
        scaling_error: str | None = None,
    ) -> PoolResult:
        spec = pool.spec
        metrics = compute_metrics(obs)
        restarted = pool.name not in self.memory
        decision, memory, events, observe_errors = plan_pass(
            spec,
            obs,
            metrics,
            self._memory_of(pool, obs),
            now,
            interval=self.config.controller.interval,
        )

        applied = False
        errors = list(observe_errors)
        if scaling_error is not None:
            # Reported, yet the pool decided: Application Auto Scaling being unreadable
            # (throttled, a policy without its Describe actions) must not stop scaling.
            errors.append(scaling_error)
        service = obs.service
        threshold = spec.fallback.failure_threshold
        writes = not dry_run and service is not None
        lease: list[bool] = []

        def holds() -> bool:
            """Fencing, right before this pass's first write and only then (a write to
            DynamoDB costs as much): whether the pool's lease is still this replica's."""
            if self.election is None:
                return True
            if not lease:
                try:
                    # Another replica may have taken the pool since this pass began.
                    held, why = self.election.holds(pool.name), "was lost"
                except AdapterError as exc:
                    # Not renewed after botocore's own retries: the lease may be another's
                    # by now, so nothing is written; the next pass renews or elects anew.
                    held, why = False, f"could not be renewed ({exc})"
                if not held:
                    errors.append(f"the lease on pool {pool.name!r} {why}; nothing written")
                lease.append(held)
            return lease[0]

        if writes and service is not None:
            pending = decision.action is not Action.HOLD or tag_changes(
                memory, service.tags, threshold
            ) != ({}, [])
            if pending and not holds():
                writes = False
        tags = dict(service.tags) if service is not None else {}
        drain: dict[str, Any] | None = None
        if writes and self.protector is not None and self.config.controller.guards_tasks(spec):
            # Before any scale-in: a drain turns it into a hold until its workers are idle,
            # and protection is in place before the count drops, so ECS spares those tasks.
            guard = TaskGuard(self.config, self.ecs, self.protector, self.consumers, holds)
            guard.protected_by_us = self.protected_by_us
            guarded = guard.guard(pool, obs, decision, memory, tags, now, restarted=restarted)
            writes = writes and not guarded.fenced_out
            decision, memory, tags, drain = (
                guarded.decision,
                guarded.memory,
                guarded.tags,
                guarded.drain,
            )
            errors += guarded.errors
            # `Draining` holds while a drain does (core/conditions.py note_conditions).
            memory, noted = note_conditions(memory, dict.fromkeys(memory.conditions, ""), now)
            events = (*events, *guarded.events, *noted)
        if decision.action is not Action.HOLD and writes and service is not None and holds():
            # The intent first: a controller that stops before the state below is written
            # leaves it behind, and the next one takes the new count as its own write.
            # Should this write fail, the action goes ahead all the same.
            to_set, to_remove = tag_changes(before_scaling(memory, decision, now), tags, threshold)
            try:
                self.ecs.write_tags(service.arn, to_set, to_remove)
            except AdapterError as exc:
                errors.append(str(exc))
            else:
                tags = tags_after(tags, to_set, to_remove)
            try:
                self.ecs.set_desired_count(spec.ecs.cluster, spec.ecs.service, decision.desired)
            except AdapterError as exc:
                errors.append(str(exc))
                if memory.drain is not None and memory.drain.removing == now:
                    # Not lowered: the drained workers wait for the next pass's try.
                    memory = memory.evolve(drain=replace(memory.drain, removing=None))
            else:
                applied = True
                memory = after_scaling(spec, memory, decision, now)
        if writes and service is not None:
            # The state lives on the service, written in the same pass as the action.
            to_set, to_remove = tag_changes(memory, tags, threshold)
            if (to_set or to_remove) and holds():
                try:
                    self.ecs.write_tags(service.arn, to_set, to_remove)
                except AdapterError as exc:
                    errors.append(str(exc))
        self.memory[pool.name] = memory

        return PoolResult(
            pool=pool.name,
            cluster=spec.ecs.cluster,
            service=spec.ecs.service,
            metric=decision.metric,
            value=decision.value,
            current=obs.service.desired if obs.service is not None else None,
            desired=decision.desired if obs.service is not None else None,
            action=decision.action.value,
            applied=applied,
            dry_run=dry_run,
            reason=decision.reason,
            observed=metrics,
            error="; ".join(errors) or None,
            events=events,
            conditions=tuple(sorted(memory.conditions)),
            warnings=decision.warnings,
            failures=memory.consecutive_failures,
            policy=decision.policy,
            drain=drain,
            bounds=_bounds_json(decision),
        )

    def _draining(self, pool: WorkerPool, service: ServiceObservation | None) -> tuple[str, ...]:
        """The workers a drain of the pool has told to stop consuming its queues."""
        memory = self.memory.get(pool.name)
        if memory is None and service is not None:
            memory = memory_from_tags(service.tags)
        drain = memory.drain if memory is not None else None
        return drain.workers if drain is not None else ()

    def _memory_of(self, pool: WorkerPool, obs: Observation) -> PoolMemory:
        """This process's memory of the pool, or, the first time, what its tags say."""
        if pool.name in self.memory:
            return self.memory[pool.name]
        return memory_from_tags(obs.service.tags) if obs.service is not None else PoolMemory()


def _unread_scaling(error: str, last: float | None, now: float) -> str:
    """Why other autoscalers could not be looked for, and what the pass went by instead."""
    known = (
        f"the answer of {now - last:.0f}s ago is used"
        if last is not None
        else "none is known, so none is assumed"
    )
    return f"{error} (looking for other autoscalers on the pools' services: {known})"


def _bounds_json(decision: Decision) -> dict[str, Any] | None:
    bounds = decision.bounds
    if bounds is None:
        return None
    return {
        "min_capacity": bounds.min_capacity,
        "max_capacity": bounds.max_capacity,
        "schedules": list(bounds.scheduled),
    }


def _unreconciled(pool: WorkerPool, error: str, dry_run: bool) -> PoolResult:
    """The result of a pool the pass could not even start on."""
    return PoolResult(
        pool=pool.name,
        cluster=pool.spec.ecs.cluster,
        service=pool.spec.ecs.service,
        metric=pool.spec.scaling_policies[0].metric.value,
        value=None,
        current=None,
        desired=None,
        action=Action.HOLD.value,
        applied=False,
        dry_run=dry_run,
        reason=f"not reconciled: {error}",
        error=error,
    )
