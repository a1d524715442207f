"""One status vocabulary: every cloud error speaks it, and `permanent` is the opposite of `retryable`."""

from __future__ import annotations

import re

from crd_schema import openapi_schema
from lifecycle_steps import T0, down_mem, inst, ready_mem, step

from remote_ollama.cloud import errors
from remote_ollama.core.types import Activity, Health, Memory
from remote_ollama.spec.vocabulary import ConditionType, Reason


def test_cloud_errors_use_the_vocabulary_and_retryable_is_not_permanent() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.CloudError)]
    assert len(classes) >= 10
    for cls in classes:
        exc = cls("x", family="f", zone="z") if issubclass(cls, errors.QuotaError) else cls("x")
        assert isinstance(exc.reason, Reason), cls
        assert exc.retryable is not exc.reason.permanent, cls
    for reason in Reason:
        assert errors.CloudError("x", reason=reason).retryable is not reason.permanent


def test_what_needs_a_person_is_permanent_and_what_passes_is_not() -> None:
    for r in ("InstanceTypeNotAuthorized", "QuotaExceeded", "InvalidSpec", "InvalidCredentials"):
        assert Reason(r).permanent, r
    for r in ("InsufficientCapacity", "CloudUnavailable", "OperationTimeout", "BudgetExceeded"):
        assert not Reason(r).permanent, r
    assert Reason.of("NotAuthorized") is None  # the old proxy list's word, never written by anyone


def test_reasons_and_types_fit_the_crd() -> None:
    cond = openapi_schema()["properties"]["status"]["properties"]["conditions"]["items"]["properties"]
    pattern = re.compile(cond["reason"]["pattern"])
    assert all(pattern.match(r) for r in Reason)
    described = openapi_schema()["properties"]["status"]["properties"]["conditions"]["description"]
    assert all(t in described for t in ConditionType)


def test_every_reason_the_round_writes_is_a_member_of_the_vocabulary() -> None:
    """Decisions, their actions and conditions carry members, never bare strings, through a life:
    nothing -> create -> booting -> pulling -> ready -> idle -> stopped -> wake -> transitional -> error."""
    later = 31.0
    decisions = [
        step(None, memory=Memory(created_at=T0)),
        step(None, memory=Memory(created_at=T0), blocked="credentials Secret 'c' not found"),
        step(inst("running"), health=None),
        step(inst("running"), health=Health("0.33.0", ())),
        step(inst("running")),
        step(inst("running"), minutes=later),
        step(inst("stopped"), memory=down_mem()),
        step(inst("stopped"), memory=down_mem(), activity=Activity(wake_requested=T0)),
        step(inst("migrating"), memory=ready_mem()),
        step(inst("rebooting"), memory=ready_mem()),
        step(inst("error")),
    ]
    for d in decisions:
        assert type(d.reason) is Reason, d.reason
        assert all(type(c.reason) is Reason for c in d.conditions), d.conditions
        assert all(a.reason is None or type(a.reason) is Reason for a in d.actions), d.actions
    assert {"Creating", "Blocked", "Idle", "InstanceMigrating", "InstanceTransitioning"} <= {
        d.reason for d in decisions
    }


def test_an_events_type_comes_from_its_reason_and_synonyms_are_merged() -> None:
    for r in (
        "InvalidSpec",
        "InvalidCredentials",
        "MalformedAnnotation",
        "CloudObjectsAbandoned",
        "InternalError",
        "ForeignInstanceIgnored",
        "UnrecordedInstanceIgnored",
        "UnrecordedVolumeIgnored",
    ):
        assert Reason(r).warning, r
    for r in ("Ready", "Idle", "Creating", "Deleted", "OrphanDeleted", "Suspended"):
        assert not Reason(r).warning, r
    assert Reason.of("CredentialsInvalid") is None  # one word for bad credentials: InvalidCredentials
