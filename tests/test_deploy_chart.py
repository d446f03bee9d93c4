"""The Helm chart, rendered and linted by Helm's own engine (its Go SDK, helm-python-sdk),
its manifests checked against Kubernetes' schemas; its configuration by the real CLI in
tests/integration/test_deploy_chart.py."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.generated import CHART, VALUES_SCHEMA, text, values_schema
from tests.helpers import CI_VALUES, configuration, option, render

KUBERNETES = "1.30.0"


def notes(chart: helm.Chart, values: dict[str, Any] | None = None) -> str:
    rendered = chart.render(values, name="cs", namespace="ops")
    return next(text for name, text in rendered.items() if name.endswith("NOTES.txt"))


def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pod = manifests["Deployment/cs-celery-scaler"]["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return dict(only)


@pytest.mark.parametrize("values", [None, CI_VALUES], ids=["defaults", "ci"])
def test_lints_clean(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version=KUBERNETES)
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; the one info left asks for an icon.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [None, CI_VALUES], ids=["defaults", "ci"])
def test_manifests_match_the_kubernetes_schemas(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    manifests = render(chart, values)
    for manifest in manifests.values():
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked below
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    expected = {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}
    assert {name.partition("/")[0] for name in manifests} >= expected


def test_leader_election_follows_the_replicas(chart: helm.Chart) -> None:
    for replicas, enabled, strategy in [(1, False, "Recreate"), (3, True, "RollingUpdate")]:
        manifests = render(chart, {"replicaCount": replicas})
        controller = next(yaml.safe_load_all(configuration(manifests)))
        assert controller["spec"]["leaderElection"]["enabled"] is enabled
        deployment = manifests["Deployment/cs-celery-scaler"]["spec"]
        assert deployment["replicas"] == replicas
        assert deployment["strategy"]["type"] == strategy
    with pytest.raises(helm.HelmValuesError, match="enabled"):
        chart.render({"controller": {"leaderElection": {"enabled": True}}}, name="cs")


def test_each_replica_names_itself_from_its_pod(chart: helm.Chart) -> None:
    env = {item["name"]: item for item in container(render(chart))["env"]}
    replica = env["CELERY_SCALER_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert replica == "metadata.name"
    assert "CELERY_SCALER_BROKER_URL" not in env
    secret = container(render(chart, CI_VALUES))["env"][1]
    assert secret["name"] == "CELERY_SCALER_BROKER_URL"
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "celery-broker", "key": "url"}


def test_stdout_carries_json_lines_not_tables(chart: helm.Chart) -> None:
    for values in (None, CI_VALUES):
        args = container(render(chart, values))["args"]
        assert args[0] == "reconcile"
        assert option(args, "--output") == "json"
    assert option(container(render(chart))["args"], "--log-format") == "json"


def test_runs_locked_down(chart: helm.Chart) -> None:
    manifests = render(chart)
    pod = manifests["Deployment/cs-celery-scaler"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = container(manifests)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == "cs-celery-scaler"
    assert manifests["ServiceAccount/cs-celery-scaler"]["automountServiceAccountToken"] is False
    assert container(manifests)["resources"]["limits"]["memory"]


def test_probes_service_and_service_monitor_share_the_metrics_port(chart: helm.Chart) -> None:
    manifests = render(chart, CI_VALUES)
    controller = next(yaml.safe_load_all(configuration(manifests)))
    port = controller["spec"]["prometheus"]["port"]
    assert controller["spec"]["prometheus"]["enabled"] is True
    main = container(manifests)
    assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = manifests["Service/cs-celery-scaler"]["spec"]
    assert service["ports"][0]["port"] == port
    assert service["ports"][0]["targetPort"] == "http"
    monitor = manifests["ServiceMonitor/cs-celery-scaler"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == service["selector"]
    assert "ServiceMonitor/cs-celery-scaler" not in render(chart)


def test_iam_role_for_the_service_account(chart: helm.Chart) -> None:
    account = render(chart, CI_VALUES)["ServiceAccount/cs-celery-scaler"]
    role = "arn:aws:iam::123456789012:role/celery-scaler"
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    assert "annotations" not in render(chart)["ServiceAccount/cs-celery-scaler"]["metadata"]
    assert role in notes(chart, CI_VALUES)
    assert "serviceAccount.roleArn is empty" in notes(chart)


def test_disruption_budget_never_blocks_a_drain_on_an_unready_replica(chart: helm.Chart) -> None:
    budget = render(chart)["PodDisruptionBudget/cs-celery-scaler"]["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "PodDisruptionBudget/cs-celery-scaler" not in render(
        chart, {"podDisruptionBudget": {"enabled": False}}
    )


def test_a_configuration_change_rolls_the_pods(chart: helm.Chart) -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        deployment = render(chart, values)["Deployment/cs-celery-scaler"]
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(None) != checksum({"controller": {"interval": "30s"}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pools": {"Bad_Name": {"ecs": {"cluster": "a", "service": "b"}}}}, "Bad_Name"),
        ({"pools": {"default": {"metric": "cpu"}}}, "metric"),
        ({"controller": {"interval": "soon"}}, "interval"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"brokerUrl": "redis://x"}, "brokerUrl"),
    ],
)
def test_the_schema_refuses_bad_values(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        chart.render(values, name="cs")


def test_the_values_schema_is_the_configuration_schema() -> None:
    # Regenerate with `python -m tests.generated` after changing the configuration model.
    assert VALUES_SCHEMA.read_text() == text(values_schema())
