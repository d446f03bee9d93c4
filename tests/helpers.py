"""Helpers more than one test module uses, so that no test module imports another.

Real Celery worker processes and `wait_for` are in tests/workers.py, the fakes of the ports
in tests/fakes.py, the files generated from the code in tests/generated.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import hcl2
import promql_parser
import yaml
from hcl2.utils import SerializationOptions
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from celery_scaler.analysis.replay import History, Series
from celery_scaler.core.config import Config, WorkerPool, WorkerPoolSpec, parse_config
from celery_scaler.core.metrics import compute_metrics
from celery_scaler.core.model import (
    BrokerObservation,
    Observation,
    ServiceObservation,
    WorkerSnapshot,
)
from celery_scaler.engine.reconcile import PassReport, PoolResult
from celery_scaler.telemetry.prometheus import ControllerMetrics
from tests.generated import CHART, ROOT

if TYPE_CHECKING:
    import helm_python as helm
    from dockerfile_parse import DockerfileParser

    from celery_scaler.local.aws_api import LocalAws

# --- the `celery-scaler` console script, run as a user runs it ----------------------------

SCRIPT = str(Path(sys.executable).parent / "celery-scaler")


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def pool_config(
    broker: str, cluster: str, queue: str, control_exchange: str = "celery", **spec: object
) -> str:
    pool = {
        "ecs": {"cluster": cluster, "service": "workers"},
        "queues": [queue],
        "minCapacity": 1,
        "maxCapacity": 10,
        "metric": "queue_depth",
        "scaleOut": {
            "threshold": 5,
            "steps": [
                {
                    "metricIntervalLowerBound": 0,
                    "metricIntervalUpperBound": 10,
                    "scalingAdjustment": 1,
                },
                {"metricIntervalLowerBound": 10, "scalingAdjustment": 3},
            ],
        },
        "scaleIn": {
            "threshold": 0,
            "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
        },
        **spec,
    }
    controller = {
        "broker": broker,
        "interval": "1s",
        "inspectTimeout": "0.5s",
        "controlExchange": control_exchange,
    }
    docs = [
        {"apiVersion": "celery-scaler/v1", "kind": "Controller", "spec": controller},
        {
            "apiVersion": "celery-scaler/v1",
            "kind": "WorkerPool",
            "metadata": {"name": "p"},
            "spec": pool,
        },
    ]
    return yaml.safe_dump_all(docs)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "celery-scaler.yaml"
    path.write_text(text)
    return path


def option(args: Sequence[str], name: str) -> str | None:
    """The value given to `name` in a command line (`--output json`), else None."""
    return args[args.index(name) + 1] if name in args[:-1] else None


def only_json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of `stdout` as a JSON object: a table line (or any other text) fails."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(line, dict) for line in lines), stdout
    return lines


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def publish(broker: str, queue: str, count: int) -> None:
    from celery import Celery

    app = Celery(broker=broker)
    for _ in range(count):
        app.send_task("tests.noop", queue=queue)
    app.close()


def desired_count(aws: LocalAws, cluster: str) -> int:
    service = aws.client("ecs").describe_services(cluster=cluster, services=["workers"])
    return int(service["services"][0]["desiredCount"])


# --- a pool and its recorded history: the replay, the simulator, alarms, charts -----------

T0 = 1_699_999_980.0  # 2023-11-14T22:13:00Z, a whole minute


# DESIGN.md's example pool: out at a backlog of 10 (+1, +2 from 20), in at 2 (-1).
DESIGN_SPEC: dict[str, Any] = {
    "ecs": {"cluster": "prod", "service": "celery-worker"},
    "minCapacity": 1,
    "maxCapacity": 20,
    "scaleOut": {
        "threshold": 10,
        "cooldown": "60s",
        "steps": [
            {"metricIntervalLowerBound": 0, "metricIntervalUpperBound": 10, "scalingAdjustment": 1},
            {"metricIntervalLowerBound": 10, "scalingAdjustment": 2},
        ],
    },
    "scaleIn": {
        "threshold": 2,
        "cooldown": "300s",
        "steps": [{"metricIntervalUpperBound": 0, "scalingAdjustment": -1}],
    },
}


def design_pool(**changes: Any) -> WorkerPool:
    spec = WorkerPoolSpec.model_validate({**DESIGN_SPEC, **changes})
    return WorkerPool(name="default", spec=spec)


def history(
    values: list[float | None], period: int = 15, real: list[float] | None = None
) -> History:
    points = tuple(
        (T0 + index * period, value) for index, value in enumerate(values) if value is not None
    )
    return History(
        start=T0,
        end=T0 + len(values) * period,
        period=period,
        metric=Series(points),
        real=Series(tuple((T0 + i * period, v) for i, v in enumerate(real))) if real else None,
        real_source="CeleryMetrics current_capacity" if real else None,
    )


# --- what one pass saw and reported: telemetry samples, Prometheus, reporters -------------


def worker(
    name: str,
    *,
    queues: Sequence[str] = ("q",),
    active: int = 0,
    processed: int = 0,
    uptime: float | None = 3600.0,
    rss_kb: int | None = None,
    concurrency: int = 1,
) -> WorkerSnapshot:
    return WorkerSnapshot(
        name=name,
        queues=frozenset(queues),
        active=active,
        reserved=0,
        scheduled=0,
        revoked=0,
        concurrency=concurrency,
        max_rss_kb=rss_kb,
        processed_total=processed,
        uptime_seconds=uptime,
    )


def observation(
    workers: Sequence[WorkerSnapshot] | None,
    depth: Mapping[str, int] | None = None,
    desired: int = 2,
) -> Observation:
    per_queue = dict(depth or {"q": 0})
    return Observation(
        broker=BrokerObservation(queue_depth=sum(per_queue.values()), per_queue=per_queue),
        workers=tuple(workers) if workers is not None else None,
        service=ServiceObservation(desired=desired, running=desired, pending=0, deploying=False),
    )


def report(now: float, observations: Mapping[str, Observation], desired: int = 2) -> PassReport:
    results = tuple(
        PoolResult(
            pool=pool,
            cluster="c",
            service=pool,
            metric="queue_depth",
            value=obs.broker.queue_depth if obs.broker else None,
            current=obs.service.desired if obs.service else None,
            desired=desired,
            action="hold",
            applied=False,
            dry_run=False,
            reason="held",
            observed=compute_metrics(obs),
            error=None if obs.workers is not None else "inspect failed",
        )
        for pool, obs in observations.items()
    )
    return PassReport(time=now, duration_seconds=0.1, results=results, observations=observations)


# --- the Embedded Metric Format -----------------------------------------------------------

# The units a MetricDefinition may name (CloudWatch's StandardUnit values).
CLOUDWATCH_UNITS = {
    *("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes"),
    *("Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits"),
    *("Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second"),
    *("Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second"),
    *("Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"),
}


def assert_emf(document: dict[str, Any]) -> None:
    """The rules of AWS's "Specification: Embedded metric format", one by one."""
    meta = document["_aws"]
    assert set(meta) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(meta["Timestamp"], int)  # milliseconds since the epoch
    assert 1_500_000_000_000 < meta["Timestamp"] < 5_000_000_000_000
    assert meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 1024
        assert len(directive["Dimensions"]) >= 1
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30  # a DimensionSet MAY be empty
            for key in dimension_set:
                # A dimension target: a string member of the root, at most 1024 characters.
                assert isinstance(document[key], str)
                assert len(document[key]) <= 1024
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert definition["Unit"] in CLOUDWATCH_UNITS
            assert definition["StorageResolution"] in (1, 60)
            # A metric target: a numeric member of the root, not nested.
            value = document[definition["Name"]]
            assert isinstance(value, int | float)
            assert not isinstance(value, bool)
    json.dumps(document, allow_nan=False)  # valid JSON: no NaN or Infinity


# --- a broker connection the test can cut -------------------------------------------------


class TcpProxy:
    """A loopback TCP forwarder whose connections the test can cut, like a broker restart."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0
        self.refused = 0
        """Connections closed as soon as they were accepted (see `refuse`)."""
        self._to_refuse = 0
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        self.cut()

    def refuse(self, count: int) -> None:
        """Close the next `count` connections at once, as a broker going down or starting up
        does: each costs the client one failed connection attempt."""
        self._to_refuse = count

    def cut(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def url(self, broker_url: str) -> str:
        parts = urlsplit(broker_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host)
        )

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._to_refuse > 0:
                self._to_refuse -= 1
                self.refused += 1
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            self.accepted += 1
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


# --- an AWS endpoint that fails the requests a test picks ---------------------------------

HELD_AT_MOST = 60.0
"""How long `AwsProxy` holds a request it does not answer, so no test thread hangs forever."""


@dataclass(frozen=True)
class AwsError:
    """An error as a JSON-protocol AWS API (ECS, DynamoDB, SQS) answers it."""

    code: str
    message: str
    status: int = 400


THROTTLED = AwsError("ThrottlingException", "Rate exceeded")

Answer = Callable[[str, str], AwsError | Literal["hold"] | None]
"""(operation, request body) → None: forward; "hold": never answer; an AwsError: answer it."""


class AwsProxy(ThreadingHTTPServer):
    """The local AWS API behind a proxy whose `answer` fails the requests a test picks.

    A held request is not answered until the proxy closes (a blackholed endpoint). Every
    request is kept in `requests` as (operation, body), answered or not: moto's recorder
    sees only those forwarded to it. Point the AWS SDK at `url` (AWS_ENDPOINT_URL).
    """

    daemon_threads = True

    def __init__(self, upstream: str, answer: Answer) -> None:
        self.upstream = urlsplit(upstream)
        self.answer = answer
        self.requests: list[tuple[str, str]] = []
        self.held = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _AwsProxyHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, operation: str, marker: str = "") -> int:
        """Requests made for `operation` (e.g. `TagResource`) whose body holds `marker`."""
        with self._lock:
            return sum(1 for op, body in self.requests if op == operation and marker in body)

    def record(self, operation: str, body: str) -> None:
        with self._lock:
            self.requests.append((operation, body))

    def __enter__(self) -> AwsProxy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class _AwsProxyHandler(BaseHTTPRequestHandler):
    server: AwsProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        text = body.decode("utf-8", "replace")
        # JSON-protocol APIs name the operation in this header: `<service prefix>.<operation>`.
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        self.server.record(operation, text)
        answer = self.server.answer(operation, text)
        if answer == "hold":
            self.server.held += 1
            self.server.released.wait(HELD_AT_MOST)
            self.close_connection = True
        elif isinstance(answer, AwsError):
            error = json.dumps({"__type": answer.code, "message": answer.message}).encode()
            self._reply(answer.status, [("Content-Type", "application/x-amz-json-1.1")], error)
        else:
            self._forward(body)

    def _forward(self, body: bytes) -> None:
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname or "127.0.0.1", self.server.upstream.port, timeout=30
        )
        upstream.request("POST", self.path, body, dict(self.headers.items()))
        answer = upstream.getresponse()
        payload = answer.read()
        upstream.close()
        headers = [
            (key, value)
            for key, value in answer.getheaders()
            if key.lower() not in {"transfer-encoding", "connection", "content-length"}
        ]
        self._reply(answer.status, headers, payload)

    def _reply(self, status: int, headers: Sequence[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


# --- the container image ------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
OCI_LABELS = ("title", "description", "version", "revision", "licenses", "base.name")


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Instructions per build stage, comments left out."""
    found: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if found and instruction["instruction"] != "COMMENT":
            found[-1].append(instruction)
    return found


def values(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def healthcheck(parser: DockerfileParser) -> str:
    """The HEALTHCHECK's command line, from its exec form."""
    _, final = stages(parser)
    command = values(final, "HEALTHCHECK")[0].partition("CMD")[2]
    program, flag, code = json.loads(command)
    assert (program, flag) == ("python", "-c")
    return str(code)


def pins() -> dict[str, str]:
    """The lock's pins that this interpreter installs: the lock is universal, and a pin's
    marker may keep it to other Pythons or platforms (`async-timeout ; python_full_version <
    '3.11.3'`)."""
    pinned = re.findall(
        r"^([A-Za-z0-9._-]+)==([^\s;\\]+)[ \t]*(?:;[ \t]*([^\\\n]*?))?[ \t]*\\?$",
        LOCK.read_text(),
        re.MULTILINE,
    )
    return {
        canonicalize_name(name): pinned_version
        for name, pinned_version, marker in pinned
        if not marker or Marker(marker).evaluate()
    }


# --- the two distributions: the controller (ROOT) and the instrumentation (INSTRUMENT) -----

INSTRUMENT = ROOT / "instrument"


def project_table(path: Path) -> dict[str, Any]:
    """The `[project]` table of the pyproject.toml in `path`."""
    table: dict[str, Any] = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    return table


def dependencies(path: Path) -> dict[str, Requirement]:
    """The runtime requirements of the project in `path`, by canonical name."""
    parsed = (Requirement(line) for line in project_table(path)["dependencies"])
    return {canonicalize_name(requirement.name): requirement for requirement in parsed}


def lowest(requirement: Requirement) -> Version:
    """The version a requirement's `>=` allows at the least."""
    (floor,) = (Version(s.version) for s in requirement.specifier if s.operator == ">=")
    return floor


# --- the ECS task definition --------------------------------------------------------------

TASK_DEFINITION = ROOT / "charts" / "ecs" / "task-definition.json"


def task_definition() -> dict[str, Any]:
    return dict(json.loads(TASK_DEFINITION.read_text()))


# --- the Terraform module, parsed (python-hcl2) -------------------------------------------

TERRAFORM = ROOT / "charts" / "terraform"


def terraform_file(path: Path) -> dict[str, Any]:
    """A .tf file as python-hcl2 reads it: strings unquoted, `${...}` kept around references."""
    plain = SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    with path.open() as handle:
        return dict(hcl2.load(handle, serialization_options=plain))


def terraform_blocks(parsed: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """`type.name` → body of each resource (or data source) in a parsed file."""
    return {
        f"{type_}.{name}": body
        for block in parsed.get(kind, [])
        for type_, named in block.items()
        for name, body in named.items()
    }


def terraform_module() -> dict[str, dict[str, Any]]:
    """charts/terraform's files (not the example), by file name."""
    return {path.name: terraform_file(path) for path in TERRAFORM.glob("*.tf")}


# --- the Helm chart, rendered -------------------------------------------------------------

CI_VALUES = yaml.safe_load((CHART / "ci" / "test-values.yaml").read_text())
RULES = CHART / "files" / "celery-scaler-rules.yaml"
"""The alert rules: a plain Prometheus rule file, and the chart's PrometheusRule spec."""


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """`kind/name` → manifest, as `helm template` would install them."""
    manifests: dict[str, dict[str, Any]] = {}
    for name, rendered in chart.render(values, name="cs", namespace="ops").items():
        if name.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(rendered):
            if document:
                manifests[f"{document['kind']}/{document['metadata']['name']}"] = document
    return manifests


def configuration(manifests: dict[str, dict[str, Any]]) -> str:
    return str(manifests["ConfigMap/cs-celery-scaler"]["data"]["celery-scaler.yaml"])


# --- configurations for the IAM policy ----------------------------------------------------

POOL = """
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata: {{name: {name}}}
spec:
  ecs: {{cluster: {cluster}, service: {service}}}
  queues: [{queues}]
  metric: queue_depth
  protectBusyTasks: {protect}
  drainScaleIn: {drain}
  scaleOut: {{threshold: 10, steps: [{{metricIntervalLowerBound: 0, scalingAdjustment: 1}}]}}
"""


def pool(
    name: str = "default",
    cluster: str = "prod",
    service: str = "celery-worker",
    queues: str = "celery",
    protect: bool = False,
    drain: bool | None = None,
) -> str:
    """A pool for the IAM policy; `drain` None leaves drainScaleIn at its default."""
    return POOL.format(
        name=name,
        cluster=cluster,
        service=service,
        queues=queues,
        protect=str(protect).lower(),
        drain="null" if drain is None else str(drain).lower(),
    )


def config(controller: str = "", *pools: str) -> Config:
    documents = [f"apiVersion: celery-scaler/v1\nkind: Controller\nspec: {{{controller}}}\n"]
    return parse_config("---\n".join(documents + list(pools or [pool()])), "test.yaml", env={})


# --- Prometheus: the series the controller serves, the series PromQL reads ----------------

GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def exported_series() -> frozenset[str]:
    """Every sample name the controller's /metrics can carry: a scrape of a registry that
    saw no pass (it serves every family before its first sample), each family's samples
    named as its type names them (a counter's `_total`, a histogram's `_bucket`...)."""
    text = generate_latest(ControllerMetrics(["p"], 15.0).registry).decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return frozenset(
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    )


def promql_series(expr: str) -> set[str]:
    """The metric names a PromQL expression reads, Grafana's interval variables filled in;
    ValueError when it does not parse."""
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            by_name = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            names.update([node.name] if node.name else by_name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# --- an existing AWS set-up, as Terraform writes it (config import, takeover) -------------

TERRAFORM_STEP_SETUP = """\
variable "cluster" {
  type = string
}

variable "service" {
  type    = string
  default = "celery-worker"
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster}/${var.service}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = 2
  max_capacity       = 30
}

resource "aws_appautoscaling_policy" "scale_out" {
  name               = "celery-worker-scale-out"
  policy_type        = "StepScaling"
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  service_namespace  = aws_appautoscaling_target.worker.service_namespace

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 60
    metric_aggregation_type = "Average"

    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = 20
      scaling_adjustment          = 1
    }

    step_adjustment {
      metric_interval_lower_bound = 20
      scaling_adjustment          = 3
    }
  }
}

resource "aws_appautoscaling_policy" "scale_in" {
  name               = "celery-worker-scale-in"
  policy_type        = "StepScaling"
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  service_namespace  = aws_appautoscaling_target.worker.service_namespace

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Average"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "busy" {
  alarm_name          = "celery-worker-busy"
  comparison_operator = "GreaterThanOrEqualToThreshold"
  evaluation_periods  = 2
  metric_name         = "active_tasks"
  namespace           = "CeleryMetrics"
  period              = 60
  statistic           = "Average"
  threshold           = 10
  alarm_actions       = [aws_appautoscaling_policy.scale_out.arn, aws_sns_topic.oncall.arn]
}

resource "aws_cloudwatch_metric_alarm" "idle" {
  alarm_name          = "celery-worker-idle"
  comparison_operator = "LessThanOrEqualToThreshold"
  evaluation_periods  = 2
  metric_name         = "active_tasks"
  namespace           = "CeleryMetrics"
  period              = 60
  statistic           = "Average"
  threshold           = 2
  alarm_actions       = [aws_appautoscaling_policy.scale_in.arn]
}
"""
"""The hand-wired set-up the controller replaces: a scalable target on the workers' service,
a step policy each way, and the CloudWatch alarms on the custom metric the application
published that trigger them (`alarm_actions` naming each policy's ARN); `terraform fmt`
leaves it as it is."""
