"""The operator-mode proxy refuses at once (a 503 with the reason) instead of holding requests
for a wake the operator cannot perform: budget, quota, credentials. Transient trouble still holds."""

from remote_ollama.kube.proxy_main import Refusal, refusal_from
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
    for reason in ("InstanceTypeNotAuthorized", "InvalidSpec", "TemplateNotFound", "InvalidCredentials"):
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
    assert refusal_from({"conditions": [cond("Ready", "False", "CloudUnavailable", "503 from API")]}) is None
    assert refusal_from({"conditions": [cond("Ready", "True", "Ready")]}) is None
    assert refusal_from({"conditions": [cond("BudgetExceeded", "False", "WithinBudget")]}) is None
