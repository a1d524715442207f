"""The operator-mode proxy refuses at once (a 503 with the reason) instead of holding requests
for a wake the operator cannot perform: budget, quota, credentials. Transient trouble still holds."""

from datetime import UTC, datetime

from remote_ollama.core.backoff import UNREACHABLE_GRACE
from remote_ollama.kube.proxy_main import refusal_from
from remote_ollama.proxy.interfaces import Refusal
from remote_ollama.spec.vocabulary import Reason


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_permanent_reasons_refuse_with_their_message() -> None:
    quota = {
        "phase": "Failed",
        "conditions": [cond("Ready", "False", "QuotaExceeded", "GPU quota exhausted")],
    }
    assert refusal_from(quota) == Refusal("GPU quota exhausted", Reason.QUOTA_EXCEEDED)
    creds = {"conditions": [cond("CredentialsValid", "False", "InvalidCredentials", "Secret 'x' not found")]}
    assert refusal_from(creds) == Refusal("Secret 'x' not found", Reason.INVALID_CREDENTIALS)
    # the adapter's own words, as the operator writes them (the old list said "NotAuthorized")
    for reason in (
        "InstanceTypeNotAuthorized",
        "InvalidSpec",
        "PolicyViolation",
        "TemplateNotFound",
        "InvalidCredentials",
    ):
        refused = refusal_from({"conditions": [cond("Ready", "False", reason, "why")]})
        assert refused is not None and refused.reason == reason
    budget = {"conditions": [cond("BudgetExceeded", "True", "MonthlySpend", "budget exceeded: 100 EUR")]}
    assert refusal_from(budget) == Refusal("budget exceeded: 100 EUR", Reason.BUDGET_EXCEEDED)


def test_transient_or_healthy_states_do_not_refuse() -> None:
    assert refusal_from({}) is None
    assert (
        refusal_from({"conditions": [cond("Ready", "False", "InsufficientCapacity", "no GPU now")]}) is None
    )
    assert refusal_from({"conditions": [cond("Ready", "False", "NotReady", "starting")]}) is None
    # an unreachable cloud API is ridden through for the grace (a burst the next round outlives)
    young = {
        **cond("Ready", "False", "CloudUnavailable", "503 from API"),
        "lastTransitionTime": "2026-01-01T10:00:00Z",
    }
    assert refusal_from({"conditions": [young]}, datetime(2026, 1, 1, 10, 0, 14, tzinfo=UTC)) is None
    assert refusal_from({"conditions": [cond("Ready", "True", "Ready")]}) is None
    assert refusal_from({"conditions": [cond("BudgetExceeded", "False", "WithinBudget")]}) is None


def test_a_cloud_api_unreachable_past_the_grace_is_a_refusal_with_a_retry_after() -> None:
    down = {
        **cond(
            "Ready", "False", "CloudUnavailable", "Exoscale API unavailable: ConnectionError reaching h:1"
        ),
        "lastTransitionTime": "2026-01-01T10:00:00Z",
    }
    at = datetime(2026, 1, 1, 10, 0, 15, tzinfo=UTC)
    assert refusal_from({"conditions": [down]}, at) == Refusal(
        "Exoscale API unavailable: ConnectionError reaching h:1", Reason.CLOUD_UNAVAILABLE, UNREACHABLE_GRACE
    )
