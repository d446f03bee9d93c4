"""`celery-scaler report` and `simulate` as a user runs them, history from the local AWS API."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from celery_scaler.local.aws_api import LocalAws
from tests.helpers import DESIGN_SPEC, run

pytestmark = pytest.mark.integration


def config_file(tmp_path: Path, *pools: str, interval: str = "60s") -> Path:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "celery-scaler/v1", "kind": "Controller", "spec": {"interval": interval}}
    ]
    docs += [
        {
            "apiVersion": "celery-scaler/v1",
            "kind": "WorkerPool",
            "metadata": {"name": name},
            "spec": DESIGN_SPEC,
        }
        for name in pools
    ]
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return path


def publish(
    aws: LocalAws,
    pool: str,
    name: str,
    points: dict[float, float],
    namespace: str = "CeleryMetrics",
    dimensions: dict[str, str] | None = None,
) -> None:
    """PutMetricData as the controller publishes: namespace CeleryMetrics, dimension Pool."""
    data = [
        {
            "MetricName": name,
            "Dimensions": [
                {"Name": key, "Value": value}
                for key, value in (dimensions or {"Pool": pool}).items()
            ],
            "Timestamp": datetime.fromtimestamp(when, UTC),
            "Value": value,
            "Unit": "Count",
        }
        for when, value in points.items()
    ]
    client = aws.client("cloudwatch")
    for first in range(0, len(data), 500):
        client.put_metric_data(Namespace=namespace, MetricData=data[first : first + 500])


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def recorded(aws: LocalAws, unique: str) -> tuple[str, float]:
    """70 minutes of backlog_per_task at 60s: a burst, a quiet spell, a 10-minute gap."""
    pool = f"p{unique}"
    base = math.floor(time.time() / 60) * 60 - 80 * 60
    backlog: dict[float, float] = {}
    for minute in range(70):
        if 40 <= minute < 50:
            continue  # the controller published nothing: a gap
        backlog[base + minute * 60] = 25.0 if 10 <= minute < 13 else 0.5 if minute >= 30 else 5.0
    publish(aws, pool, "backlog_per_task", backlog)
    publish(aws, pool, "current_capacity", {base + m * 60: 3.0 for m in range(70)})
    return pool, base


def test_report_replays_history_through_the_policy(
    tmp_path: Path, aws: LocalAws, recorded: tuple[str, float]
) -> None:
    pool, base = recorded
    config = config_file(tmp_path, pool)
    result = run(
        "report", "-c", str(config), "--start", iso(base), "--end", iso(base + 70 * 60),
        "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["period_seconds"] == 60
    assert report["initial"] == 3  # the real count at the start
    assert report["real_source"] == "CeleryMetrics current_capacity"

    # The policy's expectations: backlog 25 is 15 above the threshold of 10, so
    # step [10, +inf) adds 2 each minute (the 60s cooldown has run out by the next
    # datapoint); backlog 0.5 takes 1 away every 300s (the scale-in cooldown), and
    # nothing happens where data is missing (minutes 40 to 49).
    actions = [
        ((datetime.fromisoformat(a["time"]).timestamp() - base) / 60, a["current"], a["desired"])
        for a in report["actions"]
    ]
    assert actions == [
        (10, 3, 5),
        (11, 5, 7),
        (12, 7, 9),
        (30, 9, 8),
        (35, 8, 7),
        (50, 7, 6),
        (55, 6, 5),
        (60, 5, 4),
        (65, 4, 3),
    ]
    assert report["actions"][0]["rule"] == "step [10, +inf) → +2"
    assert report["actions"][0]["value"] == 25.0
    assert report["actions"][0]["real"] == 3.0
    assert report["actions"][3]["reason"] == "backlog_per_task 0.5 ≤ 2 (step (-inf, 0] → -1): 9 → 8"
    assert report["gaps"] == [
        {"start": iso(base + 40 * 60), "end": iso(base + 50 * 60), "seconds": 600.0}
    ]
    out, scale_in = report["thresholds"]
    assert (out["seconds"], scale_in["seconds"]) == (180.0, 30 * 60.0)
    assert report["real"]["capacity_hours"] == pytest.approx(3 * 70 / 60, rel=0.01)
    replayed = report["replayed"]
    assert replayed["changes"] == 9
    assert replayed["seconds_at_max"] == 0


def test_real_count_from_container_insights(tmp_path: Path, aws: LocalAws, unique: str) -> None:
    pool = f"p{unique}"
    base = math.floor(time.time() / 60) * 60 - 30 * 60
    publish(aws, pool, "backlog_per_task", {base + m * 60: 5.0 for m in range(20)})
    publish(
        aws,
        pool,
        "DesiredTaskCount",
        {base + m * 60: 2.0 if m < 10 else 4.0 for m in range(20)},
        namespace="ECS/ContainerInsights",
        dimensions={"ClusterName": "prod", "ServiceName": "celery-worker"},
    )
    result = run(
        "report", "-c", str(config_file(tmp_path, pool)), "--start", iso(base),
        "--end", iso(base + 20 * 60), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["real_source"] == "ECS/ContainerInsights DesiredTaskCount"
    assert [row[3] for row in report["timeline"]] == [2.0] * 10 + [4.0] * 10
    assert report["real"]["capacity_hours"] == pytest.approx((2 * 10 + 4 * 10) / 60)
    assert report["actions"] == []


def test_report_html_is_one_file_with_the_chart(
    tmp_path: Path, aws: LocalAws, recorded: tuple[str, float]
) -> None:
    pool, base = recorded
    config = config_file(tmp_path, pool)
    page, chart = tmp_path / "report.html", tmp_path / "report.png"
    result = run(
        "report", "-c", str(config), "--start", iso(base), "--end", iso(base + 70 * 60),
        "--format", "html", "--out", str(page), "--chart", str(chart),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = page.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 1
    assert "http" not in html.replace("data:image/png", "")
    assert "Missing data" in html
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    table = run("report", "-c", str(config), "--start", iso(base), "--end", iso(base + 70 * 60))
    assert table.returncode == 0, table.stderr
    assert "Data missing for 10m 00s in 1 gap(s)" in table.stdout


def test_report_without_history_says_so(tmp_path: Path, aws: LocalAws, unique: str) -> None:
    result = run("report", "-c", str(config_file(tmp_path, f"p{unique}")), "--since", "1h")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no backlog_per_task datapoints for Pool=p{unique} in CloudWatch namespace "
        "CeleryMetrics over that time: is the controller publishing its metrics there?"
    ]


def test_simulate_compares_the_alarm_path(tmp_path: Path) -> None:
    config = config_file(tmp_path, "default", interval="15s")
    chart = tmp_path / "sim.png"
    args = ["simulate", "-c", str(config), "--pattern", "burst", "--duration", "3h"]
    result = run(*args, "--compare", "alarm-path", "--format", "json", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    simulation = json.loads(result.stdout)
    controller, alarms = simulation["policies"]
    assert (controller["policy"], alarms["policy"]) == ("controller", "alarm-path")
    for policy in (controller, alarms):
        assert policy["scaling_actions"] > 0
        assert 0 <= policy["wait_p50"] <= policy["wait_p95"] <= policy["wait_max"]
    assert controller["tasks"] == alarms["tasks"]
    assert chart.read_bytes().startswith(b"\x89PNG")
    again = run(*args, "--compare", "alarm-path", "--format", "json")
    assert json.loads(again.stdout) == simulation  # seeded: the same run twice


def test_simulate_from_a_trace_in_markdown(tmp_path: Path) -> None:
    config = config_file(tmp_path, "default", interval="15s")
    trace = tmp_path / "trace.csv"
    rows = [f"2024-05-01T00:{minute:02d}:00Z,{600 if minute == 5 else 20}" for minute in range(30)]
    trace.write_text("timestamp,count\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = run("simulate", "-c", str(config), "--trace", str(trace), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Simulation: pool default, ")
    assert "| task wait p95 |" in result.stdout


def test_without_matplotlib_commands_work_and_say_how_to_get_charts(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    config = config_file(tmp_path, "default", interval="15s")
    chart, page = tmp_path / "sim.png", tmp_path / "sim.html"
    args = ["simulate", "-c", str(config), "--pattern", "steady", "--duration", "1h"]
    env = {"PYTHONPATH": str(blocker.parent)}
    result = run(*args, "--chart", str(chart), env=env)
    # A chart asked for by name and not drawn fails the command; the document is written.
    assert result.returncode == 2, result.stderr
    assert "pip install 'celery-scaler[report]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "task wait p95" in result.stdout
    assert not chart.exists()
    # The HTML page's own chart is not asked for by name: a note in the page, exit 0.
    html = run(*args, "--format", "html", "--out", str(page), env=env)
    assert html.returncode == 0, html.stderr
    assert "pip install &#x27;celery-scaler[report]&#x27;" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--since", "2h", "--start", "2024-05-01T00:00:00Z"], "not both"),
        (["report", "--start", "yesterday"], "'yesterday' is not a timestamp"),
        (["report", "--pool", "nope"], "no WorkerPool named 'nope'"),
        (["simulate"], "give one of --trace FILE.csv or --pattern"),
        (["simulate", "--pattern", "steady", "--trace", "t.csv"], "give one of --trace"),
        (["simulate", "--pattern", "wavy"], "'wavy' is not one of steady, burst, diurnal, spiky"),
        (["simulate", "--trace", "missing.csv"], "cannot read trace missing.csv: No such file"),
        (["simulate", "--trace", "bad.csv"], "bad.csv line 2: 'later' is not a timestamp"),
        (["simulate", "--pattern", "steady", "--task-duration", "soon"], "expected a duration"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    config = config_file(tmp_path, "default")
    (tmp_path / "bad.csv").write_text("0,5\nlater,3\n", encoding="utf-8")
    result = run(*args, "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_several_pools_need_pool(tmp_path: Path) -> None:
    result = run(
        "simulate", "-c", str(config_file(tmp_path, "a", "b")), "--pattern", "steady"
    )  # fmt: skip
    assert result.returncode == 2
    assert "the configuration has 2 pools (a, b); pick one with --pool" in result.stderr
