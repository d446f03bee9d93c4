"""The fallback beside the controller, in the simulator: it only adds workers, acts only
while the controller is gone, and the two never undo each other's work."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from celery_scaler.analysis.simulate import (
    AlarmPathActor,
    AlarmPathSettings,
    ControllerActor,
    SimAction,
    SimSettings,
    run_policy,
)
from celery_scaler.analysis.workload import Segment, Workload, arrivals
from celery_scaler.core.config import (
    CpuFallbackSpec,
    FallbackPolicySpec,
    Statistic,
    WorkerPool,
    WorkerPoolSpec,
)
from celery_scaler.core.metrics import compute_metrics
from celery_scaler.core.model import Decision, Observation
from tests.helpers import design_pool

MINUTE = 60.0
INTERVAL = 15.0
OUTAGE = (30 * MINUTE, 60 * MINUTE)
SCALE_IN_COOLDOWN = 300.0  # DESIGN's example pool


class GoneFor(ControllerActor):
    """The controller, with no pass at all during `down` (killed, its node lost)."""

    def __init__(self, spec: WorkerPoolSpec, down: tuple[float, float] | None) -> None:
        super().__init__(spec, INTERVAL, 0.0)
        self.down = down

    def gone(self, now: float) -> bool:
        return self.down is not None and self.down[0] <= now < self.down[1]

    def act(self, now: float, obs: Observation) -> Decision | None:
        if self.gone(now):
            self.next_time = now + self.interval
            return None
        return super().act(now, obs)


class Fallback(AlarmPathActor):
    """One fallback alarm and its scale-out-only Application Auto Scaling step policy.

    `value` is what the alarm watches; with a `gate` (the heartbeat), a datapoint
    counts only while the controller publishes none, as `IF(FILL(heartbeat, 0) < 1, cpu,
    0)` does in CloudWatch.
    """

    name = "fallback"

    def __init__(
        self,
        pool: WorkerPoolSpec,
        spec: FallbackPolicySpec,
        threshold: float,
        value: Callable[[Observation], float | None],
        gate: Callable[[float], bool] | None,
    ) -> None:
        only_out = pool.model_copy(
            update={
                "scale_out": spec.step_policy(threshold),
                "scale_in": None,
                "statistic": Statistic.AVERAGE,
            }
        )
        settings = AlarmPathSettings(
            period=MINUTE,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm or spec.evaluation_periods,
        )
        super().__init__(only_out, settings, 0.0)
        self.value, self.gate = value, gate

    def published(self, now: float, obs: Observation) -> dict[str, float]:
        value = self.value(obs)
        if value is not None and self.gate is not None and not self.gate(now):
            value = 0.0
        # Under the pool's metric name, which the fallback's step policy reads.
        return {} if value is None else {self.spec.metric.value: value}


def cpu(obs: Observation) -> float | None:
    """CPU-bound tasks, one slot per vCPU: a worker's CPU is its busy share."""
    busy = compute_metrics(obs).get("busy_ratio")
    return None if busy is None else 100.0 * busy


def depth(obs: Observation) -> float | None:
    return None if obs.broker is None else float(obs.broker.queue_depth)


def load(rates: Sequence[tuple[float, float, float]]) -> Workload:
    """Poisson arrivals: (start, end, tasks per second) segments."""
    return Workload(
        "test", tuple(Segment(a, b, rate * (b - a), poisson=True) for a, b, rate in rates)
    )


# Quiet, then more than the fleet at minCapacity can take while the controller is
# gone, then quiet again once it is back.
RISING = load([(0, OUTAGE[0], 0.5), (OUTAGE[0], OUTAGE[1], 1.5), (OUTAGE[1], 120 * MINUTE, 0.3)])


def run(
    pool: WorkerPool, workload: Workload, controller: GoneFor, fallback: Fallback
) -> list[SimAction]:
    settings = SimSettings(interval=INTERVAL, concurrency=1, start_delay=60, seed=3)
    result = run_policy(
        pool,
        arrivals(workload, settings.mean_duration, random.Random(3)),
        workload.start,
        workload.end,
        settings,
        [controller, fallback],
        name="both",
        description="controller and fallback",
    )
    return list(result.actions)


def fights(actions: Sequence[SimAction]) -> int:
    """How often the fallback added workers again after the controller took some away
    that the fallback had added: the two undoing each other."""
    count, fallback_added, controller_removed = 0, False, False
    for action in actions:
        if action.actor == "fallback":
            if fallback_added and controller_removed:
                count += 1
            fallback_added, controller_removed = True, False
        elif action.desired < action.current and fallback_added:
            controller_removed = True
    return count


def cpu_fallback(pool: WorkerPool, gated: Callable[[float], bool] | None) -> Fallback:
    fallback = CpuFallbackSpec()  # the defaults: 80 %, 3 of 3 minutes, +1, 60 s cooldown
    assert fallback.threshold is not None
    return Fallback(pool.spec, fallback, fallback.threshold, cpu, gated)


def depth_fallback(pool: WorkerPool, gated: Callable[[float], bool] | None) -> Fallback:
    assert pool.spec.scale_out is not None
    threshold = pool.spec.scale_out.threshold * pool.spec.max_capacity  # the derived default
    return Fallback(pool.spec, FallbackPolicySpec(), threshold, depth, gated)


@pytest.mark.parametrize(
    ("make", "gated"),
    [(cpu_fallback, True), (depth_fallback, False)],
    ids=["cpu-gated-on-heartbeat", "sqs-depth"],
)
def test_the_fallback_covers_an_outage_and_then_leaves_the_pool_to_the_controller(
    make: Callable[[WorkerPool, Callable[[float], bool] | None], Fallback], gated: bool
) -> None:
    pool = design_pool()
    controller = GoneFor(pool.spec, OUTAGE)
    actions = run(pool, RISING, controller, make(pool, controller.gone if gated else None))
    by_fallback = [a for a in actions if a.actor == "fallback"]

    # It acted, only to add, and only while the controller was gone (plus the alarm's
    # own lag: the period in progress and the one evaluated after it).
    assert by_fallback, "the fallback never scaled out during the outage"
    assert all(a.desired > a.current for a in by_fallback)
    assert all(OUTAGE[0] <= a.time <= OUTAGE[1] + 2 * MINUTE for a in by_fallback)

    # Back, the controller takes the fallback's count as an external change: no scale-in
    # before its scale-in cooldown has run from that change, and none below minCapacity.
    last = max(a.time for a in by_fallback)
    back = [a for a in actions if a.actor == "controller" and a.time >= OUTAGE[1]]
    scale_ins = [a for a in back if a.desired < a.current]
    assert scale_ins, "the controller never took the pool back down after the outage"
    assert scale_ins[0].time >= max(last, OUTAGE[1]) + SCALE_IN_COOLDOWN - INTERVAL
    assert fights(actions) == 0


def test_cpu_without_the_heartbeat_gate_would_fight_the_controller() -> None:
    # Why the CPU fallback is gated: with one slot per vCPU the controller keeps every
    # worker busy (a backlog of 2 to 10 per task), so CPU sits near 100 % while it is in
    # control; a plain CPU alarm adds workers, the controller takes them away after its
    # cooldown, and round it goes.
    pool = design_pool()
    actions = run(pool, RISING, GoneFor(pool.spec, None), cpu_fallback(pool, None))
    assert fights(actions) >= 1


def test_with_the_gate_and_no_outage_the_fallback_never_acts() -> None:
    pool = design_pool()
    controller = GoneFor(pool.spec, None)
    actions = run(pool, RISING, controller, cpu_fallback(pool, controller.gone))
    assert [a for a in actions if a.actor == "fallback"] == []
    assert any(a.actor == "controller" for a in actions)
