"""A worker's own task protection (celery_scaler_instrument.protection), its timing alone:
the agent calls are recorded instead of made."""

from __future__ import annotations

import pytest

from celery_scaler_instrument import protection
from celery_scaler_instrument.protection import TaskProtection


class Recorded(TaskProtection):
    def __init__(self, clock: list[float], holding: list[bool]) -> None:
        super().__init__(
            "http://agent/task", minutes=1, every=15.0, idle_for=5.0,
            clock=lambda: clock[0], holding=lambda: holding[0],
        )  # fmt: skip
        self.calls: list[bool] = []

    def _set(self, enabled: bool) -> None:
        self.calls.append(enabled)
        self._protected_until = self._clock() + self.minutes * 60 if enabled else None


def test_protected_on_receipt_renewed_while_busy_released_once_idle_a_while() -> None:
    clock, holding = [0.0], [False]
    protection = Recorded(clock, holding)
    protection.tick()
    assert protection.calls == []  # never busy: nothing to release
    protection.received()
    protection.received()  # protected for a while yet: no second call
    assert protection.calls == [True]
    holding[0] = True
    clock[0] = 31.0  # 29 s of the minute left, under two ticks: renewed
    protection.tick()
    assert protection.calls == [True, True]
    holding[0] = False
    clock[0] = 33.0  # idle for 2 s only
    protection.tick()
    assert protection.calls == [True, True]
    clock[0] = 37.0
    protection.tick()
    assert (protection.calls, protection.protected) == ([True, True, False], False)


def test_off_ecs_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(protection.AGENT_ENV, raising=False)
    protection.protect_busy_tasks()
    assert protection._installed == []
