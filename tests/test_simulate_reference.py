"""The simulator's engine gives, seed for seed, the results it gave before it was made faster.

Each case draws arrivals (trace rows and Poisson patterns) and runs the engine under an
actor that sets the desired count on a seeded schedule (scale-outs, scale-ins of serving
workers chosen at random, cancelled starts) and records every observation it is handed.
The digests below were taken from the engine as it was before `arrivals` drew in bulk
and `_Pool` stopped scanning slots (issue 16); any change to a waiting time, a worker
second, a random draw or an observation changes them. The actor is scripted rather
than the controller, so a change to the scaling policy does not move these digests.

To take them again after a deliberate change to the engine's results:

    python -m tests.test_simulate_reference
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest

from celery_scaler.analysis.simulate import SimSettings, run_policy
from celery_scaler.analysis.workload import Pattern, Segment, Workload, arrivals, pattern
from celery_scaler.core.model import Action, Decision, Observation
from tests.helpers import design_pool


@dataclass
class Scripted:
    """Sets the desired count on a seeded schedule; keeps what each observation said."""

    seed: int
    name: str = "scripted"
    next_time: float = 0.0
    seen: list[tuple[object, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def act(self, now: float, obs: Observation) -> Decision | None:
        assert obs.broker is not None
        assert obs.service is not None
        assert obs.workers is not None
        service = obs.service
        self.seen.append(
            (
                now,
                obs.broker.queue_depth,
                obs.broker.latency_seconds,
                (service.desired, service.running, service.pending),
                tuple((worker.name, worker.active) for worker in obs.workers),
            )
        )
        # Quick successive changes too, so a scale-in meets workers still starting.
        self.next_time = now + self._rng.choice((15.0, 30.0, 300.0, 900.0))
        desired = self._rng.randint(0, 24)
        return Decision(Action.SCALE_OUT, service.desired, desired, "scripted", None, "scripted")


CASES: dict[str, tuple[Workload, SimSettings]] = {
    "trace rows": (
        Workload(
            "rows",
            tuple(
                Segment(minute * 60.0, minute * 60.0 + 60, float(count), mean_duration=mean)
                for minute, (count, mean) in enumerate(
                    [(120, None), (600, 4.0), (0, None), (1200, None), (60, 30.0)] * 24
                )
            ),
        ),
        SimSettings(interval=15, concurrency=4, start_delay=60, seed=5),
    ),
    "spiky pattern": (
        pattern(Pattern.SPIKY, 2.0, 6 * 3600, random.Random(3)),
        SimSettings(interval=15, concurrency=2, start_delay=45, seed=3),
    ),
    "burst pattern": (
        pattern(Pattern.BURST, 5.0, 6 * 3600, random.Random(11)),
        SimSettings(interval=15, concurrency=8, start_delay=90, mean_duration=20, seed=11),
    ),
    "no start delay": (
        pattern(Pattern.DIURNAL, 3.0, 4 * 3600, random.Random(7)),
        SimSettings(interval=15, concurrency=1, start_delay=0, seed=7),
    ),
}

DIGESTS = {
    "trace rows": "c3a0c99fbd75c4668746e9d4008d2672f22becc7a342b6e5fc050a100169e6c3",
    "spiky pattern": "87516bf1abe3f583eee2dee50367de38e207a024d9027cc3d9f9d5b86ff5eec3",
    "burst pattern": "b0dc89207beb063432f79a1aae83d9bd14d0e242a2384f3748a570efa4543038",
    "no start delay": "e4702c124ce2af4fbab27232182de53903d85bfde6f1035ef335da618460b026",
}


def digest(case: str) -> str:
    workload, settings = CASES[case]
    load = arrivals(workload, settings.mean_duration, random.Random(settings.seed))
    actor = Scripted(settings.seed)
    run = run_policy(
        design_pool(),
        load,
        workload.start,
        workload.end,
        settings,
        [actor],
        name="scripted",
        description="",
    )
    # repr gives every float exactly (shortest round-trip form).
    text = repr((load.times, load.durations, actor.seen, run))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_results_as_before_for_the_same_seed(case: str) -> None:
    assert digest(case) == DIGESTS[case]


if __name__ == "__main__":
    for name in CASES:
        print(f"    {name!r}: {digest(name)!r},")
