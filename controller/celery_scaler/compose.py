"""The composition root: the one place that builds clients and wires adapters together."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any

import boto3

from celery_scaler.adapters.autoscaling import ScalableTargets, ScalingSuspension
from celery_scaler.adapters.aws import AWS_ERRORS, client_config, describe_aws_error
from celery_scaler.adapters.broker import KombuQueueDepth, SqsQueueDepth
from celery_scaler.adapters.celery_inspect import inspector_for
from celery_scaler.adapters.ecs import EcsService, EcsTaskProtection
from celery_scaler.adapters.leases import DynamoLeases
from celery_scaler.adapters.permissions import Tool
from celery_scaler.adapters.retries import RetryPolicy
from celery_scaler.analysis.history import CloudWatchHistory
from celery_scaler.core.config import Config, WorkerPool
from celery_scaler.core.ports import ConsumerControl, QueueDepthSource, WorkerInspector
from celery_scaler.engine.reconcile import Reconciler
from celery_scaler.iam import Grant
from celery_scaler.telemetry.cloudwatch import CloudWatchMetrics

REPLICA_ENV = "CELERY_SCALER_REPLICA_ID"
"""Names this replica in the lease table (a pod name, an ECS task id); else host-pid-random."""

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from celery_scaler.alarms.aws import AutoScalingFallback, CloudWatchAlarms
    from celery_scaler.telemetry.publisher import Telemetry


def aws_adapters(config: Config, tools: Iterable[Tool] = ()) -> list[Grant]:
    """The AWS adapters `reconcile` and `status` use for `config`, and the tools' ones.

    The one table of what a configuration wires: `build` and `build_telemetry` build
    from it and `iam-policy` grants what its adapters declare, so the two cannot drift.
    """
    controller = config.controller
    # ScalableTargets: every pass looks for other autoscalers on the pools' services.
    found: list[Grant] = [Grant(EcsService, config.pools), Grant(ScalableTargets, config.pools)]
    protected = tuple(pool for pool in config.pools if controller.guards_tasks(pool.spec))
    if protected:
        found.append(Grant(EcsTaskProtection, protected))
    if controller.broker_kind == "sqs":
        found.append(Grant(SqsQueueDepth, config.pools))
    if controller.leader_election.enabled:
        found.append(Grant(DynamoLeases, config.pools))
    if controller.cloudwatch.enabled and controller.cloudwatch.mode == "api":
        found.append(Grant(CloudWatchMetrics, config.pools))
    if Tool.REPORT in set(tools):
        found.append(Grant(CloudWatchHistory, config.pools))
    if Tool.ALARMS in set(tools):
        from celery_scaler.alarms.aws import AutoScalingFallback, CloudWatchAlarms

        found += [Grant(CloudWatchAlarms, config.pools), Grant(AutoScalingFallback, config.pools)]
    if Tool.TAKEOVER in set(tools):
        found.append(Grant(ScalingSuspension, config.pools))
    return found


def uses(config: Config, adapter: type) -> bool:
    """Whether `config` wires `adapter` (see `aws_adapters`)."""
    return any(grant.adapter is adapter for grant in aws_adapters(config))


def aws_client(
    config: Config,
    service: str,
    session: boto3.Session | None = None,
    *,
    in_pass: bool = False,
    validate: bool = True,
) -> Any:
    """A boto3 client with the controller's retry and timeout settings.

    `in_pass`: the client serves the reconcile pass, so its timeouts fit the pass deadline;
    otherwise (a command a person runs) the SDK's patience is the person's. `validate`:
    botocore checks every request's parameters against the API's shapes before sending.
    Raises AdapterError when the AWS SDK cannot be set up (no region, say).
    """
    session = session or boto3.Session(region_name=config.controller.region)
    deadline = config.controller.pass_deadline if in_pass else None
    try:
        return session.client(  # type: ignore[call-overload]
            service, config=client_config(deadline, validate=validate)
        )
    except AWS_ERRORS as exc:
        raise describe_aws_error("AWS SDK setup", exc) from None


def broker_retries(config: Config) -> RetryPolicy:
    """How the pass retries the broker (its reads, the management API, inspect's connection).

    Retries start only in the first half of the pass deadline: the other half is the
    last attempt's, whose connecting is bounded (2 s for the queue reader, the inspect
    timeout for inspect, which also keeps to its round's own deadline).
    """
    return RetryPolicy(budget=config.controller.pass_deadline / 2)


def build_ecs(config: Config, *, session: boto3.Session | None = None) -> EcsService:
    """The ECS adapter alone (for `status`); raises AdapterError like `build`."""
    return EcsService(aws_client(config, "ecs", session))


def build_history(config: Config, *, session: boto3.Session | None = None) -> CloudWatchHistory:
    """The CloudWatch history reader (for `report`); raises AdapterError like `build`."""
    return CloudWatchHistory(aws_client(config, "cloudwatch", session))


def build_alarm_stores(
    config: Config, *, session: boto3.Session | None = None
) -> tuple[CloudWatchAlarms, AutoScalingFallback]:
    """The adapters of `alarms plan|apply`; raises AdapterError like `build`."""
    from celery_scaler.alarms.aws import AutoScalingFallback, CloudWatchAlarms

    session = session or boto3.Session(region_name=config.controller.region)
    alarms = CloudWatchAlarms(aws_client(config, "cloudwatch", session))
    autoscaling = aws_client(config, "application-autoscaling", session)
    return alarms, AutoScalingFallback(autoscaling, build_ecs(config, session=session))


def build_takeover(
    config: Config, *, session: boto3.Session | None = None
) -> tuple[ScalingSuspension, EcsService]:
    """The adapters of `takeover`; raises AdapterError like `build`."""
    session = session or boto3.Session(region_name=config.controller.region)
    autoscaling = aws_client(config, "application-autoscaling", session)
    return ScalingSuspension(autoscaling), build_ecs(config, session=session)


def build(config: Config, *, session: boto3.Session | None = None) -> Reconciler:
    """A Reconciler for `config`; nothing connects until the first pass.

    Raises AdapterError when the AWS SDK cannot be set up (no region, say).
    """
    controller = config.controller
    session = session or boto3.Session(region_name=controller.region)
    broker: QueueDepthSource
    inspector: WorkerInspector | None
    consumers: ConsumerControl | None = None
    if uses(config, SqsQueueDepth):
        sqs: SQSClient = aws_client(config, "sqs", session, in_pass=True)
        broker = SqsQueueDepth(sqs, queue_name_prefix=controller.sqs_queue_name_prefix)
        inspector = None
    else:
        broker = KombuQueueDepth(
            controller.broker,
            transport_options=controller.broker_transport_options,
            management_url=controller.rabbitmq_management_url,
            retry=broker_retries(config),
        )
        celery = inspector_for(
            controller.broker,
            controller.inspect_timeout,
            control_exchange=controller.control_exchange,
            transport_options=controller.broker_transport_options,
            retry=broker_retries(config),
            # A round asks only what these need beyond every pass's own reads.
            metrics={
                policy.metric.value
                for pool in config.pools
                for policy in pool.spec.scaling_policies
            },
        )
        inspector = celery
        if any(controller.drains(pool.spec) for pool in config.pools):
            # The inspector itself: its rounds take turns, and a worker it tells to stop or
            # resume consuming is asked for its queues again by the next inspect round
            # (membership is otherwise kept for a minute).
            consumers = celery
    ecs = aws_client(config, "ecs", session, in_pass=True)
    return Reconciler(
        config=config,
        broker=broker,
        ecs=EcsService(ecs),
        inspector=inspector,
        election=build_leases(config, session=session) if uses(config, DynamoLeases) else None,
        protector=EcsTaskProtection(ecs) if uses(config, EcsTaskProtection) else None,
        consumers=consumers,
        scaling=ScalableTargets(
            aws_client(config, "application-autoscaling", session, in_pass=True)
        ),
    )


def build_leases(config: Config, *, session: boto3.Session | None = None) -> DynamoLeases:
    """The DynamoDB lease table this replica shares with the others."""
    election = config.controller.leader_election
    client: DynamoDBClient = aws_client(config, "dynamodb", session, in_pass=True)
    return DynamoLeases(
        client, election.table, replica_id(), election.lease_duration, clock=time.time
    )


def replica_id() -> str:
    """This replica's name in the lease table: the pod or task name when one is given."""
    given = os.environ.get(REPLICA_ENV)
    return given or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_telemetry(
    config: Config,
    pools: Sequence[WorkerPool],
    *,
    continuous: bool,
    stdout: IO[str] | None = None,
    session: boto3.Session | None = None,
) -> Telemetry:
    """The reporter that publishes each pass over `pools`; nothing runs until it starts.

    The Prometheus server and the task-event receiver exist in continuous mode only:
    a single pass has no scrapes to answer and no previous pass to count events since.
    Raises AdapterError when the AWS SDK cannot be set up or the port is taken.
    """
    # Imported here: only `reconcile` needs them, and they load the Prometheus client.
    from celery_scaler.telemetry.cloudwatch import (
        CloudWatchMetrics,
        EmbeddedMetricsWriter,
        MetricsSink,
    )
    from celery_scaler.telemetry.prometheus import ControllerMetrics, TelemetryServer
    from celery_scaler.telemetry.publisher import Telemetry
    from celery_scaler.telemetry.task_events import event_counter_for

    controller = config.controller
    cloudwatch = controller.cloudwatch
    resolution = 1 if cloudwatch.high_resolution and controller.interval < 60 else 60
    sink: MetricsSink | None = None
    if cloudwatch.enabled and cloudwatch.mode == "emf":
        sink = EmbeddedMetricsWriter(
            stdout or sys.stdout, cloudwatch.namespace, storage_resolution=resolution
        )
    elif uses(config, CloudWatchMetrics):
        # Not validated by botocore: metric_datum builds every sample to the API's shape,
        # and checking ~16 samples a pool again was a sixth of a steady pass's CPU at 500
        # pools; CloudWatch still refuses what it would not take.
        client = aws_client(config, "cloudwatch", session, in_pass=True, validate=False)
        sink = CloudWatchMetrics(client, cloudwatch.namespace, storage_resolution=resolution)

    names = [pool.name for pool in pools]
    telemetry = Telemetry(
        pools=names,
        fleet=set(names) == {pool.name for pool in config.pools},
        per_worker=cloudwatch.per_worker_metrics,
        sink=sink,
    )
    if continuous and controller.prometheus.enabled:
        specs = {pool.name: pool.spec for pool in pools}
        telemetry.prometheus = ControllerMetrics(names, controller.interval, specs=specs)
        telemetry.server = TelemetryServer(telemetry.prometheus, controller.prometheus.port)
    if continuous and controller.broker_kind != "sqs":
        telemetry.events = event_counter_for(controller.broker, controller.broker_transport_options)
    return telemetry
