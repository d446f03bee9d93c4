"""Application Auto Scaling on a pool's ECS service, as the controller judges it (pure).

A service's desiredCount can also be driven by an Application Auto Scaling scalable
target with scaling policies (step scaling, target tracking): the setup people come
from. Two drivers of one count undo each other's changes, so policies this controller
did not create are a conflict, not a co-driver (`foreign_scaling`): the pool holds and
`Conflict` names them until `celery-scaler takeover` suspends their dynamic scaling
(alarms/takeover.py), which keeps the policies and alarms.

The controller's own fallback (`alarms apply`, alarms/desired.py) is no conflict: a target
is its own when the ECS service carries `celery-scaler.io/scalable-target=<namePrefix>/<pool>`
(Application Auto Scaling keeps no tag every implementation of its API reads back, and
operator state lives on the service anyway), and the policies on an owned target are its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from celery_scaler.core.model import ScalableTarget
from celery_scaler.core.state import PREFIX

# Final: their literal types are the ones the AWS SDK's stubs ask for.
ECS_NAMESPACE: Final = "ecs"
DESIRED_COUNT: Final = "ecs:service:DesiredCount"
SCALABLE_TARGET = PREFIX + "scalable-target"
"""On the ECS service: `<namePrefix>/<pool>` whose fallback owns its scalable target."""
TAKEOVER = PREFIX + "takeover"
"""On the ECS service, written by `takeover --apply`: the SuspendedState the target had
before (`in=false out=false`), which `takeover --undo` restores, and when."""


def resource_id(cluster: str, service: str) -> str:
    """The scalable target's resource id of an ECS service; names or ARNs."""
    return f"service/{_name(cluster)}/{_name(service)}"


def _name(name_or_arn: str) -> str:
    return name_or_arn.rpartition("/")[2] if name_or_arn.startswith("arn:") else name_or_arn


def target_marker(prefix: str, pool: str) -> str:
    return f"{prefix}/{pool}"


def marked_pool(prefix: str, service_tags: Mapping[str, str]) -> str | None:
    """The pool whose fallback owns the service's scalable target, if this controller's."""
    owner, _, pool = service_tags.get(SCALABLE_TARGET, "").partition("/")
    return pool if owner == prefix and pool else None


def foreign_scaling(
    target: ScalableTarget | None, service_tags: Mapping[str, str], prefix: str
) -> ScalableTarget | None:
    """The target when policies this controller did not create can change the count.

    None when there is no target or no policy, when the target is this controller's own
    fallback (`prefix` is `alarms.namePrefix`), or when its dynamic scaling is suspended
    both ways (what `takeover` does). Scheduled actions are not looked at.
    """
    if target is None or not target.policies or marked_pool(prefix, service_tags) is not None:
        return None
    if target.scale_in_suspended and target.scale_out_suspended:
        return None
    return target


def conflict_sentence(target: ScalableTarget) -> str:
    """What `Conflict` says, naming the policies and what is still live."""
    names = ", ".join(f"{policy.name!r} ({policy.policy_type})" for policy in target.policies)
    policies = "scaling policy" if len(target.policies) == 1 else "scaling policies"
    if target.scale_in_suspended:
        live = "its scale-out is not suspended"
    elif target.scale_out_suspended:
        live = "its scale-in is not suspended"
    else:
        live = "its dynamic scaling is not suspended"
    return (
        f"Application Auto Scaling also drives {target.resource_id}: {policies} {names}, "
        f"not created by celery-scaler, and {live}; the pool holds rather than fight it. "
        "`celery-scaler takeover --pool <name> --apply` suspends that dynamic scaling "
        "(policies and alarms are kept)"
    )


_TAKEOVER_VALUE = re.compile(r"^in=(true|false) out=(true|false)(?: at=(\S+))?$")


def takeover_tag(scale_in_suspended: bool, scale_out_suspended: bool, when: str) -> str:
    """The `takeover` tag's value: the SuspendedState to restore, and when it was taken."""
    return f"in={str(scale_in_suspended).lower()} out={str(scale_out_suspended).lower()} at={when}"


def parse_takeover(value: str | None) -> tuple[bool, bool] | None:
    """(DynamicScalingInSuspended, DynamicScalingOutSuspended) before takeover; None when
    no takeover is recorded or the tag does not parse (it is then not trusted)."""
    match = _TAKEOVER_VALUE.match((value or "").strip())
    if match is None:
        return None
    return match.group(1) == "true", match.group(2) == "true"
