"""The operator-mode proxy refuses at once (seed 503 with the reason) instead of holding requests
for a wake the operator cannot perform: budget, quota, credentials. Transient trouble still holds."""

from remote_ollama.operator.proxy_main import refusal_from


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_permanent_reasons_refuse_with_their_message() -> None:
    quota = {
        "phase": "Failed",
        "conditions": [cond("Ready", "False", "QuotaExceeded", "GPU quota exhausted")],
    }
    assert refusal_from(quota) == "GPU quota exhausted"
    creds = {"conditions": [cond("CredentialsValid", "False", "CredentialsInvalid", "Secret 'x' not found")]}
    assert refusal_from(creds) == "Secret 'x' not found"
    budget = {"conditions": [cond("BudgetExceeded", "True", "MonthlySpend", "budget exceeded: 100 EUR")]}
    assert refusal_from(budget) == "budget exceeded: 100 EUR"


def test_transient_or_healthy_states_do_not_refuse() -> None:
    assert refusal_from({}) is None
    assert (
        refusal_from({"conditions": [cond("Ready", "False", "InsufficientCapacity", "no GPU now")]}) is None
    )
    assert refusal_from({"conditions": [cond("Ready", "False", "NotReady", "starting")]}) is None
    assert refusal_from({"conditions": [cond("Ready", "True", "Ready")]}) is None
    assert refusal_from({"conditions": [cond("BudgetExceeded", "False", "WithinBudget")]}) is None
