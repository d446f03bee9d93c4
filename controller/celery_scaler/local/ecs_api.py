"""What ECS does that moto's ECS does not, added to the local AWS API's own ECS endpoint.

moto's server answers the ECS operations the controller and the local fleet call, with
gaps that would let the emulation flatter whoever runs on it. `install()` registers, in
moto's own ECS request handler (so its request recorder sees these calls like any other):

- **Task scale-in protection** (`UpdateTaskProtection`, `GetTaskProtection`), which moto
  lacks: kept per task ARN with its expiry. As on ECS: only tasks of a service can be
  protected (a standalone task is a `TASK_NOT_VALID` failure, an unknown or stopped one
  `MISSING`), at most 10 tasks per update, 1 to 2,880 minutes, 2 hours when not given,
  and every update of a protected task resets its expiry.
- **ListTasks by service**: moto ignores `serviceName` and lists every task of the cluster;
  here only the service's tasks (those whose group is `service:<name>`) are listed.
- **Deployments**: moto only swaps the service's task definition. Here UpdateService with
  another task definition, or `forceNewDeployment`, starts a new PRIMARY deployment
  (`IN_PROGRESS`) and turns the previous one ACTIVE, as ECS does; the deployment completes
  (the ACTIVE ones disappear, the PRIMARY is `COMPLETED`) once every running task of the
  service runs the new definition and there are as many as desired. Replacing the tasks
  is the local fleet's part, as it is the ECS scheduler's. `deploymentConfiguration`
  (minimumHealthyPercent, maximumPercent) is kept and shown, with ECS's defaults (100, 200).

The tasks themselves come from the local fleet, which starts each of a service's tasks
with RunTask (group `service:<name>`, startedBy the deployment's id) and stops it with
StopTask, as the ECS scheduler would start and stop them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.responses import ActionResult
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Service, Task
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random

DEFAULT_PROTECTION_MINUTES = 120
"""ECS: protection expires after 2 hours unless `expiresInMinutes` says otherwise."""
MAX_PROTECTION_MINUTES = 2880
PROTECTION_BATCH = 10
DEFAULT_DEPLOYMENT = {"minimumHealthyPercent": 100, "maximumPercent": 200}


@dataclass
class _State:
    """Per moto backend (account and region): protection and the deployments started here."""

    protected_until: dict[str, datetime] = field(default_factory=dict)
    """Task ARN → when its protection ends."""


_states: weakref.WeakKeyDictionary[EC2ContainerServiceBackend, _State] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_installed = False


def _state(backend: EC2ContainerServiceBackend) -> _State:
    return _states.setdefault(backend, _State())


def _now() -> datetime:
    return datetime.now(UTC)


def _find_task(backend: EC2ContainerServiceBackend, cluster: str, given: str) -> Task | None:
    task_id = given.rpartition("/")[2]
    for task in backend.tasks.get(cluster, {}).values():
        if task.id == task_id:
            return task
    return None


def _service_tasks(backend: EC2ContainerServiceBackend, cluster: str, service: str) -> list[Task]:
    """The service's tasks that are meant to run (desiredStatus RUNNING)."""
    return [
        task
        for task in backend.tasks.get(cluster, {}).values()
        if task.group == f"service:{service}" and task.desired_status == "RUNNING"
    ]


# --- the handlers ----------------------------------------------------------------------------


def update_task_protection(self: EC2ContainerServiceResponse) -> ActionResult:
    backend = self.ecs_backend
    cluster = backend._get_cluster(self._get_param("cluster")).name
    given: list[str] = self._get_param("tasks", [])
    enabled = bool(self._get_param("protectionEnabled"))
    minutes = self._get_param("expiresInMinutes")
    if not given or len(given) > PROTECTION_BATCH:
        raise InvalidParameterException(f"tasks: between 1 and {PROTECTION_BATCH} task ids")
    if minutes is None:
        minutes = DEFAULT_PROTECTION_MINUTES
    if enabled and not 1 <= int(minutes) <= MAX_PROTECTION_MINUTES:
        raise InvalidParameterException(
            f"expiresInMinutes must be between 1 and {MAX_PROTECTION_MINUTES}"
        )
    now = _now()

    def update(task: Task, until: dict[str, datetime]) -> dict[str, Any]:
        if enabled:
            until[task.task_arn] = now + timedelta(minutes=int(minutes))
            return {
                "taskArn": task.task_arn,
                "protectionEnabled": True,
                "expirationDate": until[task.task_arn],
            }
        until.pop(task.task_arn, None)
        return {"taskArn": task.task_arn, "protectionEnabled": False}

    return _protection_result(backend, cluster, given, update)


def get_task_protection(self: EC2ContainerServiceResponse) -> ActionResult:
    backend = self.ecs_backend
    cluster = backend._get_cluster(self._get_param("cluster")).name
    given: list[str] = self._get_param("tasks", [])
    now = _now()

    def read(task: Task, until: dict[str, datetime]) -> dict[str, Any]:
        expires = until.get(task.task_arn)
        if expires is not None and expires > now:
            return {"taskArn": task.task_arn, "protectionEnabled": True, "expirationDate": expires}
        until.pop(task.task_arn, None)  # expired: ECS clears it
        return {"taskArn": task.task_arn, "protectionEnabled": False}

    return _protection_result(backend, cluster, given, read)


def _protection_result(
    backend: EC2ContainerServiceBackend,
    cluster: str,
    given: list[str],
    answer: Callable[[Task, dict[str, datetime]], dict[str, Any]],
) -> ActionResult:
    """Both protection operations' answer: `answer(task, protected_until)` for each given task
    that can be protected (under the lock, as it may change the expiries), a failure for
    each that cannot, in the order given."""
    protected: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    with _lock:
        until = _state(backend).protected_until
        for name in given:
            task = _find_task(backend, cluster, name)
            failure = _task_failure(task, name)
            if failure is not None:
                failures.append(failure)
                continue
            assert task is not None
            protected.append(answer(task, until))
    return ActionResult({"protectedTasks": protected, "failures": failures})


def _task_failure(task: Task | None, given: str) -> dict[str, str] | None:
    if task is None or task.desired_status != "RUNNING":
        return {"arn": given, "reason": "MISSING", "detail": "The task was not found."}
    if not task.group.startswith("service:"):
        return {
            "arn": task.task_arn,
            "reason": "TASK_NOT_VALID",
            "detail": "Task protection is supported for tasks of a service only.",
        }
    return None


def list_tasks(self: EC2ContainerServiceResponse) -> ActionResult:
    backend = self.ecs_backend
    tasks = backend.list_tasks(
        self._get_param("cluster", "default"),
        self._get_param("containerInstance"),
        self._get_param("family"),
        self._get_param("startedBy"),
        None,
        self._get_param("desiredStatus"),
    )
    service = self._get_param("serviceName")
    if service:
        tasks = [task for task in tasks if task.group == f"service:{service.rpartition('/')[2]}"]
    return ActionResult({"taskArns": [task.task_arn for task in tasks]})


def _wrap_update_service(
    original: Callable[[EC2ContainerServiceResponse], ActionResult],
) -> Callable[[EC2ContainerServiceResponse], ActionResult]:
    def update_service(self: EC2ContainerServiceResponse) -> ActionResult:
        backend = self.ecs_backend
        cluster = self._get_param("cluster", "default")
        service = backend._get_service(cluster, self._get_param("service").rpartition("/")[2])
        before = _definition_arn(backend, service.task_definition)
        result = original(self)
        configuration = self._get_param("deploymentConfiguration")
        if configuration:
            _configure(service, {**_deployment_configuration(service), **configuration})
        after = _definition_arn(backend, service.task_definition)
        service.task_definition = after
        if after != before or self._get_param("forceNewDeployment"):
            _start_deployment(service, after)
        return result

    return update_service


def _wrap_describe_services(
    original: Callable[[EC2ContainerServiceResponse], ActionResult],
) -> Callable[[EC2ContainerServiceResponse], ActionResult]:
    def describe_services(self: EC2ContainerServiceResponse) -> ActionResult:
        backend = self.ecs_backend
        cluster = self._get_param("cluster", "default")
        for name in self._get_param("services", []):
            service = next(
                (
                    s
                    for s in backend.services.values()
                    if s.cluster_name == cluster.rpartition("/")[2] and name in (s.name, s.arn)
                ),
                None,
            )
            if service is not None:
                _settle_deployment(backend, service)
                _configure(service, _deployment_configuration(service))
        return original(self)

    return describe_services


def _wrap_create_service(
    original: Callable[[EC2ContainerServiceResponse], ActionResult],
) -> Callable[[EC2ContainerServiceResponse], ActionResult]:
    def create_service(self: EC2ContainerServiceResponse) -> ActionResult:
        result = original(self)
        configuration = self._get_param("deploymentConfiguration")
        if configuration:
            backend = self.ecs_backend
            service = backend._get_service(
                self._get_param("cluster", "default"), self._get_param("serviceName")
            )
            _configure(service, {**DEFAULT_DEPLOYMENT, **configuration})
        return result

    return create_service


def _deployment_configuration(service: Service) -> dict[str, int]:
    return dict(getattr(service, _CONFIGURATION, None) or DEFAULT_DEPLOYMENT)


def _configure(service: Service, configuration: dict[str, int]) -> None:
    # moto's serializer shows an attribute of this name as the service's field.
    setattr(service, _CONFIGURATION, configuration)


_CONFIGURATION = "deployment_configuration"


def _definition_arn(backend: EC2ContainerServiceBackend, given: str | None) -> str | None:
    # moto keeps whatever UpdateService was given (a family, family:revision or an ARN).
    return backend.describe_task_definition(given).arn if given else None


def _start_deployment(service: Service, definition: str | None) -> None:
    now = _now()
    for deployment in service.deployments:
        if deployment.get("status") == "PRIMARY":
            deployment["status"] = "ACTIVE"
            deployment["updatedAt"] = now
    deployment_id = f"ecs-svc/{mock_random.randint(0, 32**12)}"
    service.deployments.insert(
        0,
        {
            "createdAt": now,
            "desiredCount": service.desired_count,
            "failedTasks": 0,
            "id": deployment_id,
            "launchType": service.launch_type,
            "pendingCount": 0,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
            "runningCount": 0,
            "status": "PRIMARY",
            "taskDefinition": definition,
            "updatedAt": now,
        },
    )


def _settle_deployment(backend: EC2ContainerServiceBackend, service: Service) -> None:
    """Complete an in-progress deployment whose tasks have all been replaced."""
    primary = next((d for d in service.deployments if d.get("status") == "PRIMARY"), None)
    if primary is None or primary.get("rolloutState") != "IN_PROGRESS":
        return
    tasks = _service_tasks(backend, service.cluster_name, service.name)
    new = [task for task in tasks if task.task_definition_arn == primary.get("taskDefinition")]
    primary["runningCount"] = len(new)
    primary["desiredCount"] = service.desired_count
    if len(new) < service.desired_count or len(new) < len(tasks):
        return
    primary["rolloutState"] = "COMPLETED"
    primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
    primary["updatedAt"] = _now()
    service.deployments[:] = [primary]


def install() -> None:
    """Add the handlers above to moto's ECS endpoint, once per process."""
    global _installed
    with _lock:
        if _installed:
            return
        response = EC2ContainerServiceResponse
        handlers = {
            "update_task_protection": update_task_protection,
            "get_task_protection": get_task_protection,
            "list_tasks": list_tasks,
            "update_service": _wrap_update_service(response.update_service),
            "describe_services": _wrap_describe_services(response.describe_services),
            "create_service": _wrap_create_service(response.create_service),
        }
        # moto dispatches an ECS action to the handler method of its name.
        for name, handler in handlers.items():
            setattr(response, name, handler)
        _installed = True
