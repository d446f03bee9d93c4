"""Reading moto's recording while the local AWS API's threads are still writing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import aws_calls


def entry(target: str) -> str:
    return json.dumps({"headers": {"X-Amz-Target": target}, "body": "x" * 50})


def test_entries_skip_a_tail_still_being_written_and_a_split_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = tmp_path / "calls.jsonl"
    monkeypatch.setattr(aws_calls, "RECORDING", recording)
    large = entry("A.Large")
    # A large entry split by a small one written in between, then a tail cut mid-write.
    text = large[:40] + entry("A.Small") + "\n" + large[40:] + "\n" + entry("A.Last") + "\n"
    text += entry("A.Partial")[:30]
    recording.write_text(text)

    targets = [e["headers"]["X-Amz-Target"] for e in aws_calls.entries()]

    assert targets == ["A.Small", "A.Last"]
