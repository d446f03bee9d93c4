"""The container image, run: hadolint over the Dockerfile, its HEALTHCHECK against a live
endpoint, and its install steps in a clean virtualenv (no Docker engine here)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.utils import canonicalize_name

from celery_scaler.core.config import PrometheusSpec
from celery_scaler.telemetry.prometheus import ControllerMetrics, TelemetryServer
from tests.generated import ROOT
from tests.helpers import DOCKERFILE, OCI_LABELS, healthcheck, pins, stages

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def test_hadolint_finds_nothing() -> None:
    labels = [f"--require-label=org.opencontainers.image.{label}:text" for label in OCI_LABELS]
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "style", *labels, str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_root_user(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text() + "USER root\n")
    result = subprocess.run([str(BIN / "hadolint"), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3002" in result.stdout


def test_the_healthcheck_asks_healthz(dockerfile: DockerfileParser) -> None:
    code = healthcheck(dockerfile)
    server = TelemetryServer(ControllerMetrics(["default"], 15.0), port=0, host="127.0.0.1")
    server.start()
    try:
        healthy = code.replace(f":{PrometheusSpec().port}/", f":{server.port}/")
        assert subprocess.run([sys.executable, "-c", healthy], timeout=30).returncode == 0
    finally:
        server.close()
    assert subprocess.run([sys.executable, "-c", healthy], timeout=30).returncode != 0


# --- the install steps, run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage's file system: its COPY and RUN steps, run here."""
    root = tmp_path_factory.mktemp("image")
    build, _ = stages(DockerfileParser(str(DOCKERFILE)))
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(root))}

    def here(text: str) -> str:
        # The image's absolute paths, under `root`.
        return re.sub(r"(?<![\w/])/(opt|build)\b", lambda m: f"{root}/{m.group(1)}", text)

    for instruction in build[1:]:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(value)))
            # pip's cache changes nothing that is installed, and saves downloads here.
            env.pop("PIP_NO_CACHE_DIR", None)
        elif kind == "COPY":
            *sources, target = shlex.split(value)
            for source in sources:
                destination = Path(here(target))
                if target.endswith("/"):
                    destination = destination / Path(source).name
                destination.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        destination,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                    )
                else:
                    shutil.copy(ROOT / source, destination)
        elif kind == "RUN":
            command = here(value).replace("python -m venv", f"{sys.executable} -m venv", 1)
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"RUN {value}\n{result.stdout}\n{result.stderr}"
        else:
            raise AssertionError(f"the install test does not know {kind} {value}")
    return root


def test_the_installed_command_runs(image_root: Path, tmp_path: Path) -> None:
    venv = image_root / "opt" / "celery-scaler"
    command = venv / "bin" / "celery-scaler"
    assert subprocess.run([command, "--help"], capture_output=True, timeout=60).returncode == 0
    example = subprocess.run(
        [command, "config", "example"], capture_output=True, text=True, timeout=60, check=True
    )
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(example.stdout)
    checked = subprocess.run(
        [command, "config", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    # Only the pinned distributions (and the project) are installed, at their pins.
    freeze = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {canonicalize_name(d["name"]): d["version"] for d in json.loads(freeze.stdout)}
    installed.pop("celery-scaler")
    installed.pop("celery-scaler-instrument")  # also this repository's, from instrument/
    for tool in ("pip", "setuptools"):  # the virtualenv's own
        installed.pop(tool, None)
    assert installed == pins()
