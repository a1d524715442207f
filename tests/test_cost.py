"""The cost meter and budget verdicts: a simulated month, price tables, caps and resets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from remote_ollama.core import cost
from remote_ollama.core.cost import (
    DEFAULT_PER_HOUR,
    CostMeter,
    PriceTable,
    budget_verdict,
    observe,
    parse_prices,
)

PRICES = PriceTable("EUR", {"gpua5000.small": 1.34, "gpua30.medium": 2.2})
T = "gpua5000.small"


def at(day: int, hour: float, month: int = 3) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC) + timedelta(hours=hour)


def test_simulated_month_matches_to_the_cent() -> None:
    """Workdays 09:00-17:30 in March 2025 (21 workdays), observed every 7 minutes while up."""
    meter = CostMeter()
    day = at(1, 0)
    while day.month == 3:
        if day.weekday() < 5:
            t = day + timedelta(hours=9)
            end = day + timedelta(hours=17.5)
            meter = observe(meter, t, T)
            while t < end:
                t = min(t + timedelta(minutes=7), end)
                meter = observe(meter, t, T if t < end else None)
        else:
            meter = observe(meter, day + timedelta(hours=12), None)
        day += timedelta(days=1)
    status = cost.to_status(meter, PRICES)
    assert status["month"] == "2025-03"
    assert status["runningHoursThisMonth"] == 21 * 8.5 == 178.5
    assert status["estimatedSpend"] == 239.19  # 178.5 h x 1.34
    assert status["currency"] == "EUR"


def test_interval_is_split_at_midnight_and_month_end() -> None:
    meter = observe(CostMeter(), at(31, 22), T)
    meter = observe(meter, at(1, 1, month=4), T)  # 3 h running across the month turn
    assert meter.month == "2025-04" and meter.day == "2025-04-01"
    assert meter.seconds_this_month == 3600 and meter.seconds_today == 3600
    assert round(meter.spend(PRICES), 2) == 1.34


def test_not_running_costs_nothing_and_mixed_types_are_priced_each() -> None:
    meter = observe(CostMeter(), at(3, 8), None)
    meter = observe(meter, at(3, 10), T)  # stopped until now: nothing
    assert meter.seconds_this_month == 0
    meter = observe(meter, at(3, 11), "gpua30.medium")  # 1 h gpua5000
    meter = observe(meter, at(3, 13), None)  # 2 h gpua30
    assert meter.seconds_by_type == {T: 3600.0, "gpua30.medium": 7200.0}
    assert round(meter.spend(PRICES), 2) == round(1.34 + 4.4, 2)
    assert cost.to_status(meter, PRICES)["runningHoursToday"] == 3.0


def test_clock_going_back_credits_nothing() -> None:
    meter = observe(CostMeter(), at(3, 10), T)
    meter = observe(meter, at(3, 9), T)
    assert meter.seconds_this_month == 0 and meter.observed_at == at(3, 9)


def test_status_round_trip() -> None:
    meter = observe(observe(CostMeter(), at(3, 10), T), at(3, 11, month=3), T)
    back = cost.from_status(json.loads(json.dumps(cost.to_status(meter, PRICES))))
    assert back == meter
    assert cost.from_status({"secondsByType": "bad"}) == CostMeter()
    assert cost.from_status(None) == CostMeter()


def test_billed_type() -> None:
    assert cost.billed_type("running", T) == T
    assert cost.billed_type("starting", T) == T
    assert cost.billed_type("stopped", T) is None
    assert cost.billed_type(None, T) is None


def test_price_table_from_env() -> None:
    assert parse_prices(None).hourly("gpua5000.small") == DEFAULT_PER_HOUR["gpua5000.small"]
    assert parse_prices("").currency == "EUR"
    table = parse_prices('{"currency": "CHF", "perHour": {"gpu2.small": 1.0}}')
    assert table.currency == "CHF" and table.hourly("gpu2.small") == 1.0
    assert table.hourly("gpua5000.small") == 0.0  # a given table replaces the defaults whole
    for bad in ('["x"]', '{"perHour": []}', '{"perHour": {"a.b": -1}}', '{"currency": 3}', "{"):
        with pytest.raises(ValueError):
            parse_prices(bad)


def test_budget_daily_cap_refuses_until_midnight() -> None:
    meter = observe(observe(CostMeter(), at(3, 8), T), at(3, 11), T)
    v = budget_verdict(meter, 3, None, PRICES, at(3, 11))
    assert v.exceeded and "maxRunningHoursPerDay" in v.exceeded
    assert v.resets_at == at(4, 0) and v.recheck_after == 13 * 3600
    assert budget_verdict(meter, 4, None, PRICES, at(3, 11)) == cost.BudgetVerdict(None, 3600.0)


def test_budget_monthly_spend_cap() -> None:
    meter = observe(observe(CostMeter(), at(3, 8), T), at(3, 18), T)  # 10 h = 13.40
    v = budget_verdict(meter, None, 13.4, PRICES, at(3, 18))
    assert v.exceeded and "maxMonthlySpend" in v.exceeded and v.resets_at == at(1, 0, month=4)
    within = budget_verdict(meter, None, 14.74, PRICES, at(3, 18))
    assert within.exceeded is None and within.recheck_after == pytest.approx(3600)


def test_budget_unset_or_stopped_needs_no_recheck() -> None:
    meter = observe(CostMeter(), at(3, 8), None)
    assert budget_verdict(meter, None, None, PRICES, at(3, 8)) == cost.BudgetVerdict()
    assert budget_verdict(meter, 5, 100, PRICES, at(3, 8)) == cost.BudgetVerdict()


def test_the_budget_counts_every_replica() -> None:
    """Three replicas of an endpoint: the caps hold for their time and spend together, and the
    next look comes as soon as all of them together would reach a cap."""
    now = at(10, 12)
    one = observe(observe(CostMeter(), at(10, 9), T), at(10, 11), T)  # 2 h so far, still running
    other = cost.to_status(observe(observe(CostMeter(), at(10, 10), T), at(10, 11), T), PRICES)  # 1 h, runs
    stopped = cost.to_status(observe(observe(CostMeter(), at(10, 8), T), at(10, 9), None), PRICES)  # 1 h
    stored = cost.to_status(one, PRICES)
    alone = cost.account(stored, "running", T, 6, None, PRICES, now)[1]
    assert alone.exceeded is None and alone.recheck_after == pytest.approx(3 * 3600)  # 3 h of its own
    meter, shared = cost.account(stored, "running", T, 6, None, PRICES, now, [other, stopped])
    assert meter.seconds_today == pytest.approx(3 * 3600)  # its own meter stays its own (status per member)
    # together: 3 + 2 (the other, credited up to now) + 1 = 6 h today: the cap is reached
    assert shared.exceeded is not None and "6.00 running hours today" in shared.exceeded
    # an hour earlier: 4 h together, two running: the cap is 1 h away
    early = cost.account(stored, "running", T, 6, None, PRICES, at(10, 11), [other, stopped])[1]
    assert early.exceeded is None and early.recheck_after == pytest.approx(3600)
    spend = cost.account(stored, "running", T, None, 8.0, PRICES, at(10, 11), [other, stopped])[1]
    assert spend.exceeded is None  # 4 h x 1.34 = 5.36: (8 - 5.36) / (2 x 1.34) h left
    assert spend.recheck_after == pytest.approx((8 - 4 * 1.34) / (2 * 1.34) * 3600)
