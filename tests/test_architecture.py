"""The package's shape: layers import downward only, the core is pure, no import cycles.

The contracts live in pyproject.toml ([tool.importlinter]); docs/architecture.md says
what each layer holds and why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

import celery_scaler

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(celery_scaler.__file__).parent
MAX_TOP_LEVEL_MODULES = 12


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    # The use case, not importlinter.cli: the CLI reconfigures logging for the whole process.
    configuration.configure()
    passed = lint_imports(str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    report = capsys.readouterr().out
    assert passed, report
    assert "3 kept, 0 broken" in report, report


def test_every_subpackage_is_in_a_layer() -> None:
    """A new subpackage outside the layers would be unchecked: name it in the contract."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    layered = {
        name
        for line in text.split("layers = [", 1)[1].split("]", 1)[0].splitlines()
        for name in line.strip().strip('",').split(" | ")
        if name
    }
    top_level = {
        f"celery_scaler.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert top_level <= layered, sorted(top_level - layered)


def test_top_level_stays_small() -> None:
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
