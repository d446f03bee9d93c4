"""The local AWS API: moto's server mode in this process, reached over HTTP.

Used by the tests, the local try-out and the demo, so that boto3 runs its real request
path (signing, retries, parsing) against a server on this machine.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class LocalAws:
    endpoint_url: str
    region: str

    @property
    def env(self) -> dict[str, str]:
        """Environment that points the AWS SDK (in this or a child process) here."""
        return {
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_service(self, cluster: str, service: str, desired: int) -> None:
        """A settled ECS service at `desired`.

        Created at 0 and then updated: moto reports a service created above 0 as
        rolling out forever.
        """
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=cluster)
        ecs.register_task_definition(
            family=f"{service}-task",
            containerDefinitions=[
                {"name": "worker", "image": "celery-worker:latest", "memory": 512}
            ],
        )
        ecs.create_service(
            cluster=cluster, serviceName=service, taskDefinition=f"{service}-task", desiredCount=0
        )
        if desired:
            ecs.update_service(cluster=cluster, service=service, desiredCount=desired)


@contextmanager
def local_aws(region: str = "us-east-1") -> Iterator[LocalAws]:
    """Start moto's server on a free loopback port for the duration of the block.

    Its ECS endpoint also serves what moto lacks (task scale-in protection, ListTasks by
    service, deployments that roll out): see `celery_scaler.local.ecs_api`.
    """
    from moto.server import ThreadedMotoServer

    from celery_scaler.local import ecs_api

    ecs_api.install()

    # One log line per request would bury the output of whatever runs against it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalAws(endpoint_url=f"http://{host}:{port}", region=region)
    finally:
        server.stop()


def run_against_local_aws(command: list[str], services: Mapping[str, str], desired: int) -> int:
    """Run a command with a local AWS API holding `services` ({cluster: service})."""
    with local_aws() as aws:
        for cluster, service in services.items():
            aws.create_service(cluster, service, desired)
        env = {**os.environ, **aws.env}
        return subprocess.call(command, env=env)


def main() -> None:
    """`python -m celery_scaler.local.aws_api CLUSTER/SERVICE[,...] COMMAND...`: try the CLI."""
    if len(sys.argv) < 3 or "/" not in sys.argv[1]:
        sys.exit(
            "usage: python -m celery_scaler.local.aws_api CLUSTER/SERVICE[,...] COMMAND [ARGS...]"
        )
    services = dict(target.split("/", 1) for target in sys.argv[1].split(","))
    sys.exit(run_against_local_aws(sys.argv[2:], services, desired=1))


if __name__ == "__main__":
    main()
