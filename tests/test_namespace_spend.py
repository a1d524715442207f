"""The namespace spend cap's arithmetic (core/namespace_spend.py) and how its verdict travels: the
resources of a namespace share the platform policy's namespaceMonthlySpend, a month's spend counts
only in that month, the stricter of the two caps decides, and the proxy refuses with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remote_ollama.core import cost, namespace_spend
from remote_ollama.kube.proxy_main import refusal_from
from remote_ollama.proxy.interfaces import Refusal
from remote_ollama.spec.vocabulary import Reason

PRICES = cost.PriceTable("CHF", {"gpua5000.small": 1.5, "gpu3.huge": 17.0})
T0 = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)


def ran(hours: float, instance_type: str = "gpua5000.small", start: datetime = T0) -> cost.CostMeter:
    """A meter that saw `instance_type` running for `hours` from `start`, and still sees it."""
    meter = namespace_spend.credited(cost.CostMeter(), start, instance_type)
    return namespace_spend.credited(meter, start + timedelta(hours=hours), instance_type)


def test_the_resources_of_a_namespace_share_the_cap() -> None:
    now = T0 + timedelta(hours=4)
    alone = namespace_spend.verdict("team-a", {"a": ran(4)}, 10, PRICES, now)
    assert alone.exceeded is None  # 6 CHF of 10
    together = {"a": ran(4), "b": ran(1, start=now - timedelta(hours=1))}
    assert (
        namespace_spend.verdict("team-a", together, 10, PRICES, now).recheck_after == 3600 * 2.5 / 3.0
    )  # 7.5 CHF; 3 CHF/h
    over = namespace_spend.verdict("team-a", {"a": ran(4), "b": ran(3)}, 10, PRICES, now)
    assert over.reason is Reason.NAMESPACE_SPEND_CAP_REACHED
    assert over.exceeded == (
        "namespace spend cap reached: the RemoteOllamas of namespace team-a spent an estimated 10.50 CHF this "
        "month, the platform policy's namespaceMonthlySpend is 10.00; waking is refused until 2025-02-01T00:00:00Z"
    )
    assert over.resets_at == datetime(2025, 2, 1, tzinfo=UTC)


def test_the_next_month_starts_from_zero_and_old_keys_are_dropped() -> None:
    meters = {
        "a": ran(4),
        "b": ran(3),
        "gone": namespace_spend.credited(ran(3), T0 + timedelta(hours=3), None),
    }
    feb = datetime(2025, 2, 1, 0, 0, 1, tzinfo=UTC)
    assert namespace_spend.spent(meters, PRICES, feb) == 0.0  # January's spend is not February's
    meters["a"] = namespace_spend.credited(meters["a"], feb, "gpua5000.small")  # ran on across midnight
    assert namespace_spend.spent(meters, PRICES, feb) == pytest.approx(1.5 / 3600)  # one second of February
    assert namespace_spend.verdict("team-a", meters, 10, PRICES, feb).exceeded is None
    # a stopped meter of an earlier month counts nothing: dropped; a running one stays (its round comes)
    assert namespace_spend.stale(meters, feb) == ["gone"]
    assert namespace_spend.stale(meters, T0 + timedelta(hours=5)) == []  # deleted this month: still counted
    assert namespace_spend.stale({"b": meters["b"]}, feb + timedelta(days=32)) == ["b"]


def test_the_ledger_round_trips_and_ignores_what_it_cannot_read() -> None:
    text = namespace_spend.entry(ran(2), "granite", PRICES)
    meters = namespace_spend.parse({"uid-1": text, "uid-2": "{not json", "uid-3": "[]"})
    assert meters["uid-1"].spend(PRICES) == 3.0 and meters["uid-1"].running_type == "gpua5000.small"
    assert "uid-2" not in meters and meters["uid-3"] == cost.CostMeter()


def test_the_stricter_cap_decides() -> None:
    own = cost.BudgetVerdict(None, 7200.0)
    capped = namespace_spend.verdict("team-a", {"a": ran(7)}, 10, PRICES, T0 + timedelta(hours=7))
    assert cost.stricter(own, None) == own
    assert cost.stricter(own, capped) == capped
    own_over = cost.BudgetVerdict("budget exceeded: x", 60.0)
    assert cost.stricter(own_over, cost.BudgetVerdict(None, 10.0)) == own_over
    assert cost.stricter(own, cost.BudgetVerdict(None, 60.0)) == cost.BudgetVerdict(None, 60.0)


def test_the_proxy_refuses_with_the_namespace_reason() -> None:
    status = {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "NamespaceSpendCapReached", "message": "m"},
            {
                "type": "BudgetExceeded",
                "status": "True",
                "reason": "NamespaceSpendCapReached",
                "message": "m",
            },
        ]
    }
    assert refusal_from(status) == Refusal("m", Reason.NAMESPACE_SPEND_CAP_REACHED)
    assert Reason.NAMESPACE_SPEND_CAP_REACHED.warning and not Reason.NAMESPACE_SPEND_CAP_REACHED.permanent
