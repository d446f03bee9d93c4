"""Keeping ECS from stopping a worker mid-task: drain-then-remove and task protection.

The pure plan is in core/drain.py (which workers, when to remove, when to give up) and
core/protection.py (which tasks to protect); this module does the I/O in the order that
makes them safe, once per pool per pass, after the policy decided and before any
UpdateService:

1. read the service's tasks and their protection (ECS ListTasks, DescribeTasks,
   GetTaskProtection);
2. advance a drain in progress (wait, remove, done or abort and restore consumers) or,
   for a scale-in, start one: the drain is written on the service first, then the chosen
   workers stop consuming (Celery's `cancel_consumer`), so a controller that stops in
   between leaves a record of whom to restore;
3. protect (or renew) and release task protection as the plan says, so that when the
   decision lowers desiredCount the only unprotected tasks are the drained ones.

The decision it hands back holds while a drain runs, and is the drain's scale-in once the
workers are idle; the caller writes it (UpdateService) as any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from celery_scaler.core.config import Config, WorkerPool
from celery_scaler.core.drain import (
    DrainProgress,
    DrainStep,
    choose_victims,
    drain_progress,
    drain_summary,
)
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.model import (
    Action,
    Decision,
    Drain,
    Observation,
    PoolMemory,
)
from celery_scaler.core.ports import ConsumerControl, ServiceClient, TaskProtector
from celery_scaler.core.protection import TaskInfo, protection_changes, task_of_worker
from celery_scaler.core.state import tag_changes, tags_after


@dataclass
class Guarded:
    """What guarding one pool's pass changed."""

    decision: Decision
    memory: PoolMemory
    tags: dict[str, str]
    """The service's tags once the guard's own writes went through."""
    errors: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    drain: dict[str, Any] | None = None
    """The drain in progress as the JSON line shows it (`PoolResult.drain`)."""
    fenced_out: bool = False
    """The lease was lost before a write: nothing was written, nothing more may be."""


@dataclass
class TaskGuard:
    """Drain-then-remove and task protection for the pools that have them."""

    config: Config
    ecs: ServiceClient
    protector: TaskProtector
    consumers: ConsumerControl | None
    """Celery's remote control; None where the broker has none (SQS): no drains."""
    fence: Callable[[], bool] = lambda: True
    """Asked right before the first write of the pass: whether the pool is still this
    replica's to write (leader election); False writes nothing more."""
    protected_by_us: dict[str, set[str]] = field(default_factory=dict)
    """Pool → task ARNs this process protected (others' protection is never released)."""

    def guard(
        self,
        pool: WorkerPool,
        obs: Observation,
        decision: Decision,
        memory: PoolMemory,
        tags: Mapping[str, str],
        now: float,
        *,
        restarted: bool,
    ) -> Guarded:
        """Guard one pool's pass; `restarted`: this process has not seen the pool before."""
        spec, service = pool.spec, obs.service
        assert service is not None
        guarded = Guarded(decision, memory, dict(tags))
        if not self._has_work(pool, obs, decision, memory):
            return guarded
        cluster = spec.ecs.cluster
        try:
            tasks = self.protector.tasks(cluster, spec.ecs.service)
            until = self.protector.protected_until(cluster, [task.arn for task in tasks])
        except AdapterError as exc:
            guarded.errors.append(str(exc))
            if memory.drain is not None or self._would_drain(pool, obs, decision):
                guarded.decision = _hold(decision, f"the service's tasks could not be read: {exc}")
            return guarded
        ours = self.protected_by_us.setdefault(pool.name, set())
        ours.intersection_update(task.arn for task in tasks)
        if memory.drain is not None:
            self._advance(pool, obs, guarded, tasks, now, restarted)
        # After a drain is done, the next scale-in may begin in the same pass; never one
        # that is not drained (an aborted drain holds its pass).
        if guarded.memory.drain is None and self._would_drain(pool, obs, guarded.decision):
            self._start(pool, obs, guarded, tasks, until, now)
        if not guarded.fenced_out:
            self._protect(pool, obs, guarded, tasks, until, now)
        drain = guarded.memory.drain
        guarded.drain = drain_summary(drain) if drain is not None else None
        return guarded

    def _has_work(
        self, pool: WorkerPool, obs: Observation, decision: Decision, memory: PoolMemory
    ) -> bool:
        """Whether this pass may drain, protect or release anything.

        When not, the service's tasks are not read: the steady pass of a pool that drains
        only its scale-ins costs no ECS call (ListTasks, DescribeTasks and
        GetTaskProtection a pool a pass are most of a pass's AWS calls at hundreds of pools).
        """
        service = obs.service
        return (
            memory.drain is not None
            or self._would_drain(pool, obs, decision)
            or pool.spec.protect_busy_tasks
            or (service is not None and service.deploying)
            or bool(self.protected_by_us.get(pool.name))
        )

    def _would_drain(self, pool: WorkerPool, obs: Observation, decision: Decision) -> bool:
        """Whether this pass's decision is a scale-in to drain first.

        Not on a failed pass: its only scale-in brings a count above maxCapacity down,
        which needs the count alone and goes ahead (docs/semantics.md), while a drain needs
        the workers read. Not during a rollout, when no scale-in is decided anyway.
        """
        return (
            self.consumers is not None
            and self.config.controller.drains(pool.spec)
            and decision.action is Action.SCALE_IN
            and not obs.errors
            and obs.service is not None
            and not obs.service.deploying
        )

    def _may_write(self, guarded: Guarded) -> bool:
        if not guarded.fenced_out and not self.fence():
            guarded.fenced_out = True
        return not guarded.fenced_out

    # -- a drain in progress

    def _advance(
        self,
        pool: WorkerPool,
        obs: Observation,
        guarded: Guarded,
        tasks: Sequence[TaskInfo],
        now: float,
        restarted: bool,
    ) -> None:
        drain = guarded.memory.drain
        service = obs.service
        assert drain is not None
        assert service is not None
        if self.consumers is None or not self.config.controller.drains(pool.spec):
            progress = DrainProgress(DrainStep.ABORT, "drainScaleIn was turned off")
        else:
            progress = drain_progress(
                drain,
                workers=obs.workers,
                queues=pool.spec.queues,
                tasks=tasks,
                service=service,
                scaling_out=guarded.decision.action is Action.SCALE_OUT,
                restarted=restarted,
                now=now,
                timeout=pool.spec.drain_timeout,
            )
        if progress.step is DrainStep.WAIT:
            guarded.decision = _hold(guarded.decision, progress.reason)
            if progress.consuming and self._may_write(guarded):
                # Told before and not listening (a lost reply, a worker restarted): again.
                assert self.consumers is not None
                try:
                    self.consumers.set_consuming(progress.consuming, pool.spec.queues, False)
                except AdapterError as exc:
                    guarded.errors.append(str(exc))
        elif progress.step is DrainStep.REMOVE:
            # Marked before the caller's UpdateService and written with its intent: a
            # controller that stops after it must not give these workers their queues back.
            guarded.memory = guarded.memory.evolve(drain=replace(drain, removing=now))
            guarded.decision = Decision(
                Action.SCALE_IN,
                service.desired,
                drain.desired,
                guarded.decision.metric,
                guarded.decision.value,
                f"{progress.reason}: {service.desired} → {drain.desired}",
                step=guarded.decision.step,
            )
        elif progress.step is DrainStep.DONE:
            guarded.memory = guarded.memory.evolve(drain=None)
            guarded.events.append(f"drain done: {progress.reason}")
        else:
            self._abort(pool, guarded, tasks, progress.reason)

    def _abort(
        self, pool: WorkerPool, guarded: Guarded, tasks: Sequence[TaskInfo], why: str
    ) -> None:
        drain = guarded.memory.drain
        assert drain is not None
        alive = [name for name in drain.workers if task_of_worker(name, tasks) is not None]
        sentence = f"drain of {', '.join(drain.workers)} ({drain.current} → {drain.desired}) "
        if not self._may_write(guarded):
            return
        try:
            if self.consumers is not None:
                self.consumers.set_consuming(alive, pool.spec.queues, True)
        except AdapterError as exc:
            # Kept: the next pass tries again rather than leave workers consuming nothing.
            guarded.errors.append(f"{sentence}given up ({why}), but {exc}")
            if guarded.decision.action is not Action.SCALE_OUT:
                guarded.decision = _hold(guarded.decision, f"{sentence}given up: {why}")
            return
        restored = f"; consumers restored on {', '.join(alive)}" if alive else ""
        guarded.events.append(f"{sentence}given up: {why}{restored}")
        guarded.memory = guarded.memory.evolve(drain=None)
        if guarded.decision.action is Action.SCALE_IN:
            # Not at once again: the next pass starts a new drain if it still should.
            guarded.decision = _hold(guarded.decision, f"{sentence}given up: {why}")

    # -- a new drain

    def _start(
        self,
        pool: WorkerPool,
        obs: Observation,
        guarded: Guarded,
        tasks: Sequence[TaskInfo],
        until: Mapping[str, float],
        now: float,
    ) -> None:
        decision = guarded.decision
        if not tasks:
            # ECS runs none of the service's tasks: no worker to drain, no task to stop.
            return
        ours = self.protected_by_us[pool.name]
        victims, skipped = choose_victims(
            obs.workers or (), tasks, until, ours, decision.current - decision.desired, now
        )
        if not victims:
            why = "; ".join(skipped) or "no worker answered"
            why = f"{decision.reason}; no worker can be drained: {why}"
            guarded.decision = _hold(decision, why)
            return
        drain = Drain(decision.current, decision.current - len(victims), now, victims)
        memory = guarded.memory.evolve(drain=drain)
        # The drain on the service first: whoever comes next knows whom to restore.
        threshold = pool.spec.fallback.failure_threshold
        to_set, to_remove = tag_changes(memory, guarded.tags, threshold)
        assert self.consumers is not None
        if not self._may_write(guarded):
            return
        try:
            self.ecs.write_tags(obs.service.arn if obs.service else "", to_set, to_remove)
        except AdapterError as exc:
            guarded.errors.append(str(exc))
            guarded.decision = _hold(decision, f"the drain could not be recorded: {exc}")
            return
        guarded.tags = tags_after(guarded.tags, to_set, to_remove)
        try:
            self.consumers.set_consuming(victims, pool.spec.queues, False)
        except AdapterError as exc:
            guarded.memory = memory
            self._abort(pool, guarded, tasks, f"not every worker stopped consuming: {exc}")
            guarded.errors.append(str(exc))
            return
        guarded.memory = memory
        fewer = f" (not {decision.current - decision.desired}: {'; '.join(skipped)})"
        guarded.events.append(
            f"drain began: {', '.join(victims)} stop consuming "
            f"{', '.join(pool.spec.queues)} before {drain.current} → {drain.desired}"
            + (fewer if len(victims) < decision.current - decision.desired else "")
        )
        guarded.decision = _hold(
            decision,
            f"{decision.reason}; draining {', '.join(victims)} first, at most "
            f"{pool.spec.drain_timeout:g}s",
        )

    # -- protection

    def _protect(
        self,
        pool: WorkerPool,
        obs: Observation,
        guarded: Guarded,
        tasks: Sequence[TaskInfo],
        until: Mapping[str, float],
        now: float,
    ) -> None:
        spec, service = pool.spec, obs.service
        assert service is not None
        interval = self.config.controller.interval
        renew_within = 2 * interval + 60
        drain = guarded.memory.drain
        deploying = service.deploying and drain is None
        # Protection is renewed before the next passes could let it lapse, and lasts no
        # longer than that for a drain: one abandoned ends by itself soon after.
        drain_minutes = max(math.ceil(spec.drain_timeout / 60), math.ceil(renew_within / 60) + 1)
        ours = self.protected_by_us[pool.name]
        changes = protection_changes(
            obs.workers or (),
            tasks,
            until,
            ours,
            now,
            renew_within,
            draining=drain.workers if drain is not None else None,
            busy_only_until=(
                (service.deployment_started or now) + spec.drain_timeout if deploying else None
            ),
            protect_busy=spec.protect_busy_tasks,
            minutes=max(1, round(spec.task_protection / 60)),
            drain_minutes=drain_minutes,
        )
        cluster = spec.ecs.cluster
        if (changes.protect or changes.release) and not self._may_write(guarded):
            return
        try:
            if changes.protect:
                self.protector.set_protection(cluster, changes.protect, True, changes.minutes)
                ours.update(changes.protect)
            if changes.release:
                self.protector.set_protection(cluster, changes.release, False)
                ours.difference_update(changes.release)
        except AdapterError as exc:
            guarded.errors.append(str(exc))
            if guarded.decision.action is Action.SCALE_IN and drain is not None:
                # Without the others protected, lowering the count could stop any of them.
                guarded.memory = guarded.memory.evolve(drain=replace(drain, removing=None))
                guarded.decision = _hold(guarded.decision, f"protection not in place: {exc}")
            return
        if changes.unmapped and spec.protect_busy_tasks:
            guarded.errors.append(
                f"busy workers not matched to an ECS task, left unprotected: "
                f"{', '.join(changes.unmapped)} (see the worker naming in the README)"
            )


def _hold(decision: Decision, reason: str) -> Decision:
    return replace(
        decision,
        action=Action.HOLD,
        desired=decision.current,
        reason=f"{reason}: holding at {decision.current}",
    )
