"""The composition root: the one place that builds clients and wires adapters together."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from .aws import AWS_ERRORS, CLIENT_CONFIG, describe_aws_error
from .broker import KombuQueueDepth, SqsQueueDepth
from .config import Config
from .ecs import EcsService
from .history import CloudWatchHistory
from .inspect import inspector_for
from .ports import QueueDepthSource, WorkerInspector
from .reconcile import Reconciler

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def build_ecs(config: Config, *, session: boto3.Session | None = None) -> EcsService:
    """The ECS adapter alone (for `status`); raises AdapterError like `build`."""
    session = session or boto3.Session(region_name=config.controller.region)
    try:
        return EcsService(session.client("ecs", config=CLIENT_CONFIG))
    except AWS_ERRORS as exc:
        raise describe_aws_error("AWS SDK setup", exc) from None


def build_history(config: Config, *, session: boto3.Session | None = None) -> CloudWatchHistory:
    """The CloudWatch history reader (for `report`); raises AdapterError like `build`."""
    session = session or boto3.Session(region_name=config.controller.region)
    try:
        return CloudWatchHistory(session.client("cloudwatch", config=CLIENT_CONFIG))
    except AWS_ERRORS as exc:
        raise describe_aws_error("AWS SDK setup", exc) from None


def build(config: Config, *, session: boto3.Session | None = None) -> Reconciler:
    """A Reconciler for `config`; nothing connects until the first pass.

    Raises AdapterError when the AWS SDK cannot be set up (no region, say).
    """
    controller = config.controller
    session = session or boto3.Session(region_name=controller.region)
    ecs = build_ecs(config, session=session)
    try:
        broker: QueueDepthSource
        inspector: WorkerInspector | None
        if controller.broker_kind == "sqs":
            sqs: SQSClient = session.client("sqs", config=CLIENT_CONFIG)
            broker = SqsQueueDepth(sqs, queue_name_prefix=controller.sqs.queue_name_prefix)
            inspector = None
        else:
            broker = KombuQueueDepth(controller.broker)
            inspector = inspector_for(
                controller.broker,
                controller.inspect_timeout,
                control_exchange=controller.control_exchange,
            )
    except AWS_ERRORS as exc:
        raise describe_aws_error("AWS SDK setup", exc) from None
    return Reconciler(config=config, broker=broker, ecs=ecs, inspector=inspector)
