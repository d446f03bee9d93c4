"""`celery-scaler demo`'s choice of broker and its messages when it cannot run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from celery_scaler.local import demo
from celery_scaler.local.demo import NO_MOTO, NO_REDIS, DemoError, DemoSettings, demo_broker

pytestmark = pytest.mark.integration

SCRIPT = str(Path(sys.executable).parent / "celery-scaler")
UNREACHABLE = "redis://127.0.0.1:1/0"


def test_unreachable_redis_is_one_clear_line_and_exit_1() -> None:
    result = subprocess.run(
        [SCRIPT, "demo", "--redis", "redis://:s3cret@127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: Redis at redis://:***@127.0.0.1:1/0 does not answer"
    assert "s3cret" not in result.stdout + result.stderr


def test_starts_a_private_redis_server_when_none_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEFAULT_REDIS_URL", UNREACHABLE)
    with demo_broker(None) as url:
        assert url != UNREACHABLE
        assert demo.redis_answers(url)
    assert not demo.redis_answers(url), "the private redis-server is stopped afterwards"


def test_no_redis_anywhere_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo, "DEFAULT_REDIS_URL", UNREACHABLE)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DemoError) as raised, demo_broker(None):
        pass
    assert str(raised.value) == NO_REDIS


def test_missing_local_aws_api_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # as if not installed
    with pytest.raises(DemoError) as raised:
        demo.run_demo(DemoSettings(redis_url=redis_url), Console())
    assert str(raised.value) == NO_MOTO
