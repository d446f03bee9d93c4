"""Controller state kept on the ECS service as tags, like an operator's annotations (pure).

What must survive a restart (the count last written, cooldown starts, consecutive
failures, the last action) is encoded as `celery-scaler.io/…` tags; a controller that
starts, or takes a pool over from another replica, reads it back from DescribeServices.
The window's metric samples are not kept: a restarted controller starts a new window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from celery_scaler.core.model import (
    Action,
    Drain,
    LastAction,
    PendingWrite,
    PoolMemory,
    ScaleOutCooldown,
)

PREFIX = "celery-scaler.io/"
PAUSED = PREFIX + "paused"
PAUSED_REPLICAS = PREFIX + "paused-replicas"
"""`N`: set the count to N, then hold it there (KEDA's `paused-replicas`); wins over the rest."""
PAUSED_SCALE_IN = PREFIX + "paused-scale-in"
"""`true`: no scale-in, scale-out as usual (KEDA's `paused-scale-in`)."""
PAUSED_SCALE_OUT = PREFIX + "paused-scale-out"
"""`true`: no scale-out, scale-in as usual (KEDA's `paused-scale-out`)."""
LAST_DESIRED = PREFIX + "last-desired"
SCALE_OUT_COOLDOWN = PREFIX + "scale-out-cooldown"
SCALE_IN_COOLDOWN = PREFIX + "scale-in-cooldown"
FAILURES = PREFIX + "failures"
LAST_ACTION = PREFIX + "last-action"
LAST_REASON = PREFIX + "last-reason"
CONDITIONS = PREFIX + "conditions"
"""`Name=since Name=since`: the conditions that hold (core/conditions.py), for `status`."""
PENDING_WRITE = PREFIX + "pending-write"
"""`scale_out 2 to 5 2026-01-01T12:00:00Z`: written before UpdateService, removed after."""
DRAIN = PREFIX + "drain"
"""`5 to 3 2026-01-01T12:00:00Z`, then `… removing 2026-01-01T12:03:00Z`: a drain in
progress (core/drain.py), written before the first worker is told to stop consuming."""
DRAIN_WORKERS = PREFIX + "drain-workers"
"""The drained workers' names, space-separated; more of them go on `drain-workers-2`, …:
a tag value holds 256 characters."""

OWNED = (
    LAST_DESIRED,
    SCALE_OUT_COOLDOWN,
    SCALE_IN_COOLDOWN,
    FAILURES,
    LAST_ACTION,
    LAST_REASON,
    CONDITIONS,
    PENDING_WRITE,
    DRAIN,
)
"""The tags the controller writes (and `drain-workers…`, see `owned`); `paused` belongs to
people."""


def owned(key: str) -> bool:
    """Whether the controller writes the tag `key`."""
    return key in OWNED or key == DRAIN_WORKERS or key.startswith(DRAIN_WORKERS + "-")


MAX_TAG_VALUE = 256
# AWS tag values allow letters, digits, spaces and `_ . : / = + - @` only.
# AWS tag values allow letters, digits, spaces and `_ . : / = + - @` only. Anything else
# (≥, →, brackets, commas) is written as `=XX` UTF-8 bytes, quoted-printable style, and
# `=` itself as `=3D`: the reason reads back exactly as the controller wrote it.
_KEPT = re.compile(r"[\w .:/+\-@]")
_ESCAPED = re.compile(r"(?:=[0-9A-F]{2})+")


def is_paused(tags: Mapping[str, str]) -> bool:
    return _true(tags, PAUSED)


def _true(tags: Mapping[str, str], key: str) -> bool:
    return tags.get(key, "").strip().lower() == "true"


@dataclass(frozen=True)
class Pause:
    """What people's pause tags on a service ask of the controller (all set by people)."""

    held: bool = False
    """`paused=true`, or a `paused-replicas` that is not a count: hold wherever the count is."""
    replicas: int | None = None
    """`paused-replicas=N`: set the count to N, then hold."""
    scale_in: bool = False
    scale_out: bool = False
    problem: str | None = None
    """Why a pause tag could not be read (the pool is held all the same)."""

    def describe(self) -> tuple[str, ...]:
        """The tags in force, as `status` lists them."""
        if self.replicas is not None:
            return (f"{PAUSED_REPLICAS}={self.replicas}",)
        if self.held:
            return (f"{PAUSED}=true",) if self.problem is None else (self.problem,)
        return tuple(
            f"{key}=true"
            for key, on in ((PAUSED_SCALE_IN, self.scale_in), (PAUSED_SCALE_OUT, self.scale_out))
            if on
        )


_NOT_PAUSED = Pause()


def pause_from_tags(tags: Mapping[str, str]) -> Pause:
    """The pause tags of a service; `paused-replicas` first, as KEDA ranks its annotations.

    A `paused-replicas` that is not a whole number of tasks holds the pool rather than
    being ignored: whoever set it meant to stop the controller.
    """
    if not tags:
        return _NOT_PAUSED  # every pass asks: the simulator's and a replay's services have none
    given = tags.get(PAUSED_REPLICAS)
    if given is not None:
        count = _parse_int(given.strip())
        if count is None or count < 0:
            problem = f"{PAUSED_REPLICAS}={given!r} is not a number of tasks"
            return Pause(held=True, problem=problem)
        return Pause(replicas=count)
    return Pause(
        held=is_paused(tags),
        scale_in=_true(tags, PAUSED_SCALE_IN),
        scale_out=_true(tags, PAUSED_SCALE_OUT),
    )


def tag_value(text: str) -> str:
    """`text` in AWS's tag-value alphabet, at most its length, readable back by `tag_text`."""
    value = ""
    for char in text:
        piece = char if _KEPT.fullmatch(char) else "".join(f"={b:02X}" for b in char.encode())
        if len(value) + len(piece) > MAX_TAG_VALUE:
            break  # never half an escape
        value += piece
    return value


def tag_text(value: str) -> str:
    """The text `tag_value` encoded (a value without escapes is returned as it is)."""
    return _ESCAPED.sub(
        lambda match: bytes.fromhex(match.group().replace("=", "")).decode("utf-8", "replace"),
        value,
    )


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
    if memory.pending is not None:
        pending = memory.pending
        tags[PENDING_WRITE] = (
            f"{pending.action.value} {pending.current} to {pending.desired} "
            f"{_timestamp(pending.time)}"
        )
    if memory.drain is not None:
        tags.update(_drain_tags(memory.drain))
    return tags


def _drain_tags(drain: Drain) -> dict[str, str]:
    header = f"{drain.current} to {drain.desired} {_timestamp(drain.started)}"
    if drain.removing is not None:
        header += f" removing {_timestamp(drain.removing)}"
    tags = {DRAIN: header}
    chunks: list[str] = []
    for name in drain.workers:
        piece = tag_value(name)
        if chunks and len(chunks[-1]) + 1 + len(piece) <= MAX_TAG_VALUE:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    for index, chunk in enumerate(chunks):
        tags[DRAIN_WORKERS if index == 0 else f"{DRAIN_WORKERS}-{index + 1}"] = chunk
    return tags


def _parse_drain(tags: Mapping[str, str]) -> Drain | None:
    words = tags.get(DRAIN, "").split()
    if len(words) not in (4, 6) or words[1] != "to":
        return None
    current, desired, started = _parse_int(words[0]), _parse_int(words[2]), words[3]
    start = _parse_timestamp(started)
    removing = _parse_timestamp(words[5]) if len(words) == 6 and words[4] == "removing" else None
    if current is None or desired is None or start is None or (len(words) == 6 and not removing):
        return None
    keys = [DRAIN_WORKERS, *(f"{DRAIN_WORKERS}-{n}" for n in range(2, len(tags) + 2))]
    names = [tag_text(name) for key in keys if key in tags for name in tags[key].split()]
    if not names:
        return None
    return Drain(current, desired, start, tuple(names), removing)


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
        reason = tag_text(tags.get(LAST_REASON, ""))
        last_action = LastAction(Action(action), action_time, reason)
    return PoolMemory(
        scale_out_cooldown=scale_out,
        scale_in_cooldown_started=_parse_timestamp(tags.get(SCALE_IN_COOLDOWN, "")),
        last_desired=_parse_int(tags.get(LAST_DESIRED)),
        consecutive_failures=_parse_int(tags.get(FAILURES)) or 0,
        last_action=last_action,
        conditions=_parse_conditions(tags.get(CONDITIONS, "")),
        pending=_parse_pending(tags.get(PENDING_WRITE, "")),
        drain=_parse_drain(tags),
    )


def _parse_pending(text: str) -> PendingWrite | None:
    action, current, word, desired, when = (text.split() + [""] * 5)[:5]
    before, after, time = _parse_int(current), _parse_int(desired), _parse_timestamp(when)
    if action not in {a.value for a in Action} or word != "to":
        return None
    if before is None or after is None or time is None:
        return None
    return PendingWrite(Action(action), before, after, time)


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
    to_remove = [key for key in current if owned(key) and key not in wanted]
    if PENDING_WRITE in to_remove:
        # Settled by emptying it in the TagResource that writes the state it settles:
        # removing it would take an UntagResource too, a fourth request for every
        # scaling action. An empty value reads as no write pending.
        to_remove.remove(PENDING_WRITE)
        if current[PENDING_WRITE]:
            to_set[PENDING_WRITE] = ""
    return to_set, to_remove


def tags_after(
    current: Mapping[str, str], to_set: Mapping[str, str], to_remove: Sequence[str]
) -> dict[str, str]:
    """The service's tags once a `tag_changes` write went through."""
    return {key: value for key, value in {**current, **to_set}.items() if key not in to_remove}
