"""Each Celery task's fate on the local fleet, from the ledger and how workers ended (pure)."""

from __future__ import annotations

import pytest

from celery_scaler.local.ledger import Entry, WorkerEnd, fates


def run(task: str, worker: str, start: float, end: float | None = None) -> list[Entry]:
    entries = [Entry(task, "started", worker, start)]
    if end is not None:
        entries.append(Entry(task, "finished", worker, end))
    return entries


@pytest.mark.parametrize(
    ("entries", "ended", "counts"),
    [
        # (completed, interrupted, redelivered, lost, running)
        (run("t", "w1", 0, 5), {}, (1, 0, 0, 0, 0)),
        (run("t", "w1", 0), {}, (0, 0, 0, 0, 1)),  # still running
        (run("t", "w1", 0), {"w1": "killed"}, (0, 1, 0, 1, 0)),  # SIGKILL: lost
        (run("t", "w1", 0), {"w1": "crashed"}, (0, 1, 0, 1, 0)),
        (run("t", "w1", 0), {"w1": "closed"}, (0, 0, 0, 0, 1)),  # cut by the fleet closing
        # acks_late: delivered again and completed elsewhere.
        (run("t", "w1", 0) + run("t", "w2", 9, 14), {"w1": "killed"}, (1, 1, 1, 0, 0)),
        # Delivered again and still running.
        (run("t", "w1", 0) + run("t", "w2", 9), {"w1": "killed"}, (0, 1, 1, 0, 1)),
        # A warm shutdown finished it: never interrupted.
        (run("t", "w1", 0, 3), {"w1": "stopped"}, (1, 0, 0, 0, 0)),
    ],
)
def test_fates(
    entries: list[Entry], ended: dict[str, WorkerEnd], counts: tuple[int, int, int, int, int]
) -> None:
    found = fates(entries, ended)
    assert (
        found.completed,
        found.interrupted,
        found.redelivered,
        found.lost,
        found.running,
    ) == counts


def test_entries_round_trip_and_name_the_interrupted_tasks_of_a_worker() -> None:
    entry = Entry("t1", "started", "w1@host", 12.5)
    assert Entry.parse(entry.dumps()) == entry
    found = fates(run("t1", "w1", 0) + run("t2", "w2", 0) + run("t3", "w1", 1, 2), {"w1": "killed"})
    assert found.interrupted_on("w1") == ["t1"]
