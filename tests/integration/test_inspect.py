"""CeleryInspector against real worker processes on Redis and RabbitMQ.

Each test's workers and inspector share a control exchange of that test's own, so
workers of tests running at the same time on the same broker never answer: every worker
that answers is reported, and a test that wants strangers starts its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from celery_scaler.adapters import celery_inspect
from celery_scaler.adapters.celery_inspect import STATE, CeleryInspector, Command, inspector_for
from celery_scaler.core.errors import AdapterError
from celery_scaler.core.metrics import workers_in_pool
from celery_scaler.core.model import WorkerSnapshot
from celery_scaler.core.ports import ExpectedWorkers, WorkerInspector
from tests.workers import Worker, start_workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def control(unique: str) -> str:
    return f"celery-{unique}"


@pytest.fixture
def orders(unique: str) -> list[str]:
    return [f"orders-{unique}"]


@pytest.fixture
def inspector(redis_url: str, control: str) -> Iterator[CeleryInspector]:
    with inspector_for(redis_url, timeout=3.0, control_exchange=control) as inspector:
        yield inspector


def timed(
    inspector: CeleryInspector, expected: ExpectedWorkers
) -> tuple[float, dict[str, WorkerSnapshot]]:
    started = time.monotonic()
    workers = inspector.inspect(expected)
    return time.monotonic() - started, {worker.name: worker for worker in workers}


def pool(queues: Sequence[str], running: int) -> ExpectedWorkers:
    """What the controller expects of a pool on `queues` with `running` ECS tasks."""
    return {frozenset(queues): running}


def assert_idle_and_reported(
    workers: Sequence[Worker],
    seen: dict[str, WorkerSnapshot],
    concurrency: int = 1,
    scheduled: int | None = 0,
) -> None:
    for worker in workers:
        snapshot = seen[worker.name]
        assert snapshot.queues == frozenset(worker.queues)
        assert snapshot.concurrency == concurrency
        assert (snapshot.active, snapshot.reserved, snapshot.scheduled) == (0, 0, scheduled)
        assert snapshot.max_rss_kb is not None
        assert snapshot.max_rss_kb > 0


def test_is_a_worker_inspector() -> None:
    inspector: WorkerInspector = inspector_for("redis://127.0.0.1:1/0", 1.0)
    assert callable(inspector.inspect)


def test_reports_every_worker_with_its_queues_and_concurrency(
    redis_url: str, control: str, orders: list[str], inspector: CeleryInspector
) -> None:
    with start_workers(redis_url, 3, orders, control_exchange=control) as fleet:
        _, seen = timed(inspector, pool(orders, 3))
        assert set(seen) == fleet.names
        assert_idle_and_reported(list(fleet), seen)
        assert inspector.known_workers == fleet.names


def test_reports_the_threads_pool_concurrency(
    redis_url: str, control: str, orders: list[str], inspector: CeleryInspector
) -> None:
    with start_workers(
        redis_url, 1, orders, pool="threads", concurrency=3, control_exchange=control
    ) as fleet:
        _, seen = timed(inspector, pool(orders, 1))
        assert set(seen) == fleet.names
        assert_idle_and_reported(list(fleet), seen, concurrency=3)


def test_a_busy_worker_shows_its_task_and_its_pool(
    redis_url: str, control: str, unique: str, inspector: CeleryInspector
) -> None:
    orders, emails = f"orders-{unique}", f"emails-{unique}"
    with (
        start_workers(redis_url, 2, [orders], control_exchange=control) as order_workers,
        start_workers(redis_url, 1, [emails], control_exchange=control) as email_workers,
    ):
        busy = order_workers[0]
        order_workers.make_busy(busy)

        _, seen = timed(inspector, {**pool([orders], 2), **pool([emails], 1)})

        assert seen[busy.name].active == 1
        assert seen[busy.name].busy
        assert seen[order_workers[1].name].active == 0
        everyone = tuple(seen.values())
        assert {w.name for w in workers_in_pool(everyone, [orders])} == order_workers.names
        assert {w.name for w in workers_in_pool(everyone, [emails])} == email_workers.names
        assert [w.name for w in workers_in_pool(everyone, [orders]) if w.busy] == [busy.name]


def test_returns_as_soon_as_every_expected_worker_answered(
    redis_url: str, control: str, orders: list[str], inspector: CeleryInspector
) -> None:
    with start_workers(redis_url, 3, orders, control_exchange=control) as fleet:
        # First round: ECS's count is all there is to wait for. Timeout 3 s.
        elapsed, seen = timed(inspector, pool(orders, 3))
        assert set(seen) == fleet.names
        assert elapsed < 3.0 / 2
        # Later rounds: last round's names are enough, even without a count.
        elapsed, seen = timed(inspector, {})
        assert set(seen) == fleet.names
        assert elapsed < 3.0 / 2


def test_a_pool_hears_all_its_own_workers_among_others(
    redis_url: str, control: str, orders: list[str], unique: str
) -> None:
    timeout = 5.0
    with (
        # Workers of no pool (or of a pool another replica holds) on the same broker and
        # control exchange, started first: they answer too, and often first.
        start_workers(
            redis_url, 6, [f"others-{unique}"], pool="threads", control_exchange=control
        ) as others,
        start_workers(redis_url, 3, orders, control_exchange=control) as fleet,
        inspector_for(redis_url, timeout=timeout, control_exchange=control) as inspector,
    ):
        for _ in range(3):  # the first round, then rounds that know last round's workers
            elapsed, seen = timed(inspector, pool(orders, 3))
            assert {w.name for w in workers_in_pool(seen.values(), orders)} == fleet.names
            assert set(seen) <= fleet.names | others.names
            # Everyone answered: the round stopped early, not at its timeout.
            assert elapsed < timeout / 2


def test_others_answering_do_not_end_the_wait_for_a_missing_worker_of_the_pool(
    redis_url: str, control: str, orders: list[str], unique: str
) -> None:
    with (
        start_workers(
            redis_url, 3, [f"others-{unique}"], pool="threads", control_exchange=control
        ) as others,
        start_workers(redis_url, 2, orders, control_exchange=control) as fleet,
        inspector_for(redis_url, timeout=0.5, control_exchange=control) as inspector,
    ):
        elapsed, seen = timed(inspector, pool(orders, 3))
        assert {w.name for w in workers_in_pool(seen.values(), orders)} == fleet.names
        assert set(seen) <= fleet.names | others.names
        assert 0.45 <= elapsed < 0.5 + 1.0


def test_waits_the_whole_timeout_for_a_worker_that_does_not_exist(
    redis_url: str, control: str, orders: list[str]
) -> None:
    with (
        start_workers(redis_url, 2, orders, control_exchange=control) as fleet,
        inspector_for(redis_url, timeout=0.5, control_exchange=control) as inspector,
    ):
        elapsed, seen = timed(inspector, pool(orders, 3))
        assert set(seen) == fleet.names
        assert 0.45 <= elapsed < 0.5 + 1.0


def test_a_hung_worker_costs_one_timeout_and_the_others_are_reported(
    redis_url: str, control: str, orders: list[str]
) -> None:
    timeout = 1.0
    with (
        start_workers(redis_url, 3, orders, control_exchange=control) as fleet,
        inspector_for(redis_url, timeout=timeout, control_exchange=control) as inspector,
    ):
        _, seen = timed(inspector, pool(orders, 3))
        assert set(seen) == fleet.names
        hung, *alive = fleet

        with fleet.paused(hung):
            # Expected only because it answered the previous round.
            elapsed, seen = timed(inspector, {})
            assert timeout * 0.9 <= elapsed < timeout + 1.0  # one timeout, not 6 x
            assert set(seen) == {worker.name for worker in alive}
            assert_idle_and_reported(alive, seen)

            # Forgotten once it missed a round: the next one is quick again.
            elapsed, seen = timed(inspector, {})
            assert set(seen) == {worker.name for worker in alive}
            assert elapsed < timeout / 2

        # Its late replies to the rounds it slept through are told apart by ticket.
        elapsed, seen = timed(inspector, pool(orders, 3))
        assert set(seen) == fleet.names
        assert elapsed < timeout / 2


def record_commands(
    inspector: CeleryInspector, monkeypatch: pytest.MonkeyPatch
) -> list[list[tuple[str, tuple[str, ...] | None]]]:
    """Each publish of the inspector: (command, destination) of every command in it."""
    published: list[list[tuple[str, tuple[str, ...] | None]]] = []
    publish_all = inspector._publish_all

    def recording(connection: Any, channel: Any, tickets: Mapping[str, Command]) -> None:
        published.append([(command.method, command.destination) for command in tickets.values()])
        publish_all(connection, channel, tickets)

    monkeypatch.setattr(inspector, "_publish_all", recording)
    return published


def test_queue_membership_is_asked_once_then_of_a_new_worker_alone(
    redis_url: str, control: str, orders: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        start_workers(redis_url, 2, orders, control_exchange=control) as fleet,
        inspector_for(
            redis_url, timeout=3.0, control_exchange=control, metrics={"queue_depth"}
        ) as inspector,
    ):
        published = record_commands(inspector, monkeypatch)
        _, seen = timed(inspector, pool(orders, 2))
        assert published == [[(c, None) for c in (*STATE, "active_queues")]]
        assert_idle_and_reported(list(fleet), seen, scheduled=None)

        # Later rounds: the state commands only, the queues as kept.
        elapsed, seen = timed(inspector, pool(orders, 2))
        assert published[1:] == [[(c, None) for c in STATE]]
        assert_idle_and_reported(list(fleet), seen, scheduled=None)
        assert elapsed < 3.0 / 2

        # A worker new to the round: its queues asked of it alone, within the same round.
        with start_workers(redis_url, 1, orders, control_exchange=control) as newcomer:
            (new,) = newcomer
            del published[:]
            elapsed, seen = timed(inspector, pool(orders, 3))
            assert published == [
                [(c, None) for c in STATE],
                [("active_queues", (new.name,))],
            ]
            assert set(seen) == fleet.names | {new.name}
            assert_idle_and_reported([*fleet, new], seen, scheduled=None)
            assert elapsed < 3.0 / 2


def test_scheduled_and_revoked_are_asked_when_a_pool_scales_on_one(
    redis_url: str, control: str, orders: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        start_workers(redis_url, 1, orders, control_exchange=control) as fleet,
        inspector_for(
            redis_url, timeout=3.0, control_exchange=control, metrics={"scheduled_tasks"}
        ) as inspector,
    ):
        published = record_commands(inspector, monkeypatch)
        _, seen = timed(inspector, pool(orders, 1))
        assert [method for method, _ in published[0]] == [*STATE, "scheduled", "active_queues"]
        (worker,) = seen.values()
        assert (worker.scheduled, worker.revoked) == (0, None)
        assert set(seen) == fleet.names


@pytest.mark.parametrize("prefix", ["", "app:"], ids=["plain", "global_keyprefix"])
def test_replies_waiting_in_redis_are_taken_in_one_request(
    redis_url: str, control: str, orders: list[str], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """9 replies (3 workers x 3 commands) all waiting: one BRPOP takes the first, one
    RPOP the other 8, through kombu's delivery (a key prefix applies to both)."""
    options = {"global_keyprefix": f"{prefix}{control}:"} if prefix else {}
    taken: list[object] = []
    real_loads = celery_inspect.loads

    def counted(text: str) -> object:
        taken.append(text)
        return real_loads(text)

    with (
        start_workers(
            redis_url, 3, orders, control_exchange=control, transport_options=options
        ) as fleet,
        inspector_for(
            redis_url,
            timeout=3.0,
            control_exchange=control,
            transport_options=options,
            metrics=set(),
        ) as inspector,
    ):
        timed(inspector, pool(orders, 3))  # learns the queues: later rounds are 3 commands
        real_complete = celery_inspect.round_complete
        waited: list[bool] = []

        def after_a_pause(*args: Any, **kwargs: Any) -> bool:
            if not waited:  # once, before the first reply is read: all of them arrive
                waited.append(True)
                time.sleep(0.5)
            return real_complete(*args, **kwargs)

        monkeypatch.setattr(celery_inspect, "round_complete", after_a_pause)
        monkeypatch.setattr(celery_inspect, "loads", counted)
        _, seen = timed(inspector, pool(orders, 3))
        assert set(seen) == fleet.names
        assert_idle_and_reported(list(fleet), seen, scheduled=None)
        assert len(taken) == 3 * len(STATE) - 1


def test_reconnects_after_close(
    redis_url: str, control: str, orders: list[str], inspector: CeleryInspector
) -> None:
    with start_workers(redis_url, 1, orders, control_exchange=control) as fleet:
        assert set(timed(inspector, pool(orders, 1))[1]) == fleet.names
        inspector.close()
        assert set(timed(inspector, pool(orders, 1))[1]) == fleet.names


def test_on_rabbitmq(amqp_url: str, control: str, orders: list[str]) -> None:
    timeout = 2.0
    with (
        start_workers(amqp_url, 2, orders, control_exchange=control) as fleet,
        inspector_for(amqp_url, timeout=timeout, control_exchange=control) as inspector,
    ):
        elapsed, seen = timed(inspector, pool(orders, 2))
        assert set(seen) == fleet.names
        assert_idle_and_reported(list(fleet), seen)
        assert elapsed < timeout / 2

        hung, busy = fleet
        fleet.make_busy(busy)
        with fleet.paused(hung):
            elapsed, seen = timed(inspector, {})
            assert timeout * 0.9 <= elapsed < timeout + 1.0
            assert set(seen) == {busy.name}
            assert seen[busy.name].active == 1


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@127.0.0.1:1/0",
        "amqp://guest:s3cret@127.0.0.1:1//",
    ],
)
def test_an_unreachable_broker_is_an_adapter_error_quickly(url: str) -> None:
    with inspector_for(url, timeout=1.0) as inspector:
        started = time.monotonic()
        with pytest.raises(AdapterError) as raised:
            inspector.inspect(pool(["orders"], 1))
        assert time.monotonic() - started < 2.0
        assert "s3cret" not in str(raised.value)
        assert "127.0.0.1:1" in str(raised.value)
