"""Commands that need no broker or AWS start without loading Celery, kombu or the AWS SDK.

Each check runs a fresh interpreter: what a command imports can only be seen from a
process that has imported nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("celery", "kombu", "boto3", "botocore", "redis", "matplotlib", "prometheus_client")

# Runs the CLI in-process, then prints (last line of stderr) which heavy libraries it loaded.
PROBE = f"""
import json, sys
from celery_scaler.cli import main
sys.argv = ["celery-scaler", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(name for name in {list(HEAVY)!r} if name in sys.modules)), file=sys.stderr)
"""


def loaded_by(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["config", "validate", "--config", str(ROOT / "examples" / "local.yaml")],
        ["config", "schema"],
        ["config", "example"],
    ],
    ids=["help", "version", "validate", "schema", "example"],
)
def test_command_loads_no_broker_or_aws_library(args: list[str]) -> None:
    assert loaded_by(*args) == []


def test_importing_instrument_loads_no_celery_until_called() -> None:
    probe = "import sys, celery_scaler; print('celery' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


def test_the_probe_sees_a_command_that_does_load_them() -> None:
    """The check above could pass by seeing nothing: `iam-policy` builds the adapter table."""
    config = str(ROOT / "examples" / "local.yaml")
    assert "boto3" in loaded_by("iam-policy", "--config", config)
