"""The CLI's help, read in-process: it says what to type, never Python's types."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from celery_scaler.cli import app

COMMANDS = sorted(
    [name] if not hasattr(command, "commands") else [name, sub]
    for name, command in get_command(app).commands.items()  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {None: None})
)
INTERNALS = re.compile(r"<(str|int|float|list\[[^>]*)>|list\[|Value error")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_no_python_types(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert not INTERNALS.findall(result.output), result.output


def test_every_command_is_checked() -> None:
    assert ["reconcile"] in COMMANDS
    assert ["alarms", "plan"] in COMMANDS
    assert ["config", "validate"] in COMMANDS
