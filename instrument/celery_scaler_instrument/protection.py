"""A worker on ECS protects its own task from scale-in while it has tasks to run.

Where the controller cannot drain a worker (the SQS transport has no remote control: no
inspect, no `cancel_consumer`), ECS picks which task to stop on scale-in knowing nothing
of Celery, and SIGKILLs it after its stopTimeout. Task scale-in protection is the one
thing that changes its choice, and only the worker knows when it is busy. So, in a worker
whose container runs on ECS (`ECS_AGENT_URI` is set by the ECS agent):

- as soon as a task is received (Celery's `task_received`, in the worker's main process,
  before it waits for a pool slot), the task is protected through the agent's endpoint
  (`$ECS_AGENT_URI/task-protection/v1/state`, no AWS credentials needed);
- a thread renews the protection while the worker holds any task (received, reserved or
  running) and releases it once the worker has held none for `idle_for` seconds.

A task received right after a release is protected again at once; between the two, ECS
may still choose this task, the only gap left (the controller's drain-then-remove, where
the broker allows it, has none). Protection lasts `minutes` at a time, so a worker that
dies with it on frees its task when it expires.

Only the standard library: this package needs Celery alone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

AGENT_ENV = "ECS_AGENT_URI"


class TaskProtection:
    """Keeps this ECS task protected while the worker holds tasks; one per worker process."""

    def __init__(
        self,
        agent_uri: str,
        *,
        minutes: int = 60,
        every: float = 15.0,
        idle_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        holding: Callable[[], bool] | None = None,
    ) -> None:
        self.url = f"{agent_uri.rstrip('/')}/task-protection/v1/state"
        self.minutes = minutes
        self.every = every
        self.idle_for = idle_for
        self._clock = clock
        self._holding = holding or _worker_holds_tasks
        self._lock = threading.Lock()
        self._protected_until: float | None = None
        self._last_busy = float("-inf")
        self._stop = threading.Event()

    @property
    def protected(self) -> bool:
        return self._protected_until is not None

    def received(self) -> None:
        """A task arrived: protect now, unless protection holds for a while yet."""
        with self._lock:
            self._last_busy = self._clock()
            until = self._protected_until
            if until is None or until - self._clock() < 2 * self.every:
                self._set(True)

    def tick(self) -> None:
        """Renew while the worker holds tasks; release once it has held none for a while."""
        with self._lock:
            now = self._clock()
            if self._holding():
                self._last_busy = now
                until = self._protected_until
                if until is None or until - now < 2 * self.every:
                    self._set(True)
            elif self._protected_until is not None and now - self._last_busy >= self.idle_for:
                self._set(False)

    def run(self) -> None:
        """`tick` every `every` seconds until `stop`."""
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception:  # the worker must outlive a failed renewal
                log.exception("task protection: renewal failed")

    def stop(self) -> None:
        self._stop.set()

    def _set(self, enabled: bool) -> None:
        body: dict[str, Any] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.minutes
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                answer = json.loads(response.read() or b"{}")
        except (OSError, ValueError) as exc:
            log.warning("task protection: the ECS agent did not answer: %s", exc)
            return
        refused = answer.get("failure") or answer.get("error")
        if refused:
            # A deployment or an expired task refuses it; nothing to do but say so.
            log.warning("task protection: ECS refused %s: %s", enabled, refused)
            return
        self._protected_until = self._clock() + self.minutes * 60 if enabled else None


def _worker_holds_tasks() -> bool:
    # Received and not yet finished: waiting for a slot, prefetched or running (the worker
    # main process's own bookkeeping, which covers prefork children's tasks too).
    from celery.worker import state

    return bool(state.reserved_requests) or bool(state.active_requests)


_installed: list[TaskProtection] = []


def protect_busy_tasks(minutes: int = 60, every: float = 15.0) -> None:
    """Protect this worker's ECS task while it holds tasks (see the module); idempotent.

    Does nothing off ECS (no `ECS_AGENT_URI`), so the same app runs anywhere.
    """
    from celery.signals import task_received, worker_ready, worker_shutdown

    agent = os.environ.get(AGENT_ENV)
    if not agent or _installed:
        return
    protection = TaskProtection(agent, minutes=minutes, every=every)
    _installed.append(protection)

    def on_received(**_: Any) -> None:
        protection.received()

    def on_ready(**_: Any) -> None:
        threading.Thread(target=protection.run, name="task-protection", daemon=True).start()

    def on_shutdown(**_: Any) -> None:
        protection.stop()

    task_received.connect(on_received, weak=False)
    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
