"""Shared fixtures: the real brokers on this machine, the local AWS API, and the deployment
files (the Dockerfile, the Helm chart) parsed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from celery_scaler.local.aws_api import LocalAws, local_aws
from tests import aws_calls
from tests.generated import CHART
from tests.helpers import DOCKERFILE

if TYPE_CHECKING:
    import helm_python as helm
    from dockerfile_parse import DockerfileParser

aws_calls.configure()

# Tests use their own Redis database so they never touch an application's keys.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def queue(redis_url: str, unique: str) -> Iterator[str]:
    """A fresh queue name; its Redis keys are deleted after the test."""
    name = f"q-{unique}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"*{name}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def unique() -> str:
    """A short unique suffix for queue, cluster and service names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def local_aws_server() -> Iterator[LocalAws]:
    with local_aws() as aws:
        aws_calls.start()
        yield aws
        aws_calls.stop()


@pytest.fixture
def aws(local_aws_server: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """The local AWS API, with this process's AWS SDK environment pointed at it."""
    for name, value in local_aws_server.env.items():
        monkeypatch.setenv(name, value)
    return local_aws_server


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    from dockerfile_parse import DockerfileParser

    return DockerfileParser(str(DOCKERFILE))


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    import helm_python as helm  # Helm's Go SDK, loaded only by the tests that render

    with helm.Chart.load(CHART) as loaded:
        yield loaded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_all` check what the others did: they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)
