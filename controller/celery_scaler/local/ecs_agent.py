"""The ECS agent's endpoints a container calls, for the local fleet's tasks.

On ECS every container finds two URLs in its environment: `ECS_AGENT_URI`, whose
`/task-protection/v1/state` a task uses to protect itself from scale-in (the agent calls
UpdateTaskProtection for it), and `ECS_CONTAINER_METADATA_URI_V4`, whose `/task` says,
among other things, the task's DesiredStatus. Applications that protect their own busy
tasks (ecs-celery-autoscaler, say) depend on both. The local fleet gives each task these
URLs, pointing here, and this server answers them from the local AWS API, so a task's own
protection is as real as the controller's: the fleet, playing ECS, reads it back with
GetTaskProtection.

Paths are `/<task id>/task-protection/v1/state` (GET, PUT) and `/<task id>/task` (GET).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from celery_scaler.adapters.aws import AWS_ERRORS


class EcsAgent:
    """An HTTP server answering the agent endpoints of one cluster's tasks."""

    def __init__(self, ecs: Any, cluster: str) -> None:
        self.ecs = ecs
        self.cluster = cluster
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(*agent.answer("GET", self.path, None))

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                self._answer(*agent.answer("PUT", self.path, body))

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass  # one line per request would bury the fleet's own output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-ecs-agent", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self, task_arn: str) -> dict[str, str]:
        """What a task's container finds in its environment."""
        base = f"{self.url}/{task_arn.rpartition('/')[2]}"
        return {"ECS_AGENT_URI": base, "ECS_CONTAINER_METADATA_URI_V4": base}

    def start(self) -> EcsAgent:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice, or before `start` (then it only closes)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one request, as the ECS agent answers it."""
        task_id, _, rest = path.strip("/").partition("/")
        try:
            if rest == "task-protection/v1/state":
                return 200, self._protection(task_id, method, body or {})
            if rest == "task" and method == "GET":
                return 200, self._metadata(task_id)
        except AWS_ERRORS as exc:
            code = type(exc).__name__
            return 500, {"error": {"Arn": task_id, "Code": code, "Message": str(exc)}}
        return 404, {"error": {"Arn": task_id, "Code": "NotFound", "Message": path}}

    def _protection(self, task_id: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "PUT":
            enabled = bool(body.get("ProtectionEnabled"))
            request: dict[str, Any] = {"protectionEnabled": enabled}
            if enabled and body.get("ExpiresInMinutes") is not None:
                request["expiresInMinutes"] = int(body["ExpiresInMinutes"])
            response = self.ecs.update_task_protection(
                cluster=self.cluster, tasks=[task_id], **request
            )
        else:
            response = self.ecs.get_task_protection(cluster=self.cluster, tasks=[task_id])
        failures = response.get("failures") or []
        if failures:
            failure = failures[0]
            return {
                "failure": {
                    "Arn": failure.get("arn"),
                    "Reason": failure.get("reason"),
                    "Detail": failure.get("detail"),
                }
            }
        task = (response.get("protectedTasks") or [{}])[0]
        expires = task.get("expirationDate")
        return {
            "protection": {
                "ExpirationDate": expires.isoformat() if expires else None,
                "ProtectionEnabled": bool(task.get("protectionEnabled")),
                "TaskArn": task.get("taskArn"),
            }
        }

    def _metadata(self, task_id: str) -> dict[str, Any]:
        described = self.ecs.describe_tasks(cluster=self.cluster, tasks=[task_id])
        task = (described.get("tasks") or [{}])[0]
        return {
            "Cluster": task.get("clusterArn", self.cluster),
            "TaskARN": task.get("taskArn"),
            "DesiredStatus": task.get("desiredStatus"),
            "KnownStatus": task.get("lastStatus"),
        }
