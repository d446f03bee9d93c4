"""The local fleet's ECS scheduler choices (pure): which tasks start and stop."""

from __future__ import annotations

import random

import pytest

from celery_scaler.local.fleet import SchedulerStep, TaskView, schedule


def tasks(*specs: str) -> list[TaskView]:
    """`a1r`: task a, task definition 1, running (`p`: still starting)."""
    return [TaskView(spec[0], spec[1], spec[2] == "r") for spec in specs]


@pytest.mark.parametrize(
    ("desired", "definition", "current", "protected", "step"),
    [
        (3, "1", tasks("a1r"), (), SchedulerStep(start=2)),
        (1, "1", tasks("a1r"), (), SchedulerStep()),
        # Scale-in: protected tasks are never chosen; the scheduler waits on them.
        (
            1,
            "1",
            tasks("a1r", "b1r", "c1r"),
            {"a", "b"},
            SchedulerStep(stop=("c",), waiting_on=("a", "b")),
        ),
        (1, "1", tasks("a1r", "b1r", "c1r"), {"a"}, SchedulerStep(stop=("b", "c"))),
        (0, "1", tasks("a1r", "b1r"), {"a", "b"}, SchedulerStep(waiting_on=("a", "b"))),
        (0, "1", tasks("a1r", "b1r"), {"b"}, SchedulerStep(stop=("a",), waiting_on=("b",))),
        # A deployment at 100/200: new tasks start first; old ones stop while 2 still run,
        # a protected one only once its protection ends.
        (2, "2", tasks("a1r", "b1r"), (), SchedulerStep(start=2)),
        (2, "2", tasks("a1r", "b1r", "c2p", "d2p"), (), SchedulerStep()),
        (
            2,
            "2",
            tasks("a1r", "b1r", "c2r", "d2r"),
            {"a"},
            SchedulerStep(stop=("b",), waiting_on=("a",)),
        ),
        (2, "2", tasks("a1r", "c2r", "d2r"), {"a"}, SchedulerStep(waiting_on=("a",))),
        (2, "2", tasks("a1r", "c2r", "d2r"), (), SchedulerStep(stop=("a",))),
        # An old task still starting stops at once: it holds no capacity yet.
        (1, "2", tasks("a1p", "b2r"), (), SchedulerStep(stop=("a",))),
    ],
)
def test_schedule(
    desired: int, definition: str, current: list[TaskView], protected: set[str], step: SchedulerStep
) -> None:
    assert schedule(desired, definition, current, protected, random.Random(0)) == step


def test_minimum_healthy_and_maximum_percent_bound_a_deployment() -> None:
    current = tasks("a1r", "b1r", "c1r", "d1r")
    # 50/100: no room above desired, so half the old tasks stop first.
    step = schedule(4, "2", current, (), random.Random(0), minimum_healthy_percent=50,
                    maximum_percent=100)  # fmt: skip
    assert (step.start, len(step.stop)) == (0, 2)


def test_the_choice_ignores_everything_but_protection_and_is_reproducible() -> None:
    current = tasks(*(f"{name}1r" for name in "abcdefgh"))
    first = schedule(4, "1", current, (), random.Random(3))
    assert first == schedule(4, "1", current, (), random.Random(3))
    assert len(first.stop) == 4
    chosen = {schedule(7, "1", current, (), random.Random(seed)).stop for seed in range(20)}
    assert len(chosen) > 1
