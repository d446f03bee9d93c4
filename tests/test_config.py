"""The configuration file: the DESIGN example, defaults, durations and every error's message."""

from __future__ import annotations

import math
import textwrap
from importlib import resources
from typing import Any

import pytest
import yaml

from celery_scaler.core.config import (
    AdjustmentType,
    Statistic,
    format_duration,
    json_schema,
    mask_url,
    parse_config,
    parse_duration,
)
from celery_scaler.core.errors import ConfigError
from celery_scaler.core.metrics import Metric

# DESIGN.md, "Configuration file", verbatim.
DESIGN_EXAMPLE = """\
apiVersion: celery-scaler/v1
kind: Controller              # optional document; all fields have defaults
spec:
  broker: redis://localhost:6379/0   # env CELERY_SCALER_BROKER_URL overrides
  interval: 15s                      # time between reconcile passes
  inspectTimeout: 1s
  region: us-east-1                  # else the AWS SDK's own resolution
  cloudwatch: {enabled: true, namespace: CeleryMetrics, perWorkerMetrics: false}
  prometheus: {enabled: true, port: 9808}
  leaderElection: {enabled: false, table: celery-scaler-leases, leaseDuration: 30s}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {name: default}
spec:
  ecs: {cluster: prod, service: celery-worker}
  queues: [celery]
  minCapacity: 1
  maxCapacity: 20
  metric: backlog_per_task   # see "Metrics"
  statistic: Average         # Average | Minimum | Maximum of the samples in window
  window: 0s                 # 0s = latest sample only
  scaleOut:
    threshold: 10
    adjustmentType: ChangeInCapacity   # | PercentChangeInCapacity | ExactCapacity
    minAdjustmentMagnitude: null       # PercentChangeInCapacity only
    cooldown: 60s
    steps:
      - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}
      - {metricIntervalLowerBound: 10, scalingAdjustment: 2}
  scaleIn:
    threshold: 2
    adjustmentType: ChangeInCapacity
    cooldown: 300s
    steps:
      - {metricIntervalUpperBound: 0, scalingAdjustment: -1}
  safeScaleIn: true          # never below the number of ECS tasks whose worker is busy
  fallback: {failureThreshold: 3, capacity: null}   # see "Faults"
"""

CONTROLLER_HEADER = "apiVersion: celery-scaler/v1\nkind: Controller\n"


def controller(spec: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return CONTROLLER_HEADER + (f"spec:\n{body}\n" if body.strip() else "")


def pool(spec: str = "", *, name: str = "default", policies: bool = True) -> str:
    """A WorkerPool document; `spec` lines are added to a minimal valid spec."""
    lines = ["ecs: {cluster: prod, service: celery-worker}"]
    if policies:
        lines.append(
            "scaleOut: {threshold: 10, steps: [{metricIntervalLowerBound: 0, "
            "scalingAdjustment: 1}]}"
        )
    extra = textwrap.dedent(spec).strip()
    body = textwrap.indent("\n".join([*lines, extra] if extra else lines), "  ")
    return (
        f"apiVersion: celery-scaler/v1\nkind: WorkerPool\nmetadata: {{name: {name}}}\n"
        f"spec:\n{body}\n"
    )


def documents(*docs: str) -> str:
    return "---\n".join(docs)


def config_error(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "scaler.yaml", env)
    return str(caught.value)


def scale_out(steps: str, **fields: Any) -> str:
    extra = "".join(f", {key}: {value}" for key, value in fields.items())
    return f"scaleOut: {{threshold: 10{extra}, steps: {steps}}}"


# --------------------------------------------------------------------------- the example


def test_design_example_parses() -> None:
    config = parse_config(DESIGN_EXAMPLE, "celery-scaler.yaml")
    spec = config.controller
    assert spec.broker == "redis://localhost:6379/0"
    assert spec.broker_kind == "redis"
    assert (spec.interval, spec.inspect_timeout, spec.region) == (15.0, 1.0, "us-east-1")
    assert spec.cloudwatch.enabled
    assert spec.cloudwatch.namespace == "CeleryMetrics"
    assert not spec.cloudwatch.per_worker_metrics
    assert (spec.prometheus.enabled, spec.prometheus.port) == (True, 9808)
    assert not spec.leader_election.enabled
    assert spec.leader_election.table == "celery-scaler-leases"
    assert spec.leader_election.lease_duration == 30.0

    assert [p.name for p in config.pools] == ["default"]
    worker_pool = config.pool("default").spec
    assert (worker_pool.ecs.cluster, worker_pool.ecs.service) == ("prod", "celery-worker")
    assert worker_pool.queues == ("celery",)
    assert (worker_pool.min_capacity, worker_pool.max_capacity) == (1, 20)
    assert worker_pool.metric is Metric.BACKLOG_PER_TASK
    assert worker_pool.statistic is Statistic.AVERAGE
    assert worker_pool.window == 0.0
    out = worker_pool.scale_out
    assert out is not None
    assert (out.threshold, out.cooldown, out.min_adjustment_magnitude) == (10.0, 60.0, None)
    assert out.adjustment_type is AdjustmentType.CHANGE_IN_CAPACITY
    assert [(s.lower, s.upper, s.scaling_adjustment) for s in out.ordered_steps] == [
        (0.0, 10.0, 1),
        (10.0, math.inf, 2),
    ]
    in_ = worker_pool.scale_in
    assert in_ is not None
    assert (in_.threshold, in_.cooldown) == (2.0, 300.0)
    assert [(s.lower, s.upper, s.scaling_adjustment) for s in in_.steps] == [(-math.inf, 0.0, -1)]
    assert worker_pool.safe_scale_in
    assert (worker_pool.fallback.failure_threshold, worker_pool.fallback.capacity) == (3, None)


def test_packaged_example_parses() -> None:
    example = resources.files("celery_scaler").joinpath("example.yaml")
    if not example.is_file():
        pytest.skip("the package ships no example.yaml")
    config = parse_config(example.read_text(), "example.yaml")
    assert config.pools


def test_defaults() -> None:
    config = parse_config(pool(), "scaler.yaml")
    spec = config.controller
    assert spec.broker == "redis://localhost:6379/0"
    assert (spec.interval, spec.inspect_timeout, spec.region) == (15.0, 1.0, None)
    assert (spec.cloudwatch.enabled, spec.cloudwatch.namespace) == (True, "CeleryMetrics")
    assert not spec.cloudwatch.per_worker_metrics
    assert (spec.prometheus.enabled, spec.prometheus.port) == (True, 9808)
    assert not spec.leader_election.enabled
    assert spec.leader_election.lease_duration == 30.0
    worker_pool = config.pools[0].spec
    assert worker_pool.queues == ("celery",)
    assert (worker_pool.min_capacity, worker_pool.max_capacity) == (1, 20)
    assert worker_pool.metric is Metric.BACKLOG_PER_TASK
    assert worker_pool.statistic is Statistic.AVERAGE
    assert worker_pool.window == 0.0
    assert worker_pool.safe_scale_in
    assert (worker_pool.fallback.failure_threshold, worker_pool.fallback.capacity) == (3, None)
    assert worker_pool.scale_in is None
    out = worker_pool.scale_out
    assert out is not None
    assert out.adjustment_type is AdjustmentType.CHANGE_IN_CAPACITY
    assert (out.cooldown, out.min_adjustment_magnitude) == (300.0, None)  # AWS default


def test_several_pools_keep_their_order() -> None:
    text = documents(pool(name="fast"), controller("interval: 5s"), pool(name="slow"))
    config = parse_config(text, "scaler.yaml")
    assert [p.name for p in config.pools] == ["fast", "slow"]
    assert config.controller.interval == 5.0


def test_unknown_pool_name() -> None:
    config = parse_config(documents(pool(name="fast"), pool(name="slow")), "scaler.yaml")
    with pytest.raises(ConfigError, match=r"no WorkerPool named 'medium'.*fast, slow"):
        config.pool("medium")


def test_percent_policy_with_magnitude_parses() -> None:
    text = pool(
        "scaleIn: {threshold: 2, adjustmentType: PercentChangeInCapacity, "
        "minAdjustmentMagnitude: 2, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -25}]}"
    )
    in_ = parse_config(text, "scaler.yaml").pools[0].spec.scale_in
    assert in_ is not None
    assert in_.min_adjustment_magnitude == 2


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("30", 30.0),
        (30, 30.0),
        (1.5, 1.5),
        ("1.5m", 90.0),
        ("0s", 0.0),
        # As people write them, Go and Kubernetes style: several parts, and days.
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1m 30s", 90.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["5 minutes", "-1s", -1, "1w", "", "s", "fast", "1s2", True, None, math.nan, math.inf],
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "1h"), (300, "5m"), (15, "15s"), (90, "90s"), (0.25, "0.25s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_durations_in_a_document() -> None:
    text = documents(
        controller("interval: 250ms\ninspectTimeout: 2\nleaderElection: {leaseDuration: 1h}"),
        pool("window: 5m"),
    )
    config = parse_config(text, "scaler.yaml")
    assert config.controller.interval == 0.25
    assert config.controller.inspect_timeout == 2.0
    assert config.controller.leader_election.lease_duration == 3600.0
    assert config.pools[0].spec.window == 300.0


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        ("interval: 5 minutes", "spec.interval", "expected a duration such as 15s"),
        ("interval: -1s", "spec.interval", "expected a duration such as 15s"),
        ("interval: -1", "spec.interval", "cannot be negative"),
        ("interval: 0s", "spec.interval", "must be longer than 0s"),
        ("inspectTimeout: 0", "spec.inspectTimeout", "must be longer than 0s"),
        ("leaderElection: {leaseDuration: .inf}", "spec.leaderElection.leaseDuration", "finite"),
    ],
)
def test_bad_controller_durations(spec: str, path: str, expected: str) -> None:
    message = config_error(documents(controller(spec), pool()))
    assert "scaler.yaml: document 1 (Controller)" in message
    assert f"{path}: " in message
    assert expected in message


# --------------------------------------------------------------------------- errors


def _pool_error(spec: str, *, policies: bool = True) -> str:
    """The error for a WorkerPool that is document 2, after a Controller."""
    return config_error(documents(controller(), pool(spec, policies=policies)))


POOL_ERRORS = [
    # (the pool's extra spec lines, whether to add the default scaleOut, path, expectation)
    pytest.param(
        "scaleOut: {treshold: 10, steps: [{metricIntervalLowerBound: 0, scalingAdjustment: 1}]}",
        False,
        "spec.scaleOut.treshold",
        "unknown field (did you mean 'threshold'?)",
        id="unknown-key-suggests-scale-out",
    ),
    pytest.param(
        "scaleIn: {treshold: 2, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1}]}",
        True,
        "spec.scaleIn.treshold",
        "unknown field (did you mean 'threshold'?)",
        id="unknown-key-suggests",
    ),
    pytest.param(
        "metric: backlog_per_tsk",
        True,
        "spec.metric",
        "unknown metric 'backlog_per_tsk' (did you mean 'backlog_per_task'?)",
        id="unknown-metric-suggests",
    ),
    pytest.param(
        "minCapacity: 5\nmaxCapacity: 2",
        True,
        "spec.minCapacity",
        "minCapacity (5) is greater than maxCapacity (2)",
        id="min-above-max",
    ),
    pytest.param(
        "minCapacity: -1",
        True,
        "spec.minCapacity",
        "greater than or equal to 0",
        id="negative-min",
    ),
    pytest.param(
        "maxCapacity: -3",
        True,
        "spec.maxCapacity",
        "greater than or equal to 0",
        id="negative-max",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 5, scalingAdjustment: 1},"
            " {metricIntervalLowerBound: 10, scalingAdjustment: 2}]"
        ),
        False,
        "spec.scaleOut.steps",
        "steps leave a gap between 5 and 10",
        id="gap",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1},"
            " {metricIntervalLowerBound: 5, scalingAdjustment: 2}]"
        ),
        False,
        "spec.scaleOut.steps",
        "steps overlap: [0, 10) and [5, +inf)",
        id="overlap",
    ),
    pytest.param(
        "scaleIn: {threshold: 2, steps: [{metricIntervalUpperBound: 0, scalingAdjustment: -1},"
        " {metricIntervalUpperBound: -5, scalingAdjustment: -2}]}",
        True,
        "spec.scaleIn.steps",
        "at most one step may omit metricIntervalLowerBound",
        id="two-open-lower-bounds",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, scalingAdjustment: 1},"
            " {metricIntervalLowerBound: 5, scalingAdjustment: 2}]"
        ),
        False,
        "spec.scaleOut.steps",
        "at most one step may omit metricIntervalUpperBound",
        id="two-open-upper-bounds",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 10, metricIntervalUpperBound: 5, scalingAdjustment: 1}]"
        ),
        False,
        "spec.scaleOut.steps.0",
        "metricIntervalLowerBound (10) must be below metricIntervalUpperBound (5)",
        id="lower-above-upper",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 5, metricIntervalUpperBound: 5, scalingAdjustment: 1}]"
        ),
        False,
        "spec.scaleOut.steps.0",
        "must be below",
        id="lower-equals-upper",
    ),
    pytest.param(
        scale_out("[{scalingAdjustment: 1}]"),
        False,
        "spec.scaleOut.steps.0",
        "a step needs metricIntervalLowerBound, metricIntervalUpperBound or both",
        id="step-without-bounds",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}]"
        ),
        False,
        "spec.scaleOut.steps",
        "one step must omit metricIntervalUpperBound (the table must reach +infinity)",
        id="positive-upper-needs-open-top",
    ),
    pytest.param(
        "scaleIn: {threshold: 2, steps: [{metricIntervalLowerBound: -5,"
        " metricIntervalUpperBound: 0, scalingAdjustment: -1}]}",
        True,
        "spec.scaleIn.steps",
        "one step must omit metricIntervalLowerBound (the table must reach -infinity)",
        id="negative-lower-needs-open-bottom",
    ),
    pytest.param(
        scale_out("[]"),
        False,
        "spec.scaleOut.steps",
        "at least 1 item",
        id="no-steps",
    ),
    pytest.param(
        scale_out("[{metricIntervalLowerBound: 0, scalingAdjustment: 1.5}]"),
        False,
        "spec.scaleOut.steps.0.scalingAdjustment",
        "integer",
        id="fractional-adjustment",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, scalingAdjustment: 1}]", minAdjustmentMagnitude=2
        ),
        False,
        "spec.scaleOut.minAdjustmentMagnitude",
        "applies only to PercentChangeInCapacity, not to ChangeInCapacity",
        id="magnitude-with-change-in-capacity",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, scalingAdjustment: 10}]",
            adjustmentType="PercentChangeInCapacity",
            minAdjustmentMagnitude=0,
        ),
        False,
        "spec.scaleOut.minAdjustmentMagnitude",
        "greater than or equal to 1",
        id="magnitude-zero",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, scalingAdjustment: -1}]", adjustmentType="ExactCapacity"
        ),
        False,
        "spec.scaleOut.steps",
        "ExactCapacity steps need a scalingAdjustment of 0 or more",
        id="negative-exact-capacity",
    ),
    pytest.param(
        scale_out(
            "[{metricIntervalLowerBound: 0, scalingAdjustment: 1}]", adjustmentType="Percent"
        ),
        False,
        "spec.scaleOut.adjustmentType",
        "'ChangeInCapacity', 'PercentChangeInCapacity' or 'ExactCapacity'",
        id="unknown-adjustment-type",
    ),
    pytest.param(
        "statistic: Median",
        True,
        "spec.statistic",
        "'Average', 'Minimum' or 'Maximum'",
        id="unknown-statistic",
    ),
    pytest.param(
        scale_out("[{metricIntervalLowerBound: 0, scalingAdjustment: 1}]", cooldown="5 minutes"),
        False,
        "spec.scaleOut.cooldown",
        "expected a duration such as 15s, 5m, 1m30s, 2h, 1d or a number of seconds, "
        "got '5 minutes'",
        id="bad-cooldown",
    ),
    pytest.param(
        "window: -1s",
        True,
        "spec.window",
        "expected a duration",
        id="negative-window",
    ),
    pytest.param(
        scale_out("[{metricIntervalLowerBound: 0, scalingAdjustment: 1}]").replace("10", ".nan", 1),
        False,
        "spec.scaleOut.threshold",
        "finite number",
        id="nan-threshold",
    ),
    pytest.param(
        "",
        False,
        "spec",
        "a pool needs a policy: scaleOut, scaleIn (or both), targetTracking, or an entry in "
        "policies",
        id="neither-policy",
    ),
    pytest.param(
        "fallback: {capacity: 50}",
        True,
        "spec.fallback.capacity",
        "50 must lie within [minCapacity, maxCapacity] = [1, 20]",
        id="fallback-capacity-outside-range",
    ),
    pytest.param(
        "fallback: {failureThreshold: 0}",
        True,
        "spec.fallback.failureThreshold",
        "greater than or equal to 1",
        id="fallback-threshold-zero",
    ),
    pytest.param(
        "queues: []",
        True,
        "spec.queues",
        "at least 1 item",
        id="no-queues",
    ),
    pytest.param(
        "ecs: {cluster: prod}",
        True,
        "spec.ecs.service",
        "required field is missing",
        id="missing-service",
    ),
]


@pytest.mark.parametrize(("spec", "policies", "path", "expected"), POOL_ERRORS)
def test_pool_errors_name_document_path_and_expectation(
    spec: str, policies: bool, path: str, expected: str
) -> None:
    message = _pool_error(spec, policies=policies)
    assert message.startswith("scaler.yaml: document 2 (WorkerPool/default): ")
    assert f": {path}: " in message
    assert expected in message


def test_malformed_yaml_names_the_line() -> None:
    text = documents(controller(), "apiVersion: celery-scaler/v1\nkind: [WorkerPool\n")
    message = config_error(text)
    assert message.startswith("scaler.yaml: not valid YAML at line ")
    assert "line 6" in message


def test_unknown_controller_key_suggests() -> None:
    message = config_error(documents(controller("intervall: 5s"), pool()))
    assert message == (
        "scaler.yaml: document 1 (Controller): spec.intervall: unknown field "
        "(did you mean 'interval'?)"
    )


def test_unknown_top_level_key_suggests() -> None:
    message = config_error(pool().replace("spec:", "specs:"))
    assert "document 1 (WorkerPool/default): specs: unknown field (did you mean 'spec'?)" in message


def test_no_worker_pool() -> None:
    assert "no WorkerPool document" in config_error(controller())
    assert "no WorkerPool document" in config_error("")


def test_duplicate_pool_names() -> None:
    message = config_error(documents(controller(), pool(), pool()))
    assert message.startswith("scaler.yaml: document 3 (WorkerPool/default): metadata.name: ")
    assert "a WorkerPool named 'default' is already defined" in message


def test_second_controller_document() -> None:
    message = config_error(documents(controller(), pool(), controller()))
    assert "document 3 (Controller): a second Controller document" in message


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            ("celery-scaler/v1", "celery-scaler/v2"),
            "document 1: apiVersion: expected 'celery-scaler/v1', got 'celery-scaler/v2'",
        ),
        (
            ("kind: WorkerPool", "kind: Workerpool"),
            "document 1: kind: expected one of Controller, WorkerPool, got 'Workerpool'",
        ),
        (("kind: WorkerPool\n", ""), "document 1: kind: expected one of Controller, WorkerPool"),
    ],
)
def test_wrong_api_version_or_kind(replace: tuple[str, str], expected: str) -> None:
    assert expected in config_error(pool().replace(*replace))


def test_document_that_is_not_a_mapping() -> None:
    message = config_error(documents(pool(), "- just\n- a list\n"))
    assert "document 2: expected a mapping with apiVersion, kind and spec" in message


def test_bad_pool_name() -> None:
    message = config_error(pool(name="Default_Pool"))
    assert "document 1 (WorkerPool/Default_Pool): metadata.name: " in message


def test_bad_broker_scheme() -> None:
    message = config_error(documents(controller("broker: http://localhost"), pool()))
    assert "document 1 (Controller): spec.broker: broker URL scheme 'http' is not one of" in message


# --------------------------------------------------------------------------- broker and metric


@pytest.mark.parametrize(
    ("broker", "metric", "expected"),
    [
        ("sqs://", "busy_ratio", "busy_ratio needs Celery's remote control (inspect)"),
        ("sqs://", "active_tasks", "which the SQS transport does not have"),
        ("sqs://", "queue_latency_seconds", "Redis only; the sqs broker cannot give it"),
        ("amqp://guest@rabbit//", "queue_latency_seconds", "Redis only; the amqp broker"),
    ],
)
def test_broker_that_cannot_give_the_metric(broker: str, metric: str, expected: str) -> None:
    text = documents(controller(f"broker: {broker}"), pool(f"metric: {metric}"))
    message = config_error(text)
    assert message.startswith("scaler.yaml: document 2 (WorkerPool/default): spec.metric: ")
    assert expected in message


@pytest.mark.parametrize("metric", ["queue_depth", "backlog_per_task"])
def test_sqs_with_a_broker_only_metric(metric: str) -> None:
    text = documents(controller("broker: sqs://"), pool(f"metric: {metric}"))
    assert parse_config(text, "scaler.yaml").controller.broker_kind == "sqs"


def test_sqs_with_safe_scale_in_set_explicitly() -> None:
    text = documents(controller("broker: sqs://"), pool("safeScaleIn: true"))
    message = config_error(text)
    assert "document 2 (WorkerPool/default): spec.safeScaleIn: needs Celery's remote" in message
    parse_config(documents(controller("broker: sqs://"), pool("safeScaleIn: false")), "x")


@pytest.mark.parametrize(
    ("broker", "setting", "drains"),
    [
        ("redis://localhost:6379/0", "", True),  # safe by default where a worker can drain
        ("amqp://guest@rabbit//", "", True),
        ("redis://localhost:6379/0", "drainScaleIn: false", False),
        ("sqs://", "", False),  # no remote control
    ],
)
def test_drain_then_remove_is_the_default_where_the_broker_can_drain(
    broker: str, setting: str, drains: bool
) -> None:
    config = parse_config(documents(controller(f"broker: {broker}"), pool(setting)), "x")
    pool_spec = config.pools[0].spec
    assert config.controller.drains(pool_spec) is drains
    assert config.controller.guards_tasks(pool_spec) is drains
    assert pool_spec.drain_timeout == 600.0


def test_sqs_refuses_drain_scale_in_and_a_drain_timeout_is_bounded() -> None:
    message = config_error(documents(controller("broker: sqs://"), pool("drainScaleIn: true")))
    assert "spec.drainScaleIn: needs Celery's remote control (cancel_consumer)" in message
    assert "spec.drainTimeout: longer than 0s" in config_error(pool("drainTimeout: 0s"))


def test_redis_may_give_latency() -> None:
    config = parse_config(pool("metric: queue_latency_seconds"), "scaler.yaml")
    assert config.pools[0].spec.metric is Metric.QUEUE_LATENCY_SECONDS


def test_broker_env_overrides_the_file() -> None:
    override = "amqp://user:secret@rabbit:5672/vhost"
    text = documents(controller("broker: redis://localhost:6379/0"), pool())
    config = parse_config(text, "scaler.yaml", env={"CELERY_SCALER_BROKER_URL": override})
    assert config.controller.broker == override
    assert config.controller.broker_kind == "amqp"
    assert config.controller.interval == 15.0  # the rest of the Controller document stays
    unset = parse_config(text, "scaler.yaml", env={"CELERY_SCALER_BROKER_URL": ""})
    assert unset.controller.broker == "redis://localhost:6379/0"
    assert parse_config(text, "scaler.yaml").controller.broker == "redis://localhost:6379/0"


def test_broker_env_override_is_checked_without_showing_the_password() -> None:
    message = config_error(pool(), env={"CELERY_SCALER_BROKER_URL": "http://u:secret@host"})
    assert message.startswith("CELERY_SCALER_BROKER_URL: broker: broker URL scheme 'http'")
    assert "secret" not in message


def test_broker_env_override_to_sqs_rechecks_the_pools() -> None:
    message = config_error(pool("metric: busy_ratio"), env={"CELERY_SCALER_BROKER_URL": "sqs://"})
    assert "document 1 (WorkerPool/default): spec.metric: busy_ratio needs" in message


# --------------------------------------------------------------------------- transport options


def test_celerys_documented_transport_options_are_taken() -> None:
    # Celery's Redis priority set-up and a key prefix, as an application writes them.
    spec = """\
        brokerTransportOptions:
          sep: ':'
          priority_steps: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
          queue_order_strategy: priority
          global_keyprefix: 'app:'
          visibility_timeout: 43200
        """
    config = parse_config(documents(controller(spec), pool()), "scaler.yaml")
    options = config.controller.broker_transport_options
    assert options["priority_steps"] == list(range(10))
    assert options["global_keyprefix"] == "app:"


@pytest.mark.parametrize(
    ("broker", "option", "expected"),
    [
        (
            "redis://localhost",
            "priority_step: [0, 9]",
            "priority_step: unknown option for kombu's Redis transport "
            "(did you mean 'priority_steps'?)",
        ),
        (
            "redis://localhost",
            "global_key_prefix: 'app:'",
            "global_key_prefix: unknown option for kombu's Redis transport "
            "(did you mean 'global_keyprefix'?)",
        ),
        (
            "amqp://guest@rabbit//",
            "sep: ':'",
            "sep: unknown option for kombu's py-amqp (RabbitMQ) transport",
        ),
        ("sqs://", "queue_name_prefx: dev-", "(did you mean 'queue_name_prefix'?)"),
        ("redis://localhost", "global_keyprefix: 5", "global_keyprefix: expected text, got 5"),
        ("redis://localhost", "priority_steps: '0,9'", "expected a list of whole numbers"),
    ],
)
def test_transport_options_kombu_would_not_take(broker: str, option: str, expected: str) -> None:
    spec = f"broker: {broker}\nbrokerTransportOptions: {{{option}}}"
    message = config_error(documents(controller(spec), pool("metric: queue_depth")))
    assert message.startswith("scaler.yaml: document 1 (Controller): spec.brokerTransportOptions.")
    assert expected in message


def test_transport_options_are_checked_against_the_broker_from_the_environment() -> None:
    text = documents(controller("brokerTransportOptions: {sep: ':'}"), pool())
    message = config_error(text, env={"CELERY_SCALER_BROKER_URL": "amqp://guest@rabbit//"})
    assert "spec.brokerTransportOptions.sep: unknown option for kombu's py-amqp" in message


def test_sqs_queue_name_prefix_from_the_transport_options() -> None:
    spec = "broker: sqs://\nbrokerTransportOptions: {queue_name_prefix: prod-}"
    config = parse_config(documents(controller(spec), pool("metric: queue_depth")), "x")
    assert config.controller.sqs_queue_name_prefix == "prod-"
    both = spec + "\nsqs: {queueNamePrefix: prod-}"
    assert parse_config(documents(controller(both), pool("metric: queue_depth")), "x")
    legacy = "broker: sqs://\nsqs: {queueNamePrefix: dev-}"
    config = parse_config(documents(controller(legacy), pool("metric: queue_depth")), "x")
    assert config.controller.sqs_queue_name_prefix == "dev-"


def test_sqs_queue_name_prefixes_that_disagree() -> None:
    spec = (
        "broker: sqs://\nbrokerTransportOptions: {queue_name_prefix: prod-}\n"
        "sqs: {queueNamePrefix: dev-}"
    )
    message = config_error(documents(controller(spec), pool("metric: queue_depth")))
    assert message == (
        "scaler.yaml: document 1 (Controller): spec.sqs.queueNamePrefix: 'dev-' differs from "
        "brokerTransportOptions.queue_name_prefix 'prod-'; set one of them"
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "rabbitmqManagementUrl: http://guest:guest@rabbit:15672",
            "spec.rabbitmqManagementUrl: only a RabbitMQ broker has a management API; "
            "the broker is redis",
        ),
        (
            "broker: amqp://guest@rabbit//\nrabbitmqManagementUrl: 'rabbit:15672'",
            "spec.rabbitmqManagementUrl: expected http://user:password@host:15672",
        ),
    ],
)
def test_rabbitmq_management_url(spec: str, expected: str) -> None:
    assert expected in config_error(documents(controller(spec), pool()))


def test_unacked_tasks_on_rabbitmq_needs_the_management_api() -> None:
    amqp = "broker: amqp://guest@rabbit//"
    message = config_error(documents(controller(amqp), pool("metric: unacked_tasks")))
    assert "spec.metric: unacked_tasks is read from RabbitMQ's management API" in message
    with_api = f"{amqp}\nrabbitmqManagementUrl: http://guest:guest@rabbit:15672"
    parse_config(documents(controller(with_api), pool("metric: unacked_tasks")), "x")


# --------------------------------------------------------------------------- mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("amqp://user:pw@host:5672/vhost", "amqp://user:***@host:5672/vhost"),
        (
            "rediss://default:s3cr%40t@Cache.Example.com:6380/1",
            "rediss://default:***@Cache.Example.com:6380/1",
        ),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("sqs://AKIAEXAMPLE:wJalrXUtnFEMI@", "sqs://AKIAEXAMPLE:***@"),
        ("redis://:p@ss@host/0", "redis://:***@host/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("amqp://guest@rabbit//", "amqp://guest@rabbit//"),
        ("sqs://", "sqs://"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_url_never_shows_an_unparseable_url() -> None:
    assert "pw" not in mask_url("redis://:pw@[::1:6379/0")


# --------------------------------------------------------------------------- JSON Schema


def _design_documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(DESIGN_EXAMPLE))


def test_json_schema_structure() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    variants = {ref["$ref"].rsplit("/", 1)[-1] for ref in schema["oneOf"]}
    assert variants == {"ControllerDocument", "WorkerPoolDocument"}
    assert schema["discriminator"]["propertyName"] == "kind"
    pool_spec = defs["WorkerPoolSpec"]
    assert pool_spec["additionalProperties"] is False  # unknown keys are errors
    assert {"minCapacity", "maxCapacity", "scaleOut", "scaleIn", "safeScaleIn"} <= set(
        pool_spec["properties"]
    )
    assert set(defs["StepAdjustment"]["properties"]) == {
        "metricIntervalLowerBound",
        "metricIntervalUpperBound",
        "scalingAdjustment",
    }
    # Durations are written as text in a file, so the schema must allow it.
    cooldown = defs["StepPolicy"]["properties"]["cooldown"]
    assert {"type": "string", "pattern": cooldown["anyOf"][1]["pattern"]} in cooldown["anyOf"]
    assert defs["WorkerPoolDocument"]["properties"]["apiVersion"]["const"] == "celery-scaler/v1"


def test_json_schema_accepts_the_design_example_and_rejects_mistakes() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    for document in _design_documents():
        validator.validate(document)

    _, pool_doc = _design_documents()
    pool_doc["spec"]["scaleOut"]["treshold"] = 10
    assert not validator.is_valid(pool_doc)
    _, pool_doc = _design_documents()
    pool_doc["spec"]["window"] = "5 minutes"
    assert not validator.is_valid(pool_doc)
    _, pool_doc = _design_documents()
    pool_doc["kind"] = "Pool"
    assert not validator.is_valid(pool_doc)


# --------------------------------------------------------------------------- several policies

OUT_10 = "scaleOut: {threshold: 10, steps: [{metricIntervalLowerBound: 0, scalingAdjustment: 1}]}"
IN_AT = (
    "scaleIn: {{threshold: {}, steps: [{{metricIntervalUpperBound: 0, scalingAdjustment: -1}}]}}"
)


def policies(*entries: str) -> str:
    return "policies:\n" + "".join(f"  - {entry}\n" for entry in entries)


POLICY_ERRORS = [
    # (the pool's spec lines, the field path, what the line must say)
    pytest.param(
        f"{OUT_10}\n{IN_AT.format(10)}",
        "spec.scaleIn.threshold",
        "scales in at backlog_per_task (Average) ≤ 10, where this policy scales out (≥ 10): "
        "the count would flap; keep every scale-in below every scale-out on the same metric",
        id="scale-in-at-the-scale-out-threshold",
    ),
    pytest.param(
        f"{OUT_10}\n{IN_AT.format(12)}",
        "spec.scaleIn.threshold",
        "scales in at backlog_per_task (Average) ≤ 12, where this policy scales out (≥ 10)",
        id="scale-in-above-scale-out",
    ),
    pytest.param(
        f"{OUT_10}\n"
        + policies("{name: drain, metric: backlog_per_task, " + IN_AT.format(12) + "}"),
        "spec.policies.0.scaleIn.threshold",
        "where policy 'default' (scaleOut.threshold) scales out (≥ 10)",
        id="across-policies",
    ),
    pytest.param(
        f"{OUT_10}\n"
        + policies("{name: track, metric: backlog_per_task, targetTracking: {targetValue: 20}}"),
        "spec.policies.0.targetTracking.targetValue",
        "scales in at backlog_per_task (Average) < 18, where policy 'default' "
        "(scaleOut.threshold) scales out (≥ 10)",
        id="target-tracking-below-a-scale-out",
    ),
    pytest.param(
        "metric: queue_depth\ntargetTracking: {targetValue: 10}\n"
        + policies("{name: drain, metric: queue_depth, " + IN_AT.format(15) + "}"),
        "spec.policies.0.scaleIn.threshold",
        "scales in at queue_depth (Average) ≤ 15, where policy 'default' "
        "(targetTracking.targetValue) scales out (> 10)",
        id="step-scale-in-above-a-target",
    ),
    pytest.param(
        f"{OUT_10}\nscaleIn: {{threshold: 2, steps: [{{metricIntervalUpperBound: 0, "
        "scalingAdjustment: 1}]}",
        "spec.scaleIn.steps",
        "a scaleIn step adds tasks (scalingAdjustment 1); scaleIn steps take 0 or less",
        id="positive-scale-in-step",
    ),
    pytest.param(
        "scaleOut: {threshold: 10, adjustmentType: PercentChangeInCapacity, "
        "steps: [{metricIntervalLowerBound: 0, scalingAdjustment: -10}]}",
        "spec.scaleOut.steps",
        "a scaleOut step removes tasks (scalingAdjustment -10); scaleOut steps take 0 or more",
        id="negative-scale-out-step",
    ),
    pytest.param(
        f"{OUT_10}\n"
        + policies(
            "{name: out, metric: queue_depth, scaleIn: {threshold: 0, steps: "
            "[{metricIntervalUpperBound: 0, scalingAdjustment: 2}]}}"
        ),
        "spec.policies.0.scaleIn.steps",
        "a scaleIn step adds tasks (scalingAdjustment 2); scaleIn steps take 0 or less",
        id="positive-scale-in-step-in-a-policy",
    ),
    pytest.param(
        f"{OUT_10}\nminCapacity: 0\nmaxCapacity: 0",
        "spec.maxCapacity",
        "minCapacity and maxCapacity are both 0: the pool could never run",
        id="min-and-max-zero",
    ),
    pytest.param(
        f"{OUT_10}\ntargetTracking: {{targetValue: 10}}",
        "spec.targetTracking",
        "a policy is step scaling (scaleOut, scaleIn) or target tracking, not both",
        id="steps-and-target-tracking",
    ),
    pytest.param(
        "targetTracking: {targetValue: 0}",
        "spec.targetTracking.targetValue",
        "greater than 0",
        id="target-zero",
    ),
    pytest.param(
        f"{OUT_10}\n"
        + policies("{name: default, metric: queue_depth, targetTracking: {targetValue: 5}}"),
        "spec.policies.0.name",
        "'default' names the pool's own policy",
        id="reserved-name",
    ),
    pytest.param(
        policies(
            "{name: a, metric: queue_depth, targetTracking: {targetValue: 5}}",
            "{name: a, metric: busy_ratio, targetTracking: {targetValue: 0.8}}",
        ),
        "spec.policies.1.name",
        "'a' is taken by another policy",
        id="duplicate-name",
    ),
    pytest.param(
        "metric: queue_depth\n"
        + policies("{name: a, metric: busy_ratio, targetTracking: {targetValue: 0.8}}"),
        "spec.metric",
        "no policy reads it",
        id="own-metric-without-own-rules",
    ),
    pytest.param(
        policies("{name: a, metric: busy_ratio}"),
        "spec.policies.0",
        "a policy needs scaleOut, scaleIn (or both), or targetTracking",
        id="policy-without-rules",
    ),
    pytest.param(
        policies("{name: a, metric: busy_ration, targetTracking: {targetValue: 0.8}}"),
        "spec.policies.0.metric",
        "unknown metric 'busy_ration' (did you mean 'busy_ratio'?)",
        id="unknown-policy-metric",
    ),
]


@pytest.mark.parametrize(("spec", "path", "expected"), POLICY_ERRORS)
def test_policy_errors_name_the_field_and_what_flaps(spec: str, path: str, expected: str) -> None:
    message = _pool_error(spec, policies=False)
    assert message.startswith("scaler.yaml: document 2 (WorkerPool/default): ")
    assert f": {path}: " in message, message
    assert expected in message, message


@pytest.mark.parametrize(
    "spec",
    [
        # AWS's own step example [UG-STEP in tests/test_policy.py]: both thresholds at 50, a 0
        # step within 10 of each, so one adds from 60 and the other removes from 40.
        "scaleOut: {threshold: 50, steps: [{metricIntervalLowerBound: 0, "
        "metricIntervalUpperBound: 10, scalingAdjustment: 0}, {metricIntervalLowerBound: 10, "
        "scalingAdjustment: 1}]}\nscaleIn: {threshold: 50, steps: [{metricIntervalLowerBound: "
        "-10, metricIntervalUpperBound: 0, scalingAdjustment: 0}, {metricIntervalUpperBound: "
        "-10, scalingAdjustment: -1}]}",
        # The same metric with another statistic is another series.
        f"{OUT_10}\n"
        + policies(
            "{name: drain, metric: backlog_per_task, statistic: Maximum, " + IN_AT.format(12) + "}"
        ),
        # A target tracking policy that never scales in overlaps nothing.
        f"{OUT_10}\n"
        + policies(
            "{name: t, metric: backlog_per_task, targetTracking: {targetValue: 50, "
            "disableScaleIn: true}}"
        ),
        # Only policies of its own: the pool's top-level metric and rules are optional.
        policies("{name: t, metric: queue_depth, targetTracking: {targetValue: 5}}"),
    ],
    ids=["aws-zero-steps-at-one-threshold", "other-statistic", "no-scale-in", "policies-only"],
)
def test_set_ups_that_cannot_flap_are_accepted(spec: str) -> None:
    config = parse_config(documents(controller(), pool(spec, policies=False)), "scaler.yaml")
    assert config.pools[0].spec.scaling_policies


def test_several_policies_keep_their_order_and_the_pools_own_comes_first() -> None:
    spec = pool(
        "metric: queue_depth\n"
        + policies(
            "{name: latency, metric: queue_latency_seconds, window: 1m, statistic: Maximum, "
            "targetTracking: {targetValue: 30, scaleInCooldown: 10m, disableScaleIn: false}}",
        )
    )
    (parsed,) = parse_config(documents(controller(), spec), "scaler.yaml").pools
    own, latency = parsed.spec.scaling_policies
    assert (own.name, own.metric, own.scale_out is not None) == (
        "default",
        Metric.QUEUE_DEPTH,
        True,
    )
    assert (latency.name, latency.metric, latency.window) == (
        "latency",
        Metric.QUEUE_LATENCY_SECONDS,
        60.0,
    )
    assert latency.target_tracking is not None
    assert (latency.scale_out_cooldown, latency.scale_in_cooldown) == (300.0, 600.0)
    assert (latency.scales_out, latency.scales_in) == (True, True)


def test_a_policys_metric_must_be_one_the_broker_gives() -> None:
    text = documents(
        controller("broker: sqs://"),
        pool(
            policies(
                "{name: lat, metric: queue_latency_seconds, targetTracking: {targetValue: 30}}"
            )
        ),
    )
    assert config_error(text) == (
        "scaler.yaml: document 2 (WorkerPool/default): spec.policies.0.metric: "
        "queue_latency_seconds is read from message stamps on Redis only; the sqs broker "
        "cannot give it"
    )
