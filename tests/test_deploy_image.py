"""The container image: the Dockerfile held to its rules and its pins in line with
pyproject.toml. hadolint, the HEALTHCHECK against a live endpoint and the install steps
run as processes: tests/integration/test_deploy_image.py."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from celery_scaler.core.config import PrometheusSpec
from tests.helpers import LOCK, OCI_LABELS, healthcheck, pins, stages, values

ROOT = Path(__file__).resolve().parent.parent


def test_multi_stage_on_a_slim_base_without_compilers(dockerfile: DockerfileParser) -> None:
    build, final = stages(dockerfile)
    assert dockerfile.baseimage.endswith("-slim-bookworm")
    assert values(build, "FROM")[0].endswith(" AS build")
    # The final stage installs nothing: it takes the build stage's virtualenv only.
    assert not values(final, "RUN") or all(
        "install" not in run and not re.search(r"\b(gcc|g\+\+|make|build-essential)\b", run)
        for run in values(final, "RUN")
    )
    assert values(final, "COPY") == ["--from=build /opt/celery-scaler /opt/celery-scaler"]


def test_dependencies_come_from_the_hashed_pins(dockerfile: DockerfileParser) -> None:
    build, _ = stages(dockerfile)
    install = next(run for run in values(build, "RUN") if "requirements.lock" in run)
    assert {"--require-hashes", "--only-binary", "--no-deps"} <= set(install.split())


def test_runs_as_a_non_root_user(dockerfile: DockerfileParser) -> None:
    _, final = stages(dockerfile)
    user, _, group = values(final, "USER")[-1].partition(":")
    assert int(user) > 0
    assert int(group) > 0


def test_entrypoint_command_and_healthcheck(dockerfile: DockerfileParser) -> None:
    _, final = stages(dockerfile)
    assert json.loads(values(final, "ENTRYPOINT")[0]) == ["celery-scaler"]
    assert json.loads(values(final, "CMD")[0]) == ["reconcile", "--output", "json"]
    port = PrometheusSpec().port
    assert values(final, "EXPOSE") == [str(port)]
    assert f"127.0.0.1:{port}/healthz" in healthcheck(dockerfile)


def test_oci_labels(dockerfile: DockerfileParser) -> None:
    labels = dockerfile.labels
    for label in OCI_LABELS:
        assert labels.get(f"org.opencontainers.image.{label}"), label
    assert labels["org.opencontainers.image.version"] == version("celery-scaler")
    assert labels["org.opencontainers.image.base.name"] == dockerfile.baseimage


# --- the pins ------------------------------------------------------------------------------


def test_the_pins_satisfy_pyproject() -> None:
    # Every runtime dependency is pinned within its range; `pip check` in the install
    # test (tests/integration/test_deploy_image.py) covers the transitive ones.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name == "celery-scaler-instrument":
            continue  # this repository's own (instrument/), installed from source like the rest
        assert name in pinned, f"{name} is not in requirements.lock: recompile it (see its header)"
        assert requirement.specifier.contains(pinned[name]), (
            f"{name}=={pinned[name]} is outside {requirement.specifier}: recompile the lock"
        )
    lines = LOCK.read_text().splitlines()
    hashed = [line for line in lines if "==" in line and not line.startswith("#")]
    assert all(line.endswith("\\") for line in hashed), "every pin carries its hashes"
