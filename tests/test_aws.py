"""AWS client settings (adapters/aws.py) that the pass's concurrency depends on."""

from __future__ import annotations

from celery_scaler.adapters.aws import PASS_CONNECTIONS, client_config
from celery_scaler.engine.reconcile import MAX_THREADS


def test_a_pass_client_keeps_a_connection_for_each_call_it_makes_at_once() -> None:
    # 32 pool passes writing at once over botocore's 10 connections would open and drop
    # a connection for each call past the tenth.
    assert client_config(deadline=10.0).max_pool_connections == PASS_CONNECTIONS == MAX_THREADS
    assert client_config().max_pool_connections == 10  # a command a person runs: botocore's
