"""Other autoscalers on a pool's service: when they are a conflict (core/autoscaling.py),
and what `takeover` plans, writes in which order, and says (alarms/takeover.py), pure. The
same against the local AWS API, through the command: tests/integration/test_migration.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest

from celery_scaler.alarms.takeover import Takeover, apply, describe, plan
from celery_scaler.core.autoscaling import (
    SCALABLE_TARGET,
    TAKEOVER,
    foreign_scaling,
    parse_takeover,
    resource_id,
    takeover_tag,
)
from celery_scaler.core.conditions import Condition, observed_conditions
from celery_scaler.core.model import (
    Observation,
    ScalableTarget,
    ScalingPolicy,
    ServiceObservation,
)
from tests.helpers import design_pool

RID = "service/prod/celery-worker"
STEP = ScalingPolicy("worker-scale-out", "StepScaling", alarms=("worker-queue-high",))
FOREIGN = ScalableTarget(RID, 1, 20, policies=(STEP,))
OWN = ScalableTarget(
    RID,
    1,
    20,
    scale_in_suspended=True,
    policies=(ScalingPolicy("celery-scaler/default/fallback-cpu", "StepScaling"),),
)
MARKED = {SCALABLE_TARGET: "celery-scaler/default"}


@pytest.mark.parametrize(
    ("target", "tags", "conflict"),
    [
        (None, {}, False),
        (replace(FOREIGN, policies=()), {}, False),  # a target alone drives nothing
        (FOREIGN, {}, True),
        (replace(FOREIGN, scale_in_suspended=True), {}, True),  # it still scales out
        (replace(FOREIGN, scale_out_suspended=True), {}, True),  # it still scales in
        (replace(FOREIGN, scale_in_suspended=True, scale_out_suspended=True), {}, False),
        (OWN, MARKED, False),  # the controller's own fallback (alarms apply)
        (OWN, {SCALABLE_TARGET: "other-controller/default"}, True),  # another's fallback
    ],
)
def test_which_targets_are_a_conflict(
    target: ScalableTarget | None, tags: dict[str, str], conflict: bool
) -> None:
    assert (foreign_scaling(target, tags, "celery-scaler") is not None) is conflict


def test_the_conflict_names_the_policies_and_what_still_runs() -> None:
    both = replace(FOREIGN, policies=(STEP, ScalingPolicy("cpu", "TargetTrackingScaling")))
    obs = Observation(
        broker=None,
        workers=None,
        service=ServiceObservation(2, 2, 0, False),
        foreign_scaling=replace(both, scale_in_suspended=True),
    )
    sentence = observed_conditions(obs)[Condition.CONFLICT]
    assert sentence.startswith(
        "Application Auto Scaling also drives service/prod/celery-worker: scaling policies "
        "'worker-scale-out' (StepScaling), 'cpu' (TargetTrackingScaling), not created by "
        "celery-scaler, and its scale-out is not suspended; the pool holds"
    )
    assert "celery-scaler takeover --pool <name> --apply" in sentence


def test_the_takeover_tag_reads_back_and_a_strange_one_is_not_trusted() -> None:
    value = takeover_tag(True, False, "2026-01-01T12:00:00Z")
    assert value == "in=true out=false at=2026-01-01T12:00:00Z"
    assert parse_takeover(value) == (True, False)
    assert parse_takeover("in=false out=false") == (False, False)
    assert parse_takeover(None) is None
    assert parse_takeover("in=maybe out=false") is None


def test_resource_ids_take_names_or_arns() -> None:
    cluster = "arn:aws:ecs:eu-west-1:123456789012:cluster/prod"
    service = "arn:aws:ecs:eu-west-1:123456789012:service/prod/celery-worker"
    assert resource_id(cluster, service) == RID == resource_id("prod", "celery-worker")


# --- takeover: the plan ----------------------------------------------------------------------

POOL = design_pool()  # prod/celery-worker, named default
NOW = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def service(**tags: str) -> ServiceObservation:
    return ServiceObservation(4, 4, 0, False, tags=tags, arn="arn:service")


def test_takeover_suspends_both_ways_and_records_the_state_before() -> None:
    planned = plan(POOL, "celery-scaler", replace(FOREIGN, scale_in_suspended=True), service(), NOW)
    assert (planned.nothing, planned.before, planned.after) == (None, (True, False), (True, True))
    assert planned.tag == "in=true out=false at=2026-01-01T12:00:00Z"
    assert (planned.changes_target, planned.untag) == (True, False)


@pytest.mark.parametrize(
    ("target", "tags", "why"),
    [
        (None, {}, "has no Application Auto Scaling scalable target"),
        (OWN, MARKED, "this controller's own fallback"),
        (replace(FOREIGN, policies=()), {}, "has no scaling policy"),
        (
            replace(FOREIGN, scale_in_suspended=True, scale_out_suspended=True),
            {},
            "already suspended, in and out",
        ),
    ],
)
def test_takeover_with_nothing_to_do_says_why(
    target: ScalableTarget | None, tags: dict[str, str], why: str
) -> None:
    planned = plan(POOL, "celery-scaler", target, service(**tags), NOW)
    assert why in str(planned.nothing)
    assert describe(planned, applied=False, region=None) == [f"nothing to do: {planned.nothing}."]


def test_a_second_takeover_keeps_the_state_recorded_by_the_first() -> None:
    # Terraform resumed the target since: undo must still restore what people had.
    tags = {TAKEOVER: "in=false out=false at=2025-12-01T00:00:00Z"}
    planned = plan(POOL, "celery-scaler", FOREIGN, service(**tags), NOW)
    assert (planned.tag, planned.after) == (None, (True, True))


def test_undo_restores_the_recorded_state_and_removes_the_tag() -> None:
    suspended = replace(FOREIGN, scale_in_suspended=True, scale_out_suspended=True)
    tags = {TAKEOVER: "in=true out=false at=2025-12-01T00:00:00Z"}
    planned = plan(POOL, "celery-scaler", suspended, service(**tags), NOW, undo=True)
    assert (planned.before, planned.after, planned.untag, planned.tag) == (
        (True, True),
        (True, False),
        True,
        None,
    )
    nothing = plan(POOL, "celery-scaler", suspended, service(), NOW, undo=True)
    assert "no takeover is recorded on service/prod/celery-worker" in str(nothing.nothing)


# --- takeover: the writes and what it says ---------------------------------------------------


@dataclass
class Recorder:
    """Both takeover ports, writing to one shared list of calls."""

    calls: list[str] = field(default_factory=list)

    def target(self, resource_id: str) -> ScalableTarget | None:
        return FOREIGN

    def set_suspended(self, target: ScalableTarget, scale_in: bool, scale_out: bool) -> None:
        self.calls.append(f"register in={scale_in} out={scale_out}")

    def describe(self, cluster: str, service: str) -> ServiceObservation:
        raise AssertionError("not read by apply")

    def write_tags(self, arn: str, tags: Mapping[str, str], remove: Sequence[str]) -> None:
        self.calls.append(f"tag {arn} set={dict(tags)} remove={list(remove)}")


def test_takeover_writes_the_tag_before_suspending_and_undo_the_other_way_round() -> None:
    store = Recorder()
    apply(plan(POOL, "celery-scaler", FOREIGN, service(), NOW), store, store)
    recorded = "in=false out=false at=2026-01-01T12:00:00Z"
    assert store.calls == [
        f"tag arn:service set={{'{TAKEOVER}': '{recorded}'}} remove=[]",
        "register in=True out=True",
    ]
    store.calls.clear()
    suspended = replace(FOREIGN, scale_in_suspended=True, scale_out_suspended=True)
    undo = plan(POOL, "celery-scaler", suspended, service(**{TAKEOVER: recorded}), NOW, undo=True)
    apply(undo, store, store)
    assert store.calls == [
        "register in=False out=False",
        f"tag arn:service set={{}} remove=['{TAKEOVER}']",
    ]
    store.calls.clear()
    apply(Takeover("default", RID, False, None, "arn:service", nothing="none"), store, store)
    assert store.calls == []


def test_the_dry_run_says_what_it_would_do_and_how_to_undo_it() -> None:
    lines = describe(
        plan(POOL, "celery-scaler", FOREIGN, service(), NOW), applied=False, region="eu-west-1"
    )
    assert lines[0] == (
        "service/prod/celery-worker: scaling policy worker-scale-out (StepScaling, triggered by "
        "worker-queue-high), not created by celery-scaler."
    )
    assert lines[2].startswith(
        "would register the scalable target with DynamicScalingInSuspended=true, "
        "DynamicScalingOutSuspended=true: dynamic scaling suspended; policies, alarms"
    )
    assert "dry run: nothing changed; run again with --apply to do it." in lines
    assert (
        "to undo: celery-scaler takeover --pool default --undo --apply, or: "
        "aws application-autoscaling register-scalable-target --region eu-west-1 "
        "--service-namespace ecs --resource-id service/prod/celery-worker "
        "--scalable-dimension ecs:service:DesiredCount --suspended-state "
        "DynamicScalingInSuspended=false,DynamicScalingOutSuspended=false,"
        "ScheduledScalingSuspended=false"
    ) in lines
    applied = describe(
        plan(POOL, "celery-scaler", FOREIGN, service(), NOW), applied=True, region=None
    )
    assert not any(line.startswith(("would", "dry run")) for line in applied)
