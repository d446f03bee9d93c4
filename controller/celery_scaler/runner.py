"""The continuous loop: a pass every interval until asked to stop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from .config import WorkerPool
from .reconcile import PoolResult, Reconciler


def run_forever(
    reconciler: Reconciler,
    stop: threading.Event,
    on_pass: Callable[[list[PoolResult]], None],
    *,
    dry_run: bool = False,
    only: Sequence[WorkerPool] | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Reconcile every `interval`; a stop request lets the pass in flight finish."""
    interval = reconciler.config.controller.interval
    while not stop.is_set():
        started = time.monotonic()
        on_pass(reconciler.reconcile(clock(), dry_run=dry_run, only=only))
        # Passes start on a fixed cadence; a slow pass shortens the wait, never stacks.
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, with the previous handlers restored after."""
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
