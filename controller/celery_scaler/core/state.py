"""Controller state kept on the ECS service as tags, like an operator's annotations (pure).

What must survive a restart (the count last written, cooldown starts, consecutive
failures, the last action) is encoded as `celery-scaler.io/…` tags; a controller that
starts, or takes a pool over from another replica, reads it back from DescribeServices.
The window's metric samples are not kept: a restarted controller starts a new window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from celery_scaler.core.model import Action, LastAction, PoolMemory, ScaleOutCooldown

PREFIX = "celery-scaler.io/"
PAUSED = PREFIX + "paused"
LAST_DESIRED = PREFIX + "last-desired"
SCALE_OUT_COOLDOWN = PREFIX + "scale-out-cooldown"
SCALE_IN_COOLDOWN = PREFIX + "scale-in-cooldown"
FAILURES = PREFIX + "failures"
LAST_ACTION = PREFIX + "last-action"
LAST_REASON = PREFIX + "last-reason"
CONDITIONS = PREFIX + "conditions"
"""`Name=since Name=since`: the conditions that hold (core/conditions.py), for `status`."""

OWNED = (
    LAST_DESIRED,
    SCALE_OUT_COOLDOWN,
    SCALE_IN_COOLDOWN,
    FAILURES,
    LAST_ACTION,
    LAST_REASON,
    CONDITIONS,
)
"""The tags the controller writes; `paused` belongs to people."""

MAX_TAG_VALUE = 256
# AWS tag values allow letters, digits, spaces and `_ . : / = + - @` only.
_NOT_ALLOWED = re.compile(r"[^\w .:/=+\-@]+")
_WORDS = {"≥": " at or above ", "≤": " at or below ", "→": " to ", "%": " percent", ";": ","}


def is_paused(tags: Mapping[str, str]) -> bool:
    return tags.get(PAUSED, "").strip().lower() == "true"


def tag_value(text: str) -> str:
    """`text` within AWS's tag-value alphabet and length."""
    for symbol, word in _WORDS.items():
        text = text.replace(symbol, word)
    text = _NOT_ALLOWED.sub(" ", text.replace(",", " "))
    return " ".join(text.split())[:MAX_TAG_VALUE]


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _parse_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def memory_to_tags(memory: PoolMemory, failure_threshold: int | None = None) -> dict[str, str]:
    """The owned tags that describe `memory`; a state that is unset has no tag.

    With `failure_threshold` (the pool's fallback.failureThreshold) the failures tag says
    only what matters and so changes only then: `1` from the first failure, the threshold
    once the fallback is due, gone on recovery. An outage then costs ECS two tag writes,
    not one a pass; a restarted controller counts on from there.
    """
    tags: dict[str, str] = {}
    if memory.last_desired is not None:
        tags[LAST_DESIRED] = str(memory.last_desired)
    if memory.scale_out_cooldown is not None:
        cooldown = memory.scale_out_cooldown
        tags[SCALE_OUT_COOLDOWN] = f"{_timestamp(cooldown.started)} +{cooldown.added}"
    if memory.scale_in_cooldown_started is not None:
        tags[SCALE_IN_COOLDOWN] = _timestamp(memory.scale_in_cooldown_started)
    failures = memory.consecutive_failures
    if failures and failure_threshold is not None:
        failures = failure_threshold if failures >= failure_threshold else 1
    if failures:
        tags[FAILURES] = str(failures)
    if memory.last_action is not None:
        last = memory.last_action
        tags[LAST_ACTION] = f"{last.action.value} {_timestamp(last.time)}"
        tags[LAST_REASON] = tag_value(last.reason)
    if memory.conditions:
        held = sorted(memory.conditions.items())
        tags[CONDITIONS] = " ".join(f"{name}={_timestamp(since)}" for name, since in held)
    return tags


def memory_from_tags(tags: Mapping[str, str]) -> PoolMemory:
    """What a controller remembered about a pool, read back from its service's tags.

    A tag that does not parse (edited by hand, say) is ignored rather than trusted.
    """
    scale_out = None
    started, _, added = tags.get(SCALE_OUT_COOLDOWN, "").partition(" +")
    out_start, out_added = _parse_timestamp(started), _parse_int(added)
    if out_start is not None and out_added is not None:
        scale_out = ScaleOutCooldown(out_start, out_added)
    last_action = None
    action, _, when = tags.get(LAST_ACTION, "").partition(" ")
    action_time = _parse_timestamp(when)
    if action in {a.value for a in Action} and action_time is not None:
        last_action = LastAction(Action(action), action_time, tags.get(LAST_REASON, ""))
    return PoolMemory(
        scale_out_cooldown=scale_out,
        scale_in_cooldown_started=_parse_timestamp(tags.get(SCALE_IN_COOLDOWN, "")),
        last_desired=_parse_int(tags.get(LAST_DESIRED)),
        consecutive_failures=_parse_int(tags.get(FAILURES)) or 0,
        last_action=last_action,
        conditions=_parse_conditions(tags.get(CONDITIONS, "")),
    )


def _parse_conditions(text: str) -> dict[str, float]:
    held: dict[str, float] = {}
    for item in text.split():
        name, _, when = item.partition("=")
        since = _parse_timestamp(when)
        if name and since is not None:
            held[name] = since
    return held


def tag_changes(
    memory: PoolMemory, current: Mapping[str, str], failure_threshold: int | None = None
) -> tuple[dict[str, str], list[str]]:
    """(tags to set, tag keys to remove) so the service's owned tags describe `memory`.

    Only differences: a pass that changes nothing writes nothing.
    """
    wanted = memory_to_tags(memory, failure_threshold)
    to_set = {key: value for key, value in wanted.items() if current.get(key) != value}
    to_remove = [key for key in OWNED if key in current and key not in wanted]
    return to_set, to_remove
