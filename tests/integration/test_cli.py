"""The installed `celery-scaler` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from celery_scaler.local.aws_api import LocalAws
from tests.helpers import SCRIPT, desired_count, json_lines, pool_config, publish, run, write

pytestmark = pytest.mark.integration


# --- configuration --------------------------------------------------------------


def test_example_is_valid_and_found_by_default_path(tmp_path: Path) -> None:
    example = run("config", "example")
    assert example.returncode == 0
    write(tmp_path, example.stdout)
    result = run("config", "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 pool(s): default" in result.stdout


def test_schema_is_json() -> None:
    result = run("config", "schema")
    assert result.returncode == 0
    assert "WorkerPool" in json.dumps(json.loads(result.stdout))


SCALE_IN = (
    "  scaleIn: {threshold: 1, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1}]}\n"
)
BAD_INPUTS = {
    "malformed yaml": ("kind: [unclosed", "not valid YAML at line"),
    "typo": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  scaleOut: {treshold: 5, steps: []}\n",
        "document 1 (WorkerPool/a): spec.scaleOut.treshold: unknown field "
        "(did you mean 'threshold'?)",
    ),
    "unknown metric": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  metric: queue_dept\n" + SCALE_IN,
        "spec.metric: unknown metric 'queue_dept' (did you mean 'queue_depth'?)",
    ),
    "min above max": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  minCapacity: 5\n  maxCapacity: 2\n" + SCALE_IN,
        "minCapacity (5) is greater than maxCapacity (2)",
    ),
    "gap": (
        "apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {name: a}\nspec:\n"
        "  ecs: {cluster: c, service: s}\n  scaleOut:\n    threshold: 1\n    steps:\n"
        "      - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 5, scalingAdjustment: 1}\n"
        "      - {metricIntervalLowerBound: 6, scalingAdjustment: 2}\n",
        "spec.scaleOut.steps: steps leave a gap between 5 and 6",
    ),
    "bad duration": (
        "apiVersion: celery-scaler/v1\nkind: Controller\nspec: {interval: 5 minutes}\n",
        "spec.interval: expected a duration",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, expected = BAD_INPUTS[case]
    path = write(tmp_path, text)
    for command in (["config", "validate"], ["reconcile", "--once"]):
        result = run(*command, "--config", str(path))
        assert result.returncode == 2, result
        assert expected in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("reconcile", "--once", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("apiVersion: celery-scaler/v1\n# équipe données\n".encode("latin-1"))
    result = run("config", "validate", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("is not UTF-8 text (byte 0xe9 at offset 31)")
    assert "Traceback" not in result.stderr


def test_unknown_pool_is_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, pool_config("redis://127.0.0.1:6379/11", "c", "q"))
    result = run("reconcile", "--once", "--pool", "other", "--config", str(path))
    assert result.returncode == 2
    assert "no WorkerPool named 'other'" in result.stderr


# --- reconcile against the real broker and the local AWS API -----------------------


def test_once_scales_out_on_queue_depth_and_dry_run_changes_nothing(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    publish(redis_url, queue, 17)  # 17 ≥ 5, offset 12 → the +3 step
    path = write(tmp_path, pool_config(redis_url, cluster, queue))

    table = run("reconcile", "--once", "--dry-run", "--config", str(path), env={"COLUMNS": "80"})
    assert table.returncode == 0
    # At 80 columns the numbers and the action stay whole, spelled as in the JSON line.
    assert "2 → 5" in table.stdout
    assert "scale_out (dry run)" in table.stdout

    dry = run("reconcile", "--once", "--dry-run", "--output", "json", "--config", str(path))
    assert dry.returncode == 0, dry.stderr
    (line,) = json_lines(dry.stdout)
    assert (line["action"], line["current"], line["desired"], line["applied"], line["dry_run"]) == (
        "scale_out",
        2,
        5,
        False,
        True,
    )
    assert line["observed"]["queue_depth"] == 17  # type: ignore[index]
    assert desired_count(aws, cluster) == 2

    real = run("reconcile", "--once", "--output", "json", "--config", str(path))
    assert real.returncode == 0, real.stderr
    (line,) = json_lines(real.stdout)
    assert (line["action"], line["desired"], line["applied"], line["error"]) == (
        "scale_out",
        5,
        True,
        None,
    )
    assert desired_count(aws, cluster) == 5

    # The cooldown of that scale-out, kept on the service, holds the next pass.
    again = run("reconcile", "--once", "--dry-run", "-o", "json", "--config", str(path))
    (line,) = json_lines(again.stdout)
    assert (line["action"], line["desired"]) == ("hold", 5)
    assert "3 already added in cooldown" in str(line["reason"])


def test_busy_real_workers_hold_scale_in_and_are_reported(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    from tests.workers import start_workers

    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    exchange = f"x-{unique}"
    no_cooldown = {
        "threshold": 0,
        "cooldown": 0,
        "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
    }
    # safeScaleIn alone (these workers run in no ECS task, so none could be drained).
    path = write(
        tmp_path,
        pool_config(
            redis_url,
            cluster,
            queue,
            control_exchange=exchange,
            scaleIn=no_cooldown,
            drainScaleIn=False,
        ),
    )
    with start_workers(redis_url, 3, [queue], control_exchange=exchange) as fleet:
        fleet.make_busy(fleet[0])
        fleet.make_busy(fleet[1])
        # Empty queue: the scale-in step asks for 3 → 2, and 2 workers are busy: allowed.
        result = run("reconcile", "--once", "--output", "json", "--config", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        (line,) = json_lines(result.stdout)
        observed = line["observed"]
        assert isinstance(observed, dict)
        assert (observed["worker_status"], observed["active_tasks"]) == (3, 2)
        assert observed["busy_ratio"] == pytest.approx(2 / 3)
        assert (line["action"], line["desired"]) == ("scale_in", 2)
        assert desired_count(aws, cluster) == 2

        # ECS stops a task to reach 2 (here: the idle worker, as ECS would with task
        # protection). Next pass: 2 → 1 would stop a busy worker; safeScaleIn keeps 2.
        fleet[2].signal(signal.SIGTERM)
        fleet[2].process.wait(timeout=30)
        result = run("reconcile", "--once", "--output", "json", "--config", str(path))
        (line,) = json_lines(result.stdout)
        assert (line["action"], line["desired"]) == ("hold", 2), line["reason"]
        assert "2 workers are busy (safeScaleIn)" in str(line["reason"])


def test_unreachable_broker_holds_exit_1_and_masks_password(
    tmp_path: Path, aws: LocalAws, unique: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=3)
    path = write(tmp_path, pool_config("redis://:s3cret@127.0.0.1:1/0", cluster, "q"))
    result = run("reconcile", "--once", "--output", "json", "--config", str(path))
    assert result.returncode == 1
    (line,) = json_lines(result.stdout)
    assert line["action"] == "hold"
    assert line["error"]
    assert "s3cret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert desired_count(aws, cluster) == 3


def test_missing_service_is_exit_1(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str
) -> None:
    aws.create_service(f"c-{unique}", "other", desired=1)
    path = write(tmp_path, pool_config(redis_url, f"c-{unique}", "q"))
    result = run("reconcile", "--once", "--output", "json", "--config", str(path))
    assert result.returncode == 1
    (line,) = json_lines(result.stdout)
    assert "'workers'" in str(line["error"])
    assert "MISSING" in str(line["error"])
    assert "Traceback" not in result.stderr


def test_missing_credentials_is_exit_1(tmp_path: Path, aws: LocalAws, redis_url: str) -> None:
    path = write(tmp_path, pool_config(redis_url, "c", "q"))
    env = {name: "" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
    env |= {"AWS_EC2_METADATA_DISABLED": "true"}
    result = run("reconcile", "--once", "--output", "json", "--config", str(path), env=env)
    assert result.returncode == 1
    (line,) = json_lines(result.stdout)
    assert "no AWS credentials" in str(line["error"])
    assert "Traceback" not in result.stderr


def test_continuous_mode_passes_until_sigterm(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=1)
    path = write(tmp_path, pool_config(redis_url, cluster, queue))
    process = subprocess.Popen(
        [SCRIPT, "reconcile", "--dry-run", "--output", "json", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        passes = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert all(p["pool"] == "p" for p in passes)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        # The pass in flight finishes, then it stops: no longer than one pass.
        assert time.monotonic() - sent < 2 * 0.5 + 1 + 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_restarted_controller_honours_cooldown_and_pause_from_tags(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    publish(redis_url, queue, 6)  # offset 1 → +1
    path = write(tmp_path, pool_config(redis_url, cluster, queue, scaleOut=SCALE_OUT_60S))
    first = json_lines(run("reconcile", "--once", "-o", "json", "--config", str(path)).stdout)
    assert (first[0]["desired"], first[0]["applied"]) == (3, True)

    # Each --once is a new process: only the service's tags carry the cooldown over.
    publish(redis_url, queue, 11)  # 17 waiting: offset 12 → +3, 1 already added
    second = json_lines(run("reconcile", "--once", "-o", "json", "--config", str(path)).stdout)
    assert (second[0]["current"], second[0]["desired"]) == (3, 5)
    assert "1 already added in cooldown" in str(second[0]["reason"])

    ecs = aws.client("ecs")
    arn = ecs.describe_services(cluster=cluster, services=["workers"])["services"][0]["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "celery-scaler.io/paused", "value": "true"}])
    publish(redis_url, queue, 20)
    paused = json_lines(run("reconcile", "--once", "-o", "json", "--config", str(path)).stdout)
    assert (paused[0]["action"], paused[0]["desired"]) == ("hold", 5)
    assert "paused" in str(paused[0]["reason"])
    assert desired_count(aws, cluster) == 5


SCALE_OUT_60S = {
    "threshold": 5,
    "cooldown": "60s",
    "steps": [
        {"metricIntervalLowerBound": 0, "metricIntervalUpperBound": 10, "scalingAdjustment": 1},
        {"metricIntervalLowerBound": 10, "scalingAdjustment": 3},
    ],
}


def test_status_shows_conditions_last_action_and_cooldowns(
    tmp_path: Path, aws: LocalAws, redis_url: str, unique: str, queue: str
) -> None:
    cluster = f"c-{unique}"
    aws.create_service(cluster, "workers", desired=2)
    publish(redis_url, queue, 6)
    path = write(tmp_path, pool_config(redis_url, cluster, queue, scaleOut=SCALE_OUT_60S))
    assert run("reconcile", "--once", "--config", str(path)).returncode == 0

    result = run("status", "-o", "json", "--config", str(path))
    assert result.returncode == 0, result.stderr
    (status,) = json_lines(result.stdout)
    assert (status["current"], status["last_desired"], status["last_action"]) == (
        3,
        3,
        "scale_out",
    )
    conditions = status["conditions"]
    assert isinstance(conditions, dict)
    assert conditions["Ready"] is True
    assert conditions["Paused"] is False
    cooldowns = status["cooldowns_left"]
    assert isinstance(cooldowns, dict)
    assert 0 < cooldowns["scale_out"] <= 60

    table = run("status", "--config", str(path), env={"COLUMNS": "80"})
    assert table.returncode == 0
    rows = [line for line in table.stdout.splitlines() if "Ready" in line]
    assert len(rows) == 1, "one line a pool at 80 columns, not a reason wrapped over many"
    assert len(rows[0]) <= 80
    assert "p: scale_out " in table.stdout, "the last action on its own line below"

    only = run("status", "--pool", "nope", "--config", str(path))
    assert only.returncode == 2
    assert "no WorkerPool named 'nope'" in only.stderr

    missing = write(tmp_path, pool_config(redis_url, f"gone-{unique}", queue))
    result = run("status", "-o", "json", "--config", str(missing))
    assert result.returncode == 1
    (status,) = json_lines(result.stdout)
    assert "ClusterNotFound" in str(status["error"])


# --- set-ups that would flap are refused before anything runs ------------------------

DEPTH_OUT = {
    "threshold": 10,
    "steps": [{"metricIntervalLowerBound": 0, "scalingAdjustment": 1}],
}


def scale_in_at(threshold: float, adjustment: int = -1) -> dict[str, object]:
    return {
        "threshold": threshold,
        "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": adjustment}],
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"scaleOut": DEPTH_OUT, "scaleIn": scale_in_at(10)},
            "spec.scaleIn.threshold: scales in at queue_depth (Average) ≤ 10, where this "
            "policy scales out (≥ 10): the count would flap",
        ),
        (
            {
                "scaleOut": DEPTH_OUT,
                "scaleIn": scale_in_at(0),
                "policies": [
                    {"name": "drain", "metric": "queue_depth", "scaleIn": scale_in_at(20)}
                ],
            },
            "spec.policies.0.scaleIn.threshold: scales in at queue_depth (Average) ≤ 20, where "
            "policy 'default' (scaleOut.threshold) scales out (≥ 10): the count would flap",
        ),
        (
            {"scaleOut": DEPTH_OUT, "scaleIn": scale_in_at(0, adjustment=2)},
            "spec.scaleIn.steps: a scaleIn step adds tasks (scalingAdjustment 2)",
        ),
        (
            {"minCapacity": 0, "maxCapacity": 0},
            "spec.maxCapacity: minCapacity and maxCapacity are both 0",
        ),
    ],
    ids=["in-at-out", "across-policies", "positive-scale-in-step", "min-max-zero"],
)
def test_config_validate_refuses_set_ups_that_flap(
    tmp_path: Path, spec: dict[str, object], expected: str
) -> None:
    path = write(tmp_path, pool_config("redis://127.0.0.1:6379/11", "c", "q", **spec))
    result = run("config", "validate", "--config", str(path))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: document 2 (WorkerPool/p): "), line
    assert expected in line, line
