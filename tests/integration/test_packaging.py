"""The distributions as a user gets them: both wheels built with `python -m build` (each from
its sdist, as an index would build them), each installed in a clean virtualenv, the
instrumentation beside an application's older pins; and requirements.lock complete on every
Python the project supports."""

from __future__ import annotations

import email.parser
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import redis
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from celery_scaler_instrument import PUBLISHED_AT_HEADER
from tests.helpers import INSTRUMENT, LOCK, ROOT, dependencies, lowest, project_table

pytestmark = pytest.mark.integration

# What a build reads; copied, because building in place writes build/ and *.egg-info into
# the tree that other test runs read.
SOURCES = ("pyproject.toml", "README.md", "controller", "instrument")


def run(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Bounded: a resolver that backtracks or an index that stalls fails the test, not CI.
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def virtualenv(path: Path) -> Path:
    """A clean virtualenv (no system site-packages, nothing of this one); its bin/."""
    run([sys.executable, "-m", "venv", path])
    return path / "bin"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Distribution name → its wheel, built from this checkout."""
    work = tmp_path_factory.mktemp("build")
    source, dist = work / "source", work / "dist"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy(ROOT / name, source / name)
    for project in (source / "instrument", source):
        run([sys.executable, "-m", "build", "--outdir", dist, project])
    built = {canonicalize_name(path.name.split("-")[0]): path for path in dist.glob("*.whl")}
    assert set(built) == {"celery-scaler", "celery-scaler-instrument"}
    return built


# --- the instrumentation, in an application's environment ---------------------------------

# Pins an application may well have, each below what the controller requires
# (pydantic>=2.6, typer>=0.12, redis>=5): installing the controller there cannot resolve.
OLDER_PINS = ("pydantic<2", "typer<0.12", "redis<5")

# Runs in the application's virtualenv: publishes one task the way the application does.
PUBLISHER = """
import importlib.util, json, sys
from importlib.metadata import version
from celery import Celery
from celery_scaler_instrument import instrument

broker, queue = sys.argv[1:]
app = Celery("application", broker=broker, set_as_current=False)
instrument(app)
app.send_task("tasks.noop", queue=queue)
print(json.dumps({
    "versions": {n: version(n) for n in ("celery", "kombu", "pydantic", "typer", "redis")},
    "controller": importlib.util.find_spec("celery_scaler") is not None,
    "task_events": app.conf.worker_send_task_events,
}))
"""


def test_the_instrumentation_installs_beside_older_pins_and_stamps_messages(
    wheels: dict[str, Path], tmp_path: Path, redis_url: str, queue: str
) -> None:
    celery = lowest(dependencies(INSTRUMENT)["celery"])
    bin_ = virtualenv(tmp_path / "application")
    # The lowest Celery the instrumentation allows, with the application's older pins. The
    # application brings its own broker libraries: Celery's Redis extra and the kombu of that
    # Celery release (a later kombu's Redis transport needs redis-py >= 6.4).
    instrumentation = wheels["celery-scaler-instrument"]
    own = [f"celery[redis]=={celery}", f"kombu=={celery.major}.{celery.minor}.*"]
    run([bin_ / "pip", "install", instrumentation, *OLDER_PINS, *own])
    run([bin_ / "pip", "check"])

    before = time.time()
    published = json.loads(run([bin_ / "python", "-c", PUBLISHER, redis_url, queue]).stdout)
    after = time.time()

    versions = {name: Version(text) for name, text in published["versions"].items()}
    assert versions["celery"] == celery
    assert versions["pydantic"] < Version("2")
    assert versions["typer"] < Version("0.12")
    assert versions["redis"] < Version("5")
    assert published["controller"] is False  # nothing of the controller came along
    assert published["task_events"] is True
    # The message as it waits in Redis (redis-py < 5 wrote it) carries the publish time.
    client: redis.Redis = redis.Redis.from_url(redis_url)
    try:
        (raw,) = client.lrange(queue, 0, -1)
    finally:
        client.close()
    stamp = json.loads(raw)["headers"][PUBLISHED_AT_HEADER]
    assert before <= stamp <= after

    # Why the instrumentation is a distribution of its own: the controller cannot join them.
    refused = subprocess.run(
        [
            bin_ / "pip",
            "install",
            "--dry-run",
            wheels["celery-scaler"],
            instrumentation,
            *OLDER_PINS,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode != 0
    assert "ResolutionImpossible" in refused.stdout + refused.stderr


# --- the controller ------------------------------------------------------------------------


def test_the_controller_wheel_installs_and_tells_its_version(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    bin_ = virtualenv(tmp_path / "controller")
    # Both wheels by path: celery-scaler-instrument is on no index yet, and an index's
    # release of either name must not stand in for this checkout's.
    run([bin_ / "pip", "install", wheels["celery-scaler"], wheels["celery-scaler-instrument"]])
    run([bin_ / "pip", "check"])

    declared = project_table(ROOT)["version"]
    assert run([bin_ / "celery-scaler", "--version"], cwd=tmp_path).stdout == (
        f"celery-scaler {declared}\n"
    )
    # Package data came along: the annotated example validates.
    example = run([bin_ / "celery-scaler", "config", "example"], cwd=tmp_path).stdout
    (tmp_path / "celery-scaler.yaml").write_text(example)
    run([bin_ / "celery-scaler", "config", "validate"], cwd=tmp_path)
    probe = (
        "import celery_scaler, celery_scaler_instrument as standalone;"
        "print(celery_scaler.__version__, celery_scaler.instrument is standalone.instrument,"
        " celery_scaler.__file__)"
    )
    version, same, location = run([bin_ / "python", "-c", probe], cwd=tmp_path).stdout.split()
    assert (version, same) == (declared, "True")
    assert Path(location).is_relative_to(tmp_path)  # the wheel's copy, not this checkout


# --- requirements.lock: `pip check` on every supported Python -----------------------------

# Every patch release, past today's too: a requirement can start or stop at any of them
# (redis-py needs async-timeout below 3.11.3).
SUPPORTED_PYTHONS = [f"3.{minor}.{patch}" for minor in (11, 12, 13) for patch in range(30)]

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)[ \t]*(?:;[ \t]*([^\\\n]*?))?[ \t]*\\?$", re.M)

Pin = tuple[str, str, Marker | None]


def locked(text: str) -> list[Pin]:
    """(name, version, marker) per pin; a name may be pinned twice, for different Pythons."""
    return [
        (canonicalize_name(name), version, Marker(marker) if marker else None)
        for name, version, marker in PIN.findall(text)
    ]


def environment(python: str) -> dict[str, str]:
    # This machine's platform (Linux, CPython), as the image's; another Python version.
    env = dict(default_environment())
    env.update(python_full_version=python, python_version=python.rpartition(".")[0], extra="")
    return env


def unmet(pins: list[Pin], requires: dict[tuple[str, str], list[str]], python: str) -> list[str]:
    """What `pip check` would report after installing the lock on `python`."""
    env = environment(python)
    installed = {name: v for name, v, marker in pins if marker is None or marker.evaluate(env)}
    problems = []
    for name, installed_version in installed.items():
        for line in requires[name, installed_version]:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(env):
                continue
            needed = canonicalize_name(requirement.name)
            if needed not in installed:
                problems.append(f"Python {python}: {name} needs {requirement}, not locked")
            elif not requirement.specifier.contains(installed[needed], prereleases=True):
                problems.append(f"Python {python}: {name} needs {requirement}, locked otherwise")
    return problems


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[str]]:
    """(name, version) → Requires-Dist, from the very wheels the lock pins (hashes checked)."""
    work = tmp_path_factory.mktemp("lock")
    # Markers dropped: a pin for another Python or platform is fetched too, for its own
    # requirements count there.
    unmarked = work / "unmarked.txt"
    unmarked.write_text(
        re.sub(
            r"^([A-Za-z0-9._-]+==[^\s;\\]+)[ \t]*;[^\\\n]*", r"\1 ", LOCK.read_text(), flags=re.M
        )
    )
    wheels = work / "wheels"
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    run([*download, "--require-hashes", "--dest", wheels, "-r", unmarked])
    requires: dict[tuple[str, str], list[str]] = {}
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            (path,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.parser.Parser().parsestr(archive.read(path).decode())
        key = (canonicalize_name(metadata["Name"]), metadata["Version"])
        requires[key] = metadata.get_all("Requires-Dist") or []
    return requires


def test_the_lock_is_complete_on_every_supported_python(
    declared: dict[tuple[str, str], list[str]],
) -> None:
    pins = locked(LOCK.read_text())
    assert {(name, version) for name, version, _ in pins} == set(declared)
    problems = [
        problem for python in SUPPORTED_PYTHONS for problem in unmet(pins, declared, python)
    ]
    assert problems == []


def test_the_check_finds_a_requirement_of_some_pythons_only(
    declared: dict[tuple[str, str], list[str]],
) -> None:
    # What a lock compiled on 3.11.7 alone left out: redis-py's async-timeout below 3.11.3.
    pins = [pin for pin in locked(LOCK.read_text()) if pin[0] != "async-timeout"]
    assert any(
        "redis needs async-timeout" in problem for problem in unmet(pins, declared, "3.11.2")
    )
    assert unmet(pins, declared, "3.11.3") == []


# --- the core's one outside import --------------------------------------------------------


def test_the_core_loads_only_the_standard_library_through_the_instrumentation() -> None:
    # import-linter sees celery_scaler_instrument as one opaque node: what importing it
    # really loads is only visible from a fresh interpreter.
    probe = (
        "import sys; before = set(sys.modules); import celery_scaler.core.names;"
        "print(' '.join(sorted(n for n in set(sys.modules) - before"
        " if not n.startswith('celery_scaler') and n.partition('.')[0] not in"
        " sys.stdlib_module_names)))"
    )
    loaded = run([sys.executable, "-c", probe]).stdout.split()
    assert loaded == []
