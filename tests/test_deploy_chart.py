"""The Helm chart, rendered and linted by Helm's own engine (its Go SDK, helm-python-sdk),
its manifests checked against Kubernetes' schemas; its configuration by the real CLI in
tests/integration/test_deploy_chart.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from celery_scaler.core.config import PrometheusSpec
from tests.generated import (
    CHART,
    CHART_README,
    DASHBOARD,
    VALUES_SCHEMA,
    chart_readme,
    text,
    values_schema,
)
from tests.helpers import CI_VALUES, RULES, configuration, healthcheck, option, render

if TYPE_CHECKING:
    from dockerfile_parse import DockerfileParser

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


def test_the_prometheus_rule_is_the_rule_file(chart: helm.Chart) -> None:
    rule = render(chart, CI_VALUES)["PrometheusRule/cs-celery-scaler"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"  # the ruleSelector's
    # Read, not rendered: the rules' own {{ $labels.pool }} templates reach Prometheus.
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert "PrometheusRule/cs-celery-scaler" not in render(chart)


def test_the_dashboard_configmap_is_for_grafanas_sidecar(chart: helm.Chart) -> None:
    config_map = render(chart, CI_VALUES)["ConfigMap/cs-celery-scaler-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Celery"}
    assert config_map["metadata"]["namespace"] == "monitoring"
    ((key, content),) = config_map["data"].items()
    assert key.endswith(".json")  # the sidecar takes .json keys
    assert json.loads(content) == json.loads(DASHBOARD.read_text())
    assert "ConfigMap/cs-celery-scaler-dashboard" not in render(chart)
    default = render(chart, {"grafanaDashboard": {"enabled": True}})
    assert default["ConfigMap/cs-celery-scaler-dashboard"]["metadata"]["namespace"] == "ops"


def test_helm_test_asks_the_services_healthz_as_the_image_healthcheck_does(
    chart: helm.Chart, dockerfile: DockerfileParser
) -> None:
    manifests = render(chart, CI_VALUES)
    pod = manifests["Pod/cs-celery-scaler-test-healthz"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (test,) = pod["spec"]["containers"]
    assert test["image"] == container(manifests)["image"]
    port = manifests["Service/cs-celery-scaler"]["spec"]["ports"][0]["port"]
    local = f"127.0.0.1:{PrometheusSpec().port}"
    assert test["command"] == [
        "python",
        "-c",
        healthcheck(dockerfile).replace(local, f"cs-celery-scaler:{port}"),
    ]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert test["securityContext"]["readOnlyRootFilesystem"] is True
    # Not one of the controller's pods for the Service or the disruption budget.
    selector = manifests["Service/cs-celery-scaler"]["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()


def test_the_image_by_digest(chart: helm.Chart) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    manifests = render(chart, {"image": {"tag": "0.1.0", "digest": digest}})
    image = f"ghcr.io/celery-scaler/celery-scaler@{digest}"
    assert container(manifests)["image"] == image
    test = manifests["Pod/cs-celery-scaler-test-healthz"]["spec"]["containers"][0]
    assert test["image"] == image
    assert container(render(chart))["image"] == "ghcr.io/celery-scaler/celery-scaler:0.1.0"
    with pytest.raises(helm.HelmValuesError, match="digest"):
        chart.render({"image": {"digest": "latest"}}, name="cs")


def test_no_kubernetes_api_token_yet_iam_roles_for_service_accounts_work(
    chart: helm.Chart,
) -> None:
    pod = render(chart, CI_VALUES)["Deployment/cs-celery-scaler"]["spec"]["template"]["spec"]
    # Off on the pod as well: a service account the chart does not create may automount.
    assert pod["automountServiceAccountToken"] is False
    # IRSA's web identity token is the pod identity webhook's own projected volume, which
    # it adds whatever automountServiceAccountToken says; the chart mounts no token itself.
    assert all("projected" not in volume for volume in pod["volumes"])
    account = render(chart, {"serviceAccount": {"create": False, "name": "theirs"}})
    assert "ServiceAccount/theirs" not in account
    spec = account["Deployment/cs-celery-scaler"]["spec"]["template"]["spec"]
    assert (spec["serviceAccountName"], spec["automountServiceAccountToken"]) == ("theirs", False)


def test_the_chart_readme_lists_every_value() -> None:
    # Regenerate with `python -m tests.generated` after changing values.yaml or the schema.
    assert CHART_README.read_text() == chart_readme()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key in values:
        assert f"| `{key}" in CHART_README.read_text(), key


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
