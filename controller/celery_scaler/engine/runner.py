"""Running passes: once, or every interval until asked to stop, handing each to reporters."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from celery_scaler.core.config import WorkerPool
from celery_scaler.core.errors import AdapterError
from celery_scaler.engine.reconcile import PassReport, Reconciler

log = logging.getLogger(__name__)

Reporter = Callable[[PassReport], None]
"""Takes a finished pass: prints it, publishes its metrics, logs it."""


def run_once(
    reconciler: Reconciler,
    reporters: Sequence[Reporter],
    *,
    dry_run: bool = False,
    only: Sequence[WorkerPool] | None = None,
    clock: Callable[[], float] = time.time,
) -> PassReport:
    """One pass, then every reporter; a failing reporter never undoes or stops scaling."""
    report = reconciler.reconcile(clock(), dry_run=dry_run, only=only)
    for reporter in reporters:
        try:
            reporter(report)
        except Exception:
            log.exception("reporter %r failed", reporter)
    return report


def run_forever(
    reconciler: Reconciler,
    stop: threading.Event,
    reporters: Sequence[Reporter],
    *,
    dry_run: bool = False,
    only: Sequence[WorkerPool] | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Reconcile every `interval`; a stop request lets the pass in flight finish."""
    interval = reconciler.config.controller.interval
    try:
        while not stop.is_set():
            started = time.monotonic()
            run_once(reconciler, reporters, dry_run=dry_run, only=only, clock=clock)
            # Passes start on a fixed cadence; a slow pass shortens the wait, never stacks.
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        release_leases(reconciler)


def release_leases(reconciler: Reconciler) -> None:
    """Hand the pools back, so other replicas take them at once instead of at expiry."""
    if reconciler.election is None:
        return
    try:
        reconciler.election.release_all()
    except AdapterError as exc:
        log.warning("could not release leases (they expire by themselves): %s", exc)


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
