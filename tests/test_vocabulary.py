"""One status vocabulary: every cloud error speaks it, and `permanent` is the opposite of `retryable`."""

from __future__ import annotations

import re

from crd_schema import openapi_schema

from remote_ollama.cloud import errors
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
