"""A deterministic discrete-event simulation of one pool under a workload (pure, seeded).

The queue is one FIFO shared by every worker slot (workers x concurrency): a task
starts on the first slot that frees up, so waits are exact for the arrivals and run
times drawn. Prefetching is not modelled (as with `worker_prefetch_multiplier = 1`).

The ECS service: a new task serves after `start_delay`; a scale-in first cancels tasks
still starting (newest first), then stops running ones chosen at random (ECS does not
know which are busy); a stopped worker finishes the tasks it is running (Celery's warm
shutdown) and takes no more. Worker-hours count a task from launch (it is billed while
it starts) to the moment it is stopped.

Actors act on the service at their own times through the same decision functions as
the real thing: the controller (`controller_pass` every interval), the original setup
(`AlarmPathActor`: metrics published every minute, CloudWatch alarms, Application
Auto Scaling policies). Several actors may share one service, so a fallback that
scales out beside the controller fits in as another actor.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, cast

from celery_scaler.analysis.replay import HOUR, controller_pass, summarize_capacity
from celery_scaler.analysis.workload import Arrivals, Workload, arrivals
from celery_scaler.core.config import Statistic, WorkerPool, WorkerPoolSpec
from celery_scaler.core.metrics import compute_metrics
from celery_scaler.core.model import (
    Action,
    BrokerObservation,
    Decision,
    Observation,
    PoolMemory,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.core.policy import aggregate

INF = math.inf


@dataclass(frozen=True)
class SimSettings:
    interval: float
    """The controller's time between passes."""
    concurrency: int = 4
    start_delay: float = 60.0
    """From ECS launching a task to its worker taking tasks."""
    mean_duration: float = 10.0
    """Mean task run time where the workload does not say."""
    initial: int | None = None
    """Tasks running at the start; None: minCapacity."""
    seed: int = 0


@dataclass(frozen=True)
class AlarmPathSettings:
    """The original setup: a Beat task publishing the metric, an alarm, a step policy."""

    publish_interval: float = 60.0
    period: float = 60.0
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1

    def describe(self) -> str:
        return (
            f"metric published every {self.publish_interval:g}s; CloudWatch alarm, period "
            f"{self.period:g}s, {self.datapoints_to_alarm} of {self.evaluation_periods} "
            "datapoints; Application Auto Scaling step policy"
        )


class Actor(Protocol):
    """Something that sets the service's desired count at its own times."""

    name: str
    next_time: float
    """When it acts next; `act` must move it forward."""

    def act(self, now: float, obs: Observation) -> Decision | None:
        """Look at the pool and decide; a non-hold decision is applied to the service."""
        ...


class ControllerActor:
    """celery-scaler: one pass every interval through the controller's own functions."""

    name = "controller"

    def __init__(self, spec: WorkerPoolSpec, interval: float, start: float) -> None:
        self.spec = spec
        self.interval = interval
        self.next_time = start
        self.memory = PoolMemory()

    def describe(self) -> str:
        return f"celery-scaler, a pass every {self.interval:g}s"

    def act(self, now: float, obs: Observation) -> Decision | None:
        self.next_time = now + self.interval
        decision, self.memory = controller_pass(
            self.spec, obs, compute_metrics(obs), self.memory, now, interval=self.interval
        )
        return decision


@dataclass(frozen=True)
class _Alarm:
    """One CloudWatch alarm of the original setup, and the policy it invokes."""

    metric: str
    statistic: Statistic
    comparison: str
    threshold: float
    spec: WorkerPoolSpec
    """The pool with that policy alone, only the side this alarm invokes, and no window:
    Application Auto Scaling takes the step from the alarm's datapoint."""

    def breached(self, value: float) -> bool:
        if self.comparison == "≥":
            return value >= self.threshold
        if self.comparison == "≤":
            return value <= self.threshold
        return value > self.threshold if self.comparison == ">" else value < self.threshold


def _alarms(spec: WorkerPoolSpec) -> list[_Alarm]:
    """Each policy's alarms: a step table's, or the two AWS makes for target tracking."""
    found = []
    for policy in spec.scaling_policies:
        sides: list[tuple[str, float, dict[str, object]]] = []
        if policy.scale_out is not None:
            sides.append(("≥", policy.scale_out.threshold, {"scale_in": None}))
        if policy.scale_in is not None:
            sides.append(("≤", policy.scale_in.threshold, {"scale_out": None}))
        tracking = policy.target_tracking
        if tracking is not None:
            sides.append((">", tracking.target_value, {}))
            if not tracking.disable_scale_in:
                sides.append(("<", tracking.scale_in_below, {}))
        for comparison, threshold, without in sides:
            alone = policy.model_copy(update={"window": 0.0, **without})
            only = spec.model_copy(
                update={
                    "scale_out": None,
                    "scale_in": None,
                    "target_tracking": None,
                    "policies": (alone,),
                }
            )
            metric, statistic = policy.metric.value, policy.statistic
            found.append(_Alarm(metric, statistic, comparison, threshold, only))
    return found


class AlarmPathActor:
    """CloudWatch alarms invoking Application Auto Scaling policies.

    The metrics are published every `publish_interval`; at the end of each period each
    alarm looks at the last `evaluation_periods` datapoints of its metric and is in ALARM
    when `datapoints_to_alarm` of them breach (a missing datapoint does not breach). While
    alarms are in ALARM their policies are invoked every period with the latest datapoint;
    the steps, the target tracking formula, cooldowns and the largest-capacity rule are the
    controller's own (`controller_pass` on the pool with just those policies). No
    safeScaleIn: Application Auto Scaling knows nothing of busy workers. Target tracking's
    alarms are simplified to the same evaluation settings as the step policies'.
    """

    name = "alarm-path"

    def __init__(self, spec: WorkerPoolSpec, settings: AlarmPathSettings, start: float) -> None:
        self.spec = spec
        self.settings = settings
        self.start = start
        self.alarms = _alarms(spec)
        self.samples: dict[str, dict[int, list[float]]] = {}
        """Metric → period → the values published in it."""
        self.memory = PoolMemory()
        self.next_publish = start
        self.next_evaluation = start + settings.period
        self.next_time = start

    def describe(self) -> str:
        return self.settings.describe()

    def act(self, now: float, obs: Observation) -> Decision | None:
        settings = self.settings
        if now >= self.next_publish:
            self.next_publish += settings.publish_interval
            for metric, value in self.published(now, obs).items():
                self.samples.setdefault(metric, {}).setdefault(self._period_of(now), []).append(
                    value
                )
        decision = None
        if now >= self.next_evaluation:
            self.next_evaluation += settings.period
            decision = self._evaluate(now, obs)
        self.next_time = min(self.next_publish, self.next_evaluation)
        return decision

    def published(self, now: float, obs: Observation) -> dict[str, float]:
        """The datapoints published at `now`, by metric: the ones the alarms watch."""
        metrics = compute_metrics(obs)
        return {
            alarm.metric: metrics[alarm.metric] for alarm in self.alarms if alarm.metric in metrics
        }

    def _period_of(self, time: float) -> int:
        return math.floor((time - self.start) / self.settings.period)

    def _evaluate(self, now: float, obs: Observation) -> Decision | None:
        settings = self.settings
        latest = self._period_of(now) - 1
        for periods in self.samples.values():
            for stale in [index for index in periods if index < latest - 100]:
                del periods[stale]
        invoked: list[_Alarm] = []
        datapoint: dict[str, float] = {}
        for alarm in self.alarms:
            periods = self.samples.get(alarm.metric, {})
            datapoints = [
                aggregate([(0.0, v) for v in periods[index]], alarm.statistic)
                for index in range(latest - settings.evaluation_periods + 1, latest + 1)
                if index in periods
            ]
            breaching = sum(alarm.breached(value) for value in datapoints)
            if datapoints and breaching >= settings.datapoints_to_alarm:
                invoked.append(alarm)
                datapoint.setdefault(alarm.metric, datapoints[-1])
        if not invoked:
            return None
        # Every alarm in ALARM invokes its policy, once a period on that period's
        # datapoint; AWS applies the one giving the largest capacity.
        policies = tuple(p for alarm in invoked for p in alarm.spec.policies)
        spec = invoked[0].spec.model_copy(update={"policies": policies})
        aas_view = Observation(broker=None, workers=None, service=obs.service)
        decision, self.memory = controller_pass(
            spec, aas_view, datapoint, self.memory, now, interval=settings.period
        )
        return decision


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SimAction:
    time: float
    actor: str
    current: int
    desired: int
    reason: str


@dataclass(frozen=True)
class TimelinePoint:
    time: float
    queue_depth: int
    running: int
    desired: int


@dataclass(frozen=True)
class PolicyRun:
    """One policy's run over the workload."""

    policy: str
    description: str
    tasks: int
    unfinished: int
    """Tasks still waiting at the end; their waits count until the end (a lower bound)."""
    wait_p50: float
    wait_p95: float
    wait_max: float
    wait_mean: float
    waited: float
    """The fraction of tasks that waited at all."""
    worker_hours: float
    seconds_at_max: float
    actions: tuple[SimAction, ...]
    timeline: tuple[TimelinePoint, ...]


@dataclass(frozen=True)
class Simulation:
    pool: str
    workload: str
    start: float
    end: float
    settings: SimSettings
    max_capacity: int
    runs: tuple[PolicyRun, ...]
    arrivals_per_minute: tuple[tuple[float, int], ...]
    notes: tuple[str, ...]


# --------------------------------------------------------------------------- the engine


class _Pool:
    """The queue, the ECS service and its workers' slots, advanced through time."""

    def __init__(
        self,
        spec: WorkerPoolSpec,
        load: Arrivals,
        settings: SimSettings,
        rng: random.Random,
    ) -> None:
        self.times = load.times
        self.durations = load.durations
        self.waits = [0.0] * len(load.times)
        self.started = 0
        """Tasks [0, started) have started; FIFO keeps start times in arrival order."""
        self.settings = settings
        self.queues = frozenset(spec.queues)
        self.rng = rng
        self.slots: list[tuple[float, int]] = []
        """(time the slot frees, worker id), a heap over the slots of serving workers. A
        stopped worker's slots leave it at once: they take no more tasks, and the tasks
        they run count neither as waiting nor as the pool's active tasks."""
        self.live: dict[int, float] = {}
        """Workers not stopped: id → the time they serve from."""
        self.slotted: set[int] = set()
        """Workers whose slots are in `slots` (each has `concurrency` of them there)."""
        self.launched: dict[int, float] = {}
        self.starting: list[tuple[float, int]] = []
        self.desired = 0
        self.worker_seconds = 0.0
        self._next_id = 0
        self._snapshots: dict[tuple[int, int], WorkerSnapshot] = {}
        self._last_keys: list[tuple[int, int]] | None = None
        """(worker, active) of the last observation's workers; `_last_workers` their snapshots."""
        self._last_workers: tuple[WorkerSnapshot, ...] = ()
        self._serving: list[int] = []
        """The workers serving (ready) at the last count, in launch order."""
        self._all_busy_when_counted = False
        """The last count found no idle slot."""
        self._workers_changed = True
        """A worker was launched, stopped or made ready since the last count."""
        self._services: dict[tuple[int, int, int], ServiceObservation] = {}
        """(desired, running, pending) → the service as observed with those counts."""

    # -- the service

    def scale(self, desired: int, now: float, delay: float) -> None:
        live = self.live
        if desired > len(live):
            for _ in range(desired - len(live)):
                worker = self._next_id
                self._next_id += 1
                live[worker] = now + delay
                self.launched[worker] = now
                heapq.heappush(self.starting, (now + delay, worker))
        elif desired < len(live):
            excess = len(live) - desired
            starting = sorted(
                (w for w, ready in live.items() if ready > now), key=lambda w: -self.launched[w]
            )
            stop = starting[:excess]
            serving = sorted(w for w, ready in live.items() if ready <= now)
            stop += self.rng.sample(serving, excess - len(stop))
            for worker in stop:
                self.worker_seconds += now - self.launched.pop(worker)
                del live[worker]
            gone = set(stop)
            self.slots = [slot for slot in self.slots if slot[1] not in gone]
            heapq.heapify(self.slots)
            self.slotted -= gone
        self.desired = desired
        self._workers_changed = True

    def next_ready(self) -> float:
        return self.starting[0][0] if self.starting else INF

    def make_ready(self, now: float) -> None:
        while self.starting and self.starting[0][0] <= now:
            ready, worker = heapq.heappop(self.starting)
            if worker in self.live:
                for _ in range(self.settings.concurrency):
                    heapq.heappush(self.slots, (ready, worker))
                self.slotted.add(worker)
                self._workers_changed = True

    # -- the queue

    def advance(self, to: float) -> None:
        """Start, in arrival order, every task that can start before `to`.

        The hot loop of a simulation (once per task): each task takes the slot that
        frees first, (free time, worker id) the least, at max(arrival, free).
        """
        times, durations, waits, slots = self.times, self.durations, self.waits, self.slots
        first = index = self.started
        if not slots:
            return
        heapreplace = heapq.heapreplace
        arrived = bisect_left(times, to, first)
        for index in range(first, arrived):  # read after the loop
            free, worker = slots[0]
            if free >= to:
                break  # this task, and so every later one, starts at `to` or after
            arrival = times[index]
            if arrival > free:
                heapreplace(slots, (arrival + durations[index], worker))  # no wait: 0.0
            else:
                heapreplace(slots, (free + durations[index], worker))
                waits[index] = free - arrival
        else:
            index = arrived
        self.started = index

    def observe(self, now: float) -> Observation:
        """What the controller would read now: the queue, inspect replies, the service."""
        waiting = bisect_left(self.times, now, self.started) - self.started
        latency = now - self.times[self.started] if waiting else 0.0
        idle = self._idle_slots(now)
        # A saturated pool (most of a busy day's passes) keeps every slot busy pass after
        # pass: with no idle slot now nor at the last count, and no worker come, gone or
        # due to serve since, each worker's count is its concurrency as then.
        if (
            idle
            or not self._all_busy_when_counted
            or self._workers_changed
            or self.next_ready() <= now
        ):
            self._count_workers(now, idle)
        serving = self._serving
        counts = (self.desired, len(serving), len(self.live) - len(serving))
        service = self._services.get(counts)
        if service is None:
            service = self._services[counts] = ServiceObservation(*counts, deploying=False)
        return Observation(
            broker=BrokerObservation(queue_depth=waiting, latency_seconds=latency),
            workers=self._last_workers,
            service=service,
        )

    def _count_workers(self, now: float, idle: dict[int, int]) -> None:
        """The serving workers and their snapshots (active = busy slots) as of `now`."""
        serving = self._serving = [worker for worker, ready in self.live.items() if ready <= now]
        self._all_busy_when_counted = not idle
        self._workers_changed = False
        concurrency, slotted = self.settings.concurrency, self.slotted
        keys = [(w, concurrency - idle.get(w, 0) if w in slotted else 0) for w in serving]
        # A busy pool's passes see the same workers with the same counts pass after pass:
        # the same snapshots then, and the same service view, as last built.
        if keys != self._last_keys:
            found = tuple(map(self._snapshots.get, keys))
            # `is None`, not `None in found`: that would call each snapshot's __eq__.
            self._last_workers = (
                tuple(self._snapshot(worker, active) for worker, active in keys)
                if any(snapshot is None for snapshot in found)
                else cast(tuple[WorkerSnapshot, ...], found)
            )
            self._last_keys = keys

    def _idle_slots(self, now: float) -> dict[int, int]:
        """Worker → its slots free at `now` (a slot is busy when it frees after now).

        The free slots sit at the top of the heap (no slot frees before its parent), so
        they are found without looking at the busy ones: a busy pool's count, every pass,
        looks at a handful of slots rather than all of them.
        """
        slots, size = self.slots, len(self.slots)
        idle: dict[int, int] = {}
        stack = [0] if size and slots[0][0] <= now else []
        while stack:
            index = stack.pop()
            worker = slots[index][1]
            idle[worker] = idle.get(worker, 0) + 1
            for child in (2 * index + 1, 2 * index + 2):
                if child < size and slots[child][0] <= now:
                    stack.append(child)
        return idle

    def _snapshot(self, worker: int, active: int) -> WorkerSnapshot:
        # Snapshots are frozen and passes repeat the same few: build each once.
        key = (worker, active)
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            snapshot = self._snapshots[key] = WorkerSnapshot(
                name=f"celery@worker-{worker}",
                queues=self.queues,
                active=active,
                reserved=0,
                scheduled=0,
                revoked=0,
                concurrency=self.settings.concurrency,
            )
        return snapshot

    def finish(self, end: float) -> None:
        self.advance(end)
        for worker in self.live:
            self.worker_seconds += end - self.launched[worker]
        # Waiting still: each counts its wait until the end (end - t, never below 0).
        self.waits[self.started :] = [
            end - time if end > time else 0.0 for time in self.times[self.started :]
        ]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, back on after it if it was on.

    A run allocates a tuple per task (the slot heap's entries: a million for a day at 10
    tasks a second) and makes no reference cycles, so the collections those allocations
    trigger find nothing to free; they cost about a tenth of the run. Reference counting
    still frees everything as usual.

    `simulate` keeps it off over the arrivals as well as its runs: the allocations made
    while it is off still count, so the first one after it starts a collection at once,
    which walks every container still young. Inside `simulate` that was the arrivals'
    lists, a million floats each at 10 tasks a second (tens of milliseconds a day, to
    find nothing); when `simulate` returns they are gone.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_collector_paused()  # for each run, as a `with` around its body
def run_policy(
    pool: WorkerPool,
    load: Arrivals,
    start: float,
    end: float,
    settings: SimSettings,
    actors: Sequence[Actor],
    *,
    name: str,
    description: str,
) -> PolicyRun:
    """Run `actors` on one simulated service over the arrivals, from `start` to `end`."""
    spec = pool.spec
    state = _Pool(spec, load, settings, random.Random(settings.seed))
    initial = spec.min_capacity if settings.initial is None else settings.initial
    state.scale(initial, start, delay=0.0)
    state.make_ready(start)
    actions: list[SimAction] = []
    timeline: list[TimelinePoint] = []
    while True:
        acting = min(actor.next_time for actor in actors)
        ready = state.next_ready()
        now = min(acting, ready)
        if now >= end:
            break
        state.advance(now)
        if ready <= acting:
            state.make_ready(now)
            continue
        obs = state.observe(now)
        for actor in actors:
            if actor.next_time > now:
                continue
            decision = actor.act(now, obs)
            if actor.next_time <= now:
                raise RuntimeError(f"actor {actor.name} did not move its next_time past {now}")
            if decision is None or decision.action is Action.HOLD:
                continue
            if decision.desired != state.desired:
                actions.append(
                    SimAction(now, actor.name, state.desired, decision.desired, decision.reason)
                )
                state.scale(decision.desired, now, settings.start_delay)
                obs = state.observe(now)
        assert obs.service is not None
        assert obs.broker is not None
        timeline.append(
            TimelinePoint(now, obs.broker.queue_depth, obs.service.running, state.desired)
        )
    state.finish(end)

    waits = sorted(state.waits)
    capacity = summarize_capacity(
        [(point.time, float(point.desired)) for point in timeline],
        end,
        spec.min_capacity,
        spec.max_capacity,
    )
    return PolicyRun(
        policy=name,
        description=description,
        tasks=len(waits),
        unfinished=len(state.times) - state.started,
        wait_p50=percentile(waits, 0.50) or 0.0,
        wait_p95=percentile(waits, 0.95) or 0.0,
        wait_max=waits[-1] if waits else 0.0,
        wait_mean=sum(waits) / len(waits) if waits else 0.0,
        waited=(len(waits) - bisect_left(waits, 1e-9)) / len(waits) if waits else 0.0,
        worker_hours=state.worker_seconds / HOUR,
        seconds_at_max=capacity.seconds_at_max,
        actions=tuple(actions),
        timeline=tuple(timeline),
    )


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values: the smallest value at or above
    `fraction` of them (no interpolation: a wait someone really had); None without values.

    The one percentile of the project: the simulator, the demo and the benchmarks all
    report through it, so their p95s compare.
    """
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def per_minute(times: Sequence[float], start: float, end: float) -> tuple[tuple[float, int], ...]:
    """Arrivals counted per minute (`times` sorted)."""
    edges = [start + index * 60.0 for index in range(max(1, math.ceil((end - start) / 60.0)) + 1)]
    positions = [bisect_left(times, edge) for edge in edges]
    return tuple(
        (edge, after - before)
        for edge, before, after in zip(edges, positions, positions[1:], strict=False)
    )


@_collector_paused()  # over the arrivals too (`_collector_paused` says why)
def simulate(
    pool: WorkerPool,
    workload: Workload,
    settings: SimSettings,
    *,
    alarm_path: AlarmPathSettings | None = None,
) -> Simulation:
    """The workload through the controller and, with `alarm_path`, the original setup."""
    load = arrivals(workload, settings.mean_duration, random.Random(settings.seed))
    start, end = workload.start, workload.end
    policies: list[ControllerActor | AlarmPathActor] = [
        ControllerActor(pool.spec, settings.interval, start)
    ]
    if alarm_path is not None:
        policies.append(AlarmPathActor(pool.spec, alarm_path, start))
    runs = [
        run_policy(
            pool,
            load,
            start,
            end,
            settings,
            [actor],
            name=actor.name,
            description=actor.describe(),
        )
        for actor in policies
    ]
    notes = (
        f"{len(load.times)} tasks, mean run time {settings.mean_duration:g}s where the "
        f"workload does not say; {settings.concurrency} slots per worker; a new worker "
        f"serves {settings.start_delay:g}s after launch; seed {settings.seed}",
        "one FIFO queue, no prefetching; stopped workers finish their running tasks",
    )
    return Simulation(
        pool=pool.name,
        workload=workload.name,
        start=start,
        end=end,
        settings=settings,
        max_capacity=pool.spec.max_capacity,
        runs=tuple(runs),
        arrivals_per_minute=per_minute(load.times, start, end),
        notes=notes,
    )
