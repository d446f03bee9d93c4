"""The alert rules and the Grafana dashboard the chart ships (files/), held to what the
controller serves: every series they read is one it exports, every expression parses
(promql-parser, Prometheus' grammar), the rule file has the shape of a PrometheusRule's
spec. The chart's rendering of them: tests/test_deploy_chart.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.generated import DASHBOARD, dashboard, text
from tests.helpers import RULES, exported_series, promql_series

# The names people route, silence and link runbooks by: a rename breaks their setup.
ALERTS = {
    "CeleryScalerDown",
    "CeleryScalerPoolStalled",
    "CeleryScalerReconcileErrors",
    "CeleryScalerFallbackActive",
    "CeleryScalerNotKeepingUp",
    "CeleryScalerCapacityExhausted",
    "CeleryScalerWorkersUnreachable",
}
# monitoring.coreos.com/v1 PrometheusRule: a rule's fields, and its Duration pattern.
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
LABEL_REFERENCE = re.compile(r"\$labels\.(\w+)")


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def test_the_rule_file_is_a_prometheus_rule_spec() -> None:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    assert all(isinstance(name, str) for name in names)
    for rule in rules():
        assert set(rule) <= RULE_FIELDS, rule
        assert ("alert" in rule) != ("record" in rule), rule
        assert isinstance(rule["expr"], str)
        assert DURATION.match(rule.get("for", "0")), rule["for"]
        for field in ("labels", "annotations"):
            assert all(isinstance(v, str) for v in rule.get(field, {}).values()), rule
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description"} <= set(rule["annotations"])


def test_the_alerts_keep_their_names() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) == ALERTS


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule["alert"]))
def test_each_rule_parses_and_reads_only_exported_series(rule: dict[str, Any]) -> None:
    read = promql_series(rule["expr"])
    assert read, "reads no series"
    assert read <= exported_series(), read - exported_series()
    # An annotation can only name a label the alert's series carry.
    for annotation in rule["annotations"].values():
        for label in LABEL_REFERENCE.findall(annotation):
            assert label in rule["expr"], f"{label} is not a label of {rule['expr']}"


def test_a_misspelt_series_or_a_broken_expression_would_be_caught() -> None:
    assert "celery_scaler_queue_dept" not in exported_series()
    assert "celery_scaler_reconcile_total" in exported_series()
    assert "celery_scaler_reconcile_duration_seconds_bucket" in exported_series()
    with pytest.raises(ValueError, match="parenthesis"):
        promql_series("sum by (pool (celery_scaler_queue_depth)")


def test_the_dashboard_is_the_generated_one() -> None:
    # Regenerate with `python -m tests.generated` after changing tests/generated.py.
    assert DASHBOARD.read_text() == text(dashboard())


def test_every_dashboard_query_parses_and_reads_exported_series() -> None:
    document = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    pools = re.fullmatch(r"label_values\((\w+), pool\)", variables["pool"]["definition"])
    assert pools
    assert pools.group(1) in exported_series()
    panels = document["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    read: set[str] = set()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        references = [target["refId"] for target in panel["targets"]]
        assert len(references) == len(set(references)), panel["title"]
        for target in panel["targets"]:
            series = promql_series(target["expr"])
            assert series <= exported_series(), (panel["title"], series - exported_series())
            read |= series
    # What the dashboard is for: depth, latency, desired vs running, actions, errors.
    assert {
        "celery_scaler_queue_depth",
        "celery_scaler_queue_latency_seconds",
        "celery_scaler_desired_capacity",
        "celery_scaler_ecs_running_tasks",
        "celery_scaler_scale_events_total",
        "celery_scaler_reconcile_total",
    } <= read
