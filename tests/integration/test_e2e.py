"""The whole loop with real parts: controller, real Celery workers run by the local fleet,
Redis, and the local AWS API. Timelines are asserted with bounded waits on conditions.

Durations are compressed (0.5 s passes, 1 s task start, 2 s cooldowns) so the three
tests together take about a minute and a half.
"""

from __future__ import annotations

import io
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from rich.console import Console

from celery_scaler.compose import build
from celery_scaler.core.config import parse_config
from celery_scaler.engine.runner import run_forever
from celery_scaler.local.aws_api import LocalAws
from celery_scaler.local.demo import (
    SERVICE,
    DemoSettings,
    RedisServer,
    Sample,
    TaskSender,
    Timeline,
    delete_keys,
    demo_config_text,
    run_demo,
)
from celery_scaler.local.fleet import LocalFleet, local_fleet
from tests.workers import wait_for

pytestmark = pytest.mark.integration

SETTINGS = DemoSettings(interval=0.5, start_delay=1.0, cooldown=2.0, max_capacity=5)


@dataclass
class Loop:
    fleet: LocalFleet
    timeline: Timeline
    sender: TaskSender

    def samples(self, since: float = 0.0) -> list[Sample]:
        return [s for s in self.timeline.snapshot() if s.time >= since]

    def applied(self, action: str, since: float = 0.0) -> list[Sample]:
        return [s for s in self.samples(since) if s.result.applied and s.result.action == action]

    def at_min(self) -> bool:
        counts = self.fleet.counts()
        samples = self.samples()
        return (
            bool(samples)
            and samples[-1].desired == SETTINGS.min_capacity
            and counts.running == SETTINGS.min_capacity
            and counts.stopping == counts.pending == 0
        )

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        def details() -> str:
            events = "\n".join(e.describe() for e in self.fleet.events()[-10:])
            passes = "\n".join(
                f"{s.time:.1f} {s.result.action} {s.result.reason} {s.result.error or ''}"
                for s in self.samples()[-10:]
            )
            return f"fleet:\n{events}\npasses:\n{passes}"

        wait_for(condition, timeout, what, details)


@contextmanager
def closed_loop(aws: LocalAws, broker: str, unique: str) -> Iterator[Loop]:
    """The service at its minimum with its workers up, and the controller running."""
    cluster, queue, exchange = f"e2e-{unique}", f"e2e-{unique}.tasks", f"e2e-{unique}"
    aws.create_service(cluster, SERVICE, SETTINGS.min_capacity)
    config = parse_config(
        demo_config_text(broker, queue, exchange, SETTINGS, cluster=cluster), "e2e"
    )
    fleet = local_fleet(
        aws,
        cluster,
        SERVICE,
        broker,
        [queue],
        control_exchange=exchange,
        start_delay=SETTINGS.start_delay,
        stop_timeout=10,
        poll_interval=0.5,
        name_prefix=f"e2e{unique}",
    )
    sender = TaskSender(broker, queue, f"e2e-{unique}.report")
    stop = threading.Event()
    loop = Loop(fleet, Timeline(fleet, "demo"), sender)
    try:
        with fleet:
            controller = threading.Thread(
                target=run_forever, args=(build(config), stop, [loop.timeline.record])
            )
            controller.start()
            try:
                # Steady state first: the minimum's worker answers inspect.
                loop.wait(
                    lambda: any(s.answered == SETTINGS.min_capacity for s in loop.samples()),
                    30,
                    "the first worker to answer",
                )
                yield loop
            finally:
                stop.set()
                controller.join(15)
            assert not controller.is_alive(), "the controller did not stop"
        assert all(not worker.alive for worker in fleet.workers)
    finally:
        sender.close()
        delete_keys(broker, f"e2e-{unique}")


def assert_scale_in_only_on_full_data(samples: list[Sample]) -> None:
    """Every applied scale-in saw every running worker answer and kept the busy ones."""
    for sample in samples:
        if sample.result.applied and sample.result.action == "scale_in":
            assert sample.result.error is None, sample.result.reason
            assert sample.answered is not None
            assert sample.current is not None
            assert sample.answered >= sample.current, sample.result.reason
            assert sample.busy is not None
            assert sample.desired is not None
            assert sample.busy <= sample.desired, sample.result.reason


def test_burst_scales_out_drains_and_returns_to_min_with_a_worker_killed(
    aws: LocalAws, redis_url: str, unique: str
) -> None:
    tasks = 20
    with closed_loop(aws, redis_url, unique) as loop:
        burst_at = time.time()
        loop.sender.send(1.0, tasks)
        loop.wait(lambda: bool(loop.applied("scale_out", burst_at)), 10, "a scale-out")
        first_out = loop.applied("scale_out", burst_at)[0]
        assert first_out.queue_depth, "scaled out on a queue it saw"

        # Mid-run: SIGKILL a busy worker (as an OOM kill would). ECS replaces the task.
        def busy_fleet() -> bool:
            samples = loop.samples()
            return (
                loop.fleet.counts().running >= 3 and bool(samples) and (samples[-1].busy or 0) >= 2
            )

        loop.wait(busy_fleet, 20, "three workers running, two busy")
        victim = loop.fleet.workers[-1]
        victim.signal(signal.SIGKILL)
        killed_at = time.time()
        loop.wait(
            lambda: any(
                e.kind == "exited" and e.worker == victim.name for e in loop.fleet.events()
            ),
            10,
            "the fleet to see the killed worker",
        )

        # The burst drains (the killed worker's running task is lost: no acks_late)...
        loop.wait(
            lambda: len(loop.sender.records()) >= tasks - 1 and loop.samples()[-1].queue_depth == 0,
            60,
            "the burst to drain",
        )
        drained_at = time.time()
        # ...and the service comes back to its minimum.
        loop.wait(loop.at_min, 60, "the service back at its minimum")

        samples = loop.samples(burst_at)
        assert first_out.time - burst_at < 5
        assert max(s.desired or 0 for s in samples) >= 3
        assert any(s.time > killed_at + 2 for s in samples), "the controller kept going"
        assert all(s.result.error is None for s in samples), "no pass failed"
        assert_scale_in_only_on_full_data(samples)
        scale_ins = loop.applied("scale_in", burst_at)
        assert scale_ins
        assert scale_ins[-1].desired == SETTINGS.min_capacity
        assert scale_ins[0].time > first_out.time
        assert scale_ins[-1].time > drained_at - 5, "not back at the minimum before the drain"
        replaced = [e for e in loop.fleet.events() if e.kind == "started" and e.time > killed_at]
        assert replaced, "the killed worker was replaced"


def test_broker_restart_holds_and_recovers(aws: LocalAws, unique: str) -> None:
    # A private Redis: restarting the shared one would break everyone else's tests.
    with RedisServer() as server, closed_loop(aws, server.url, unique) as loop:
        loop.sender.send(2.0, 12)
        loop.wait(lambda: loop.fleet.counts().running >= 3, 20, "a scale-out to 3 workers")
        server.stop()
        down_at = time.time()
        loop.wait(
            lambda: sum(1 for s in loop.samples(down_at) if s.result.error) >= 3,
            15,
            "three passes to fail while the broker is down",
        )
        outage = [s for s in loop.samples(down_at) if s.result.error]
        before = outage[0].current
        # Never scale in (or out) on missing data: hold at the count it had.
        assert all(s.result.action == "hold" and not s.result.applied for s in outage)
        assert all(s.desired == before for s in outage)

        server.start()  # empty: no persistence, the queued burst is gone
        up_at = time.time()
        loop.wait(
            lambda: any(s.result.error is None for s in loop.samples(up_at)),
            20,
            "a clean pass after the broker came back",
        )
        # Workers reconnect, answer inspect again, and the idle fleet scales back in.
        loop.wait(loop.at_min, 60, "the service back at its minimum")
        assert_scale_in_only_on_full_data(loop.samples())
        assert loop.applied("scale_in", up_at)


def test_demo_runs_the_whole_loop_and_summarizes(redis_url: str) -> None:
    """`celery-scaler demo`'s run, compressed further; plain lines on a non-terminal."""
    settings = DemoSettings(
        redis_url=redis_url,
        interval=0.5,
        start_delay=1.0,
        cooldown=2.0,
        quiet_seconds=2.0,
        burst_tasks=12,
        task_seconds=1.0,
        max_capacity=4,
        time_limit=60,
    )
    output = io.StringIO()
    console = Console(file=output, width=200)
    summary = run_demo(settings, console)

    printed = output.getvalue()
    assert not summary.interrupted
    assert summary.burst_at is not None
    assert summary.first_scale_out is not None
    assert summary.first_scale_out.time >= summary.burst_at
    assert summary.drained_at is not None
    assert summary.back_to_min_at is not None
    assert summary.burst_at < summary.drained_at < summary.back_to_min_at
    assert summary.peak_desired >= 2
    assert len(summary.waits) == settings.burst_tasks
    assert summary.ended - summary.started < settings.time_limit
    assert "scale-out (applied)" in printed
    assert "fleet demo-2@" in printed
    assert "\x1b[" not in printed, "no terminal control codes when not on a terminal"
