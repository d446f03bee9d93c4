"""The two distributions' metadata: the controller and `celery-scaler-instrument` (instrument/),
one version, one header name, and the instrumentation needing nothing but Celery. Wheels
built and installed: tests/integration/test_packaging.py."""

from __future__ import annotations

import importlib
from importlib.metadata import version

from typer.testing import CliRunner

import celery_scaler
import celery_scaler_instrument
from celery_scaler.cli import app
from celery_scaler.core import names
from tests.helpers import INSTRUMENT, ROOT, dependencies, lowest, project_table

# The module, not the function of the same name that the package exposes.
reexported = importlib.import_module("celery_scaler.instrument")


def test_one_version_from_pyproject_to_the_command_line() -> None:
    declared = project_table(ROOT)["version"]
    assert version("celery-scaler") == declared  # the installed metadata
    assert celery_scaler.__version__ == declared
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"celery-scaler {declared}\n"


def test_the_instrumentation_needs_only_celery() -> None:
    assert set(dependencies(INSTRUMENT)) == {"celery"}


def test_the_controller_requires_this_repository_s_instrumentation() -> None:
    required = dependencies(ROOT)["celery-scaler-instrument"]
    assert required.specifier.contains(project_table(INSTRUMENT)["version"])
    assert version("celery-scaler-instrument") == project_table(INSTRUMENT)["version"]


def test_the_instrumentation_allows_the_controller_s_lowest_celery() -> None:
    # Both are installed together in the controller's environment: its lowest Celery must be
    # one the instrumentation accepts, or the floor CI environment could not resolve.
    instrumentation = dependencies(INSTRUMENT)["celery"]
    assert instrumentation.specifier.contains(lowest(dependencies(ROOT)["celery"]))


def test_the_supported_pythons_agree() -> None:
    for path in (ROOT, INSTRUMENT):
        metadata = project_table(path)
        assert metadata["requires-python"] == ">=3.11"
        listed = {c.rpartition(" :: ")[2] for c in metadata["classifiers"] if "Python :: 3." in c}
        assert listed == {"3.11", "3.12", "3.13"}


def test_celery_scaler_instrument_is_the_standalone_one() -> None:
    # Applications that call celery_scaler.instrument(app) keep working, on the same code.
    assert celery_scaler.instrument is celery_scaler_instrument.instrument
    assert reexported.uninstrument is celery_scaler_instrument.uninstrument


def test_the_header_name_is_defined_once() -> None:
    header = celery_scaler_instrument.PUBLISHED_AT_HEADER
    assert names.PUBLISHED_AT_HEADER is header
    assert reexported.PUBLISHED_AT_HEADER is header
    # The controller's code names it only through the instrumentation package.
    spelled = [
        path
        for path in (ROOT / "controller").rglob("*.py")
        if f'"{header}"' in path.read_text() or f"'{header}'" in path.read_text()
    ]
    assert spelled == []
