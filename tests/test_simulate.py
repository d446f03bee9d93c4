"""The simulator: its queueing against closed-form results, its actors, its determinism."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from celery_scaler.analysis.simulate import (
    AlarmPathSettings,
    ControllerActor,
    SimSettings,
    run_policy,
    simulate,
)
from celery_scaler.analysis.workload import Arrivals, Pattern, Segment, Workload, arrivals, pattern
from celery_scaler.core.config import WorkerPool
from celery_scaler.core.model import Action, Decision, Observation
from tests.helpers import design_pool


def erlang_c(servers: int, offered: float) -> float:
    """The probability that an arrival waits in an M/M/c queue (Erlang's C formula)."""
    below = sum(offered**k / math.factorial(k) for k in range(servers))
    top = offered**servers / math.factorial(servers) * servers / (servers - offered)
    return top / (below + top)


def fixed_pool(workers: int) -> WorkerPool:
    return design_pool(minCapacity=workers, maxCapacity=workers)


@pytest.mark.parametrize(
    ("servers", "arrival_rate", "service_rate", "concurrency"),
    [
        (10, 2.0, 0.25, 1),  # load 0.8: P(wait) 0.41, mean wait 0.82 s
        (4, 1.5, 0.25, 2),  # 8 slots from 4 workers x 2, load 0.75: P(wait) 0.36
    ],
)
def test_queueing_matches_erlang_c(
    servers: int, arrival_rate: float, service_rate: float, concurrency: int
) -> None:
    slots = servers * concurrency
    offered = arrival_rate / service_rate
    waits = erlang_c(slots, offered)
    mean_wait = waits / (slots * service_rate - arrival_rate)

    load = pattern(Pattern.STEADY, arrival_rate, 24 * 3600, random.Random(7))
    result = simulate(
        fixed_pool(servers),
        load,
        SimSettings(
            interval=15,
            concurrency=concurrency,
            start_delay=0,
            mean_duration=1 / service_rate,
            seed=7,
        ),
    )
    run = result.runs[0]
    assert run.actions == ()
    assert run.tasks == pytest.approx(arrival_rate * 24 * 3600, rel=0.02)
    assert run.waited == pytest.approx(waits, rel=0.05)
    assert run.wait_mean == pytest.approx(mean_wait, rel=0.10)
    assert run.worker_hours == pytest.approx(servers * 24)


def test_same_seed_same_simulation_other_seed_other() -> None:
    def once(seed: int) -> Any:
        load = pattern(Pattern.SPIKY, 1.0, 3 * 3600, random.Random(seed))
        settings = SimSettings(interval=15, seed=seed)
        return simulate(design_pool(), load, settings, alarm_path=AlarmPathSettings())

    first, again, other = once(3), once(3), once(4)
    assert first == again
    assert first.runs[0].wait_p95 != other.runs[0].wait_p95


def step_load(rise: float, end: float, rate: float) -> Workload:
    """Nothing, then `rate` tasks a second from `rise` on."""
    return Workload(
        "step",
        (Segment(0, rise, 0, poisson=True), Segment(rise, end, rate * (end - rise), poisson=True)),
    )


def first_action(workload: Workload, **alarm: Any) -> float:
    settings = SimSettings(interval=15, start_delay=30, mean_duration=10)
    result = simulate(design_pool(), workload, settings, alarm_path=AlarmPathSettings(**alarm))
    controller, alarms = result.runs
    assert controller.actions[0].actor == "controller"
    assert alarms.actions[0].actor == "alarm-path"
    return alarms.actions[0].time - controller.actions[0].time


def test_alarm_path_reacts_a_period_or_more_later() -> None:
    load = step_load(600, 1800, 20.0)
    # The controller sees the backlog at its next pass; the alarm only once a period
    # holding a breaching datapoint has ended, and with 3 of 3 after three of them.
    assert 45 <= first_action(load) <= 120
    assert 165 <= first_action(load, evaluation_periods=3, datapoints_to_alarm=3) <= 240


def test_alarm_path_uses_the_step_policy_and_its_cooldowns() -> None:
    settings = SimSettings(interval=15, start_delay=30, mean_duration=10)
    result = simulate(
        design_pool(), step_load(600, 1800, 20.0), settings, alarm_path=AlarmPathSettings()
    )
    alarms = result.runs[1]
    assert "Application Auto Scaling" in alarms.description
    first = alarms.actions[0]
    assert (first.current, first.desired) == (1, 3)
    assert "step [10, +inf) → +2" in first.reason
    # A minute apart at most once per cooldown (60s) while the alarm stays in ALARM.
    times = [action.time for action in alarms.actions if action.desired > action.current]
    assert all(later - earlier >= 60 for earlier, later in itertools.pairwise(times))


def test_scale_in_lets_running_tasks_finish() -> None:
    # A burst, then quiet: the controller scales in while tasks still run; every task
    # still completes (none is lost with its stopped worker).
    load = Workload("burst", (Segment(0, 300, 3000), Segment(300, 4 * 3600, 0, poisson=True)))
    result = simulate(design_pool(), load, SimSettings(interval=15, mean_duration=30))
    run = result.runs[0]
    outs = [a for a in run.actions if a.desired > a.current]
    ins = [a for a in run.actions if a.desired < a.current]
    assert outs
    assert ins
    assert run.unfinished == 0
    assert run.timeline[-1].desired == 1
    assert run.timeline[-1].queue_depth == 0


def test_workers_serve_after_the_start_delay() -> None:
    load = step_load(60, 900, 20.0)
    result = simulate(design_pool(), load, SimSettings(interval=15, start_delay=120))
    run = result.runs[0]
    first = run.actions[0]
    at = {point.time: point for point in run.timeline}
    assert at[first.time + 105].running == first.current
    assert at[first.time + 120].running == first.desired


class OneShot:
    """A second actor on the same service, as the CloudWatch fallback would be."""

    name = "fallback"

    def __init__(self, at: float, count: int) -> None:
        self.next_time = at
        self.count = count

    def act(self, now: float, obs: Observation) -> Decision | None:
        self.next_time = math.inf
        assert obs.service is not None
        current = obs.service.desired
        return Decision(Action.SCALE_OUT, current, max(current, self.count), "x", None, "fallback")


def test_a_second_actor_acts_on_the_same_service() -> None:
    pool = design_pool()
    load = Workload("quiet", (Segment(0, 3600, 0, poisson=True),))
    settings = SimSettings(interval=15)
    controller = ControllerActor(pool.spec, settings.interval, 0)
    run = run_policy(
        pool,
        arrivals(load, 10, random.Random(0)),
        0,
        3600,
        settings,
        [controller, OneShot(600, 6)],
        name="controller+fallback",
        description="",
    )
    fallback, *rest = run.actions
    assert (fallback.actor, fallback.time, fallback.current, fallback.desired) == (
        "fallback",
        600,
        1,
        6,
    )
    # The controller takes it as an external change: the scale-in cooldown (300s) runs
    # from it before the idle fleet is brought down.
    assert rest[0].actor == "controller"
    assert rest[0].time >= 600 + 300
    assert (rest[0].current, rest[0].desired) == (6, 5)


def test_arrivals_follow_segments() -> None:
    load = Workload(
        "t",
        (
            Segment(0, 60, 30, mean_duration=2.0),
            Segment(60, 60, 5),
            Segment(60, 120, 0),
        ),
    )
    drawn = arrivals(load, 10.0, random.Random(1))
    assert isinstance(drawn, Arrivals)
    assert len(drawn.times) == 35
    assert drawn.times == sorted(drawn.times)
    assert all(0 <= t < 60 for t in drawn.times[:30])
    assert drawn.times[30:] == [60.0] * 5
    assert sum(drawn.durations[:30]) / 30 < 4  # mean 2s, not the default 10s


def test_a_pool_with_several_policies_is_simulated_through_both_paths() -> None:
    # DESIGN's backlog steps, and queue latency tracked at 20 s: a step load far above
    # what minCapacity serves makes both act, the controller and the alarm path.
    latency = {
        "name": "latency",
        "metric": "queue_latency_seconds",
        "targetTracking": {"targetValue": 20, "scaleOutCooldown": "60s"},
    }
    pool = design_pool(policies=[latency])
    settings = SimSettings(interval=15, start_delay=30, mean_duration=10)
    result = simulate(pool, step_load(600, 1800, 20.0), settings, alarm_path=AlarmPathSettings())
    controller, alarms = result.runs
    for run in (controller, alarms):
        assert any(action.desired > action.current for action in run.actions)
    named = {action.reason.partition(":")[0] for action in controller.actions}
    assert named <= {"default", "latency"}, "each reason names the policy that decided"
    assert any(action.reason.startswith("latency: ") for action in alarms.actions)


def test_a_pool_scaling_to_zero_wakes_on_the_first_task_and_sleeps_once_drained() -> None:
    # A quiet hour with ten tasks in its middle: the simulated pool starts at 0 tasks,
    # activation takes it to 1 for them, and it returns to 0 once they are done.
    pool = design_pool(minCapacity=0, metric="queue_depth", activation=0)
    load = Workload("ten", (Segment(0, 1800, 0), Segment(1800, 1801, 10), Segment(1801, 3600, 0)))
    result = simulate(pool, load, SimSettings(interval=15, mean_duration=5))
    run = result.runs[0]
    assert run.timeline[0].desired == 0
    first = run.actions[0]
    assert (first.current, first.desired) == (0, 1)
    assert 1800 <= first.time <= 1815
    assert run.unfinished == 0
    assert run.timeline[-1].desired == 0


def test_a_schedule_raises_the_floor_in_the_simulation() -> None:
    # The simulated clock is epoch seconds: a schedule firing 10 minutes in holds 3 tasks.
    start = 1_772_618_400.0  # 2026-03-04T10:00:00Z
    raise_at = "at(2026-03-04T10:10:00)"
    pool = design_pool(schedules=[{"name": "busy", "schedule": raise_at, "minCapacity": 3}])
    load = Workload("quiet", (Segment(start, start + 1800, 0),))
    run = simulate(pool, load, SimSettings(interval=15)).runs[0]
    (action,) = run.actions
    assert (action.time - start, action.current, action.desired) == (600, 1, 3)
