"""RabbitMQ's management HTTP API: the unacknowledged messages of each queue.

AMQP itself tells a queue's ready messages (a passive `queue_declare`), not the ones
delivered to consumers and not yet acknowledged; the management plugin does
(`messages_unacknowledged`). Only the standard library is used: one GET a pass for the
virtual host's queues (two columns of each), tried again (`retries.RetryPolicy`) when
the API could not be reached or was unavailable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from urllib.request import Request, urlopen

from celery_scaler.adapters.retries import RetryPolicy, connection_lost
from celery_scaler.core.config import mask_url
from celery_scaler.core.errors import AdapterError


class RabbitMqManagement:
    """Reads queue figures from the management API at `url` (http://user:password@host:15672)."""

    def __init__(
        self, url: str, virtual_host: str, *, timeout: float, retry: RetryPolicy | None = None
    ) -> None:
        parts = urlsplit(url)
        self._where = mask_url(url)
        # urllib does not send a URL's user and password: they become a Basic header.
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        self._secrets = {secret for secret in (parts.password, password) if secret}
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        host = parts.netloc.rpartition("@")[2]
        self._base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        self._vhost = virtual_host
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    def unacked(self, queues: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Each queue's unacknowledged messages, and the queues that could not be read.

        A queue whose figure the broker has not collected yet (statistics are gathered
        every few seconds, so a queue just declared has none) is in neither: unknown.
        Raises AdapterError when the API itself cannot be used (unreachable, credentials).
        """
        counts: dict[str, int] = {}
        errors: dict[str, str] = {}
        if not queues:
            return counts, errors
        # One request for every queue of the virtual host rather than one per queue: a
        # pass over hundreds of queues is one GET, each queue two short columns of it.
        # safe="": a vhost name with "/" (the default vhost is "/") must be one segment.
        path = f"/api/queues/{quote(self._vhost, safe='')}"
        status, body = self._get(f"{path}?columns=name,messages_unacknowledged")
        if status == 404:
            body = []  # no such virtual host: none of its queues
        if not isinstance(body, list):
            return counts, errors  # not the listing this API gives: every count unknown
        listed = {item.get("name"): item for item in body if isinstance(item, dict)}
        for queue in queues:
            found = listed.get(queue)
            if found is None:
                errors[queue] = f"the RabbitMQ management API at {self._where} has no such queue"
                continue
            count = found.get("messages_unacknowledged")
            if isinstance(count, int) and not isinstance(count, bool):
                counts[queue] = count
        return counts, errors

    def _get(self, path: str) -> tuple[int, object]:
        try:
            return self._retry.call(lambda: self._fetch(path), transient=_unavailable)
        except HTTPError as exc:
            if exc.code == 404:
                return 404, None
            reason = "refused the credentials" if exc.code in (401, 403) else "answered"
            raise self._error(f"{reason} HTTP {exc.code} {exc.reason}") from None
        except URLError as exc:
            raise self._error(f"cannot be reached: {exc.reason}") from None
        except (OSError, HTTPException, ValueError) as exc:  # timeouts, resets, not HTTP or JSON
            raise self._error(str(exc) or type(exc).__name__) from None

    def _fetch(self, path: str) -> tuple[int, object]:
        request = Request(self._base + path, headers=self._headers)
        # The configuration allows http and https URLs only.
        with urlopen(request, timeout=self._timeout) as response:
            return int(response.status), json.loads(response.read())

    def _error(self, what: str) -> AdapterError:
        for secret in self._secrets:
            what = what.replace(secret, "***")
        return AdapterError(f"the RabbitMQ management API at {self._where} {what}")


UNAVAILABLE = frozenset({502, 503, 504})
"""HTTP statuses of an API not there for now (a proxy's, or the plugin starting)."""


def _unavailable(exc: BaseException) -> bool:
    """Worth another try: the API could not be reached, or said it is not there for now.

    An answer (401, 403, 404, a body that is not JSON) is not: it would come again.
    """
    if isinstance(exc, HTTPError):
        return exc.code in UNAVAILABLE
    return connection_lost(exc)
