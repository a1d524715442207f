"""Running time and estimated spend of a resource's VM, and the budget that caps them (pure).

The shells feed `observe()` with what they saw (the instance type billed, or None) at each round;
the interval since the previous observation is credited to what was seen then, split at UTC day
and month boundaries. Spend is derived from the seconds per instance type and a price table, so
a corrected price table re-prices the month. An estimate from list prices, not a bill.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from remote_ollama.spec.vocabulary import Reason

# Instance states in which Exoscale holds (and bills) the GPU.
BILLABLE_STATES = frozenset({"starting", "running", "stopping", "migrating"})

# Hourly list prices from docs/design.md section 6 (the same figures in EUR, CHF and USD).
DEFAULT_CURRENCY = "EUR"
DEFAULT_PER_HOUR: dict[str, float] = {
    "gpua5000.small": 1.340, "gpua5000.medium": 2.480, "gpua5000.large": 4.557,
    "gpu3080ti.small": 0.924, "gpu3080ti.medium": 1.709, "gpu3080ti.large": 3.140,
    "gpu3.small": 2.133, "gpu3.medium": 4.267, "gpu3.large": 8.533, "gpu3.huge": 17.067,
    "gpu2.small": 1.375, "gpu2.medium": 2.014, "gpu2.large": 2.653, "gpu2.huge": 3.319,
}  # fmt: skip
log = logging.getLogger("remote_ollama")
PRICES_ENV = "REMOTE_OLLAMA_PRICES"


# Storage of a private template and of a block-storage volume (spec.coldStart), per GB and month:
# placeholders (Exoscale's storage prices were not at hand), set yours with REMOTE_OLLAMA_PRICES'
# templateGBMonth and volumeGBMonth.
DEFAULT_TEMPLATE_GB_MONTH = 0.03
DEFAULT_VOLUME_GB_MONTH = 0.10


@dataclass(frozen=True)
class PriceTable:
    currency: str = DEFAULT_CURRENCY
    per_hour: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PER_HOUR))
    template_gb_month: float = DEFAULT_TEMPLATE_GB_MONTH
    volume_gb_month: float = DEFAULT_VOLUME_GB_MONTH

    def hourly(self, instance_type: str) -> float:
        """Price per running hour; 0 for a type the table does not know (it then costs nothing here)."""
        return float(self.per_hour.get(instance_type, 0.0))


def parse_prices(text: str | None) -> PriceTable:
    """`{"currency": "EUR", "perHour": {"gpua5000.small": 1.34}}`; empty means the built-in table.

    A given table replaces the built-in one whole: mixing currencies would make the sum meaningless.
    """
    if text is None or not text.strip():
        return PriceTable()
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{PRICES_ENV} must be a JSON object with currency and perHour")
    per_hour = raw.get("perHour", {})
    if not isinstance(per_hour, dict):
        raise ValueError(f"{PRICES_ENV}.perHour must map <family>.<size> to a price per hour")
    table: dict[str, float] = {}
    for name, price in per_hour.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0 or math.isnan(price):
            raise ValueError(f"{PRICES_ENV}.perHour.{name} must be a number >= 0: {price!r}")
        table[str(name)] = float(price)
    currency = raw.get("currency", DEFAULT_CURRENCY)
    if not isinstance(currency, str) or not currency:
        raise ValueError(f"{PRICES_ENV}.currency must be a currency code such as EUR")
    return PriceTable(
        currency,
        table,
        _rate(raw, "templateGBMonth", DEFAULT_TEMPLATE_GB_MONTH),
        _rate(raw, "volumeGBMonth", DEFAULT_VOLUME_GB_MONTH),
    )


def _rate(raw: dict[str, Any], key: str, default: float) -> float:
    """A storage price per GB and month of the table (`default` when not given)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or math.isnan(value):
        raise ValueError(f"{PRICES_ENV}.{key} must be a number >= 0: {value!r}")
    return float(value)


_loaded: tuple[str | None, PriceTable] | None = None


def prices_from(env: Mapping[str, str]) -> PriceTable:
    """The one price loader: the table of $REMOTE_OLLAMA_PRICES (the chart's `prices`), else the
    built-in one (a bad table is logged and ignored); parsed again only when the text changes."""
    global _loaded
    text = env.get(PRICES_ENV)
    if _loaded is None or _loaded[0] != text:
        try:
            table = parse_prices(text)
        except ValueError as exc:
            log.warning("ignoring %s (%s); using the built-in list prices", PRICES_ENV, exc)
            table = PriceTable()
        _loaded = (text, table)
    return _loaded[1]


def month_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def next_midnight(at: datetime) -> datetime:
    utc = at.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)


def next_month(at: datetime) -> datetime:
    utc = at.astimezone(UTC)
    return datetime(utc.year + (utc.month == 12), utc.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CostMeter:
    """Seconds billed this UTC month (per instance type) and today, and the last observation."""

    month: str = ""
    seconds_by_type: Mapping[str, float] = field(default_factory=dict)
    day: str = ""
    seconds_today: float = 0.0
    observed_at: datetime | None = None
    running_type: str | None = None  # what was billed at observed_at (None: nothing)

    @property
    def seconds_this_month(self) -> float:
        return sum(self.seconds_by_type.values())

    def spend(self, prices: PriceTable) -> float:
        return sum(s / 3600.0 * prices.hourly(t) for t, s in self.seconds_by_type.items())


def _roll(meter: CostMeter, at: datetime) -> CostMeter:
    """Start a new month and/or day when `at` is past the meter's."""
    if meter.month != month_of(at):
        meter = replace(meter, month=month_of(at), seconds_by_type={})
    if meter.day != day_of(at):
        meter = replace(meter, day=day_of(at), seconds_today=0.0)
    return meter


def observe(meter: CostMeter, at: datetime, running_type: str | None) -> CostMeter:
    """Credit the time since the last observation to what ran then; remember what runs now."""
    start, billed = meter.observed_at, meter.running_type
    if start is not None and billed and at > start:
        t = start
        while t < at:
            meter = _roll(meter, t)
            until = min(next_midnight(t), at)
            seconds = (until - t).total_seconds()
            by_type = dict(meter.seconds_by_type)
            by_type[billed] = by_type.get(billed, 0.0) + seconds
            meter = replace(meter, seconds_by_type=by_type, seconds_today=meter.seconds_today + seconds)
            t = until
    meter = _roll(meter, at)
    return replace(meter, observed_at=at, running_type=running_type)


def billed_type(state: str | None, instance_type: str) -> str | None:
    """What an instance in `state` is billed as right now (None when it holds no GPU)."""
    return instance_type if state in BILLABLE_STATES and instance_type else None


# -- status (camelCase, as the CRD declares status.cost) ------------------------------------------------


def to_status(meter: CostMeter, prices: PriceTable) -> dict[str, Any]:
    return {
        "month": meter.month,
        "runningHoursThisMonth": round(meter.seconds_this_month / 3600.0, 2),
        "estimatedSpend": round(meter.spend(prices), 2),
        "currency": prices.currency,
        "day": meter.day,
        "runningHoursToday": round(meter.seconds_today / 3600.0, 2),
        "secondsByType": [
            {"instanceType": t, "seconds": round(s, 3)} for t, s in sorted(meter.seconds_by_type.items())
        ],
        "secondsToday": round(meter.seconds_today, 3),
        "observedAt": meter.observed_at.astimezone(UTC).isoformat() if meter.observed_at else None,
        "runningType": meter.running_type,
    }


@dataclass(frozen=True)
class Storage:
    """What the resource keeps besides its VM (spec.coldStart), in GB: billed whether a VM runs or not."""

    template_gb: float = 0.0  # its baked template(s)
    volume_gb: float = 0.0  # its model volume


STORAGE_KEYS = ("StorageGB", "MonthlySpend")  # status.cost's storage fields end so (after the kind)


def storage_status(storage: Storage, prices: PriceTable) -> dict[str, Any]:
    """status.cost's part for the baked template and the model volume: sizes and monthly cost
    (None where there is none)."""
    out: dict[str, Any] = {}
    for kind, gb, rate in (
        ("template", storage.template_gb, prices.template_gb_month),
        ("volume", storage.volume_gb, prices.volume_gb_month),
    ):
        there = gb > 0
        out[f"{kind}{STORAGE_KEYS[0]}"] = round(gb, 1) if there else None
        out[f"{kind}{STORAGE_KEYS[1]}"] = round(gb * rate, 2) if there else None
    return out


def from_status(raw: Any) -> CostMeter:
    """The meter back from status.cost (or the state file); an empty meter for anything unreadable."""
    if not isinstance(raw, dict):
        return CostMeter()
    try:
        observed = raw.get("observedAt")
        at = datetime.fromisoformat(str(observed).replace("Z", "+00:00")) if observed else None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        by_type = {str(e["instanceType"]): float(e["seconds"]) for e in raw.get("secondsByType") or []}
        return CostMeter(
            month=str(raw.get("month") or ""),
            seconds_by_type=by_type,
            day=str(raw.get("day") or ""),
            seconds_today=float(raw.get("secondsToday") or 0.0),
            observed_at=at,
            running_type=raw.get("runningType") or None,
        )
    except (TypeError, ValueError, KeyError):
        return CostMeter()


def combined(meters: list[CostMeter], at: datetime) -> CostMeter:
    """A replicated endpoint's meter: its replicas' seconds of the month and day of `at`, added up
    (the budget caps the endpoint, not each VM)."""
    rolled = [_roll(m, at) for m in meters]
    by_type: dict[str, float] = {}
    for m in rolled:
        for t, secs in m.seconds_by_type.items():
            by_type[t] = by_type.get(t, 0.0) + secs
    return CostMeter(
        month=month_of(at),
        seconds_by_type=by_type,
        day=day_of(at),
        seconds_today=sum(m.seconds_today for m in rolled),
        observed_at=max((m.observed_at for m in rolled if m.observed_at), default=None),
        running_type=next((m.running_type for m in rolled if m.running_type), None),
    )


# -- budget -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetVerdict:
    """`exceeded`: why waking is refused (None: within budget). `recheck_after`: when that may change."""

    exceeded: str | None = None
    recheck_after: float | None = None
    resets_at: datetime | None = None
    reason: Reason = Reason.BUDGET_EXCEEDED  # whose cap: the resource's budget or its namespace's


def stricter(own: BudgetVerdict, other: BudgetVerdict | None) -> BudgetVerdict:
    """Two caps at once (the resource's and its namespace's): refused when either refuses (the
    other's words first); else looked at again when the sooner of the two may be reached."""
    if other is None:
        return own
    for verdict in (other, own):
        if verdict.exceeded:
            return verdict
    waits = [w for w in (own.recheck_after, other.recheck_after) if w is not None]
    return BudgetVerdict(None, min(waits) if waits else None)


def running_rate(meters: Sequence[CostMeter], prices: PriceTable) -> float:
    """What the running ones cost per hour together."""
    return sum(prices.hourly(m.running_type) for m in meters if m.running_type)


def budget_verdict(
    meter: CostMeter,
    max_hours_per_day: float | None,
    max_monthly_spend: float | None,
    prices: PriceTable,
    now: datetime,
    *,
    running: int = 1,
    rate: float | None = None,
) -> BudgetVerdict:
    """Over a cap: refuse until the day (or month) resets. Under: look again when a cap would be hit.
    `meter` may be several replicas' (`combined`): `running` of them run, at `rate` per hour
    together (default: one, at its type's price)."""
    hours_today = meter.seconds_today / 3600.0
    spend = meter.spend(prices)
    over_spend = max_monthly_spend is not None and spend >= max_monthly_spend
    if over_spend or (max_hours_per_day is not None and hours_today >= max_hours_per_day):
        resets = next_month(now) if over_spend else next_midnight(now)
        what = (
            f"estimated spend {spend:.2f} {prices.currency} this month reached "
            f"spec.budget.maxMonthlySpend {max_monthly_spend:.2f}"
            if over_spend
            else f"{hours_today:.2f} running hours today reached spec.budget.maxRunningHoursPerDay {max_hours_per_day:g}"
        )
        stamp = resets.strftime("%Y-%m-%dT%H:%M:%SZ")
        return BudgetVerdict(
            f"budget exceeded: {what}; waking is refused until {stamp}",
            (resets - now).total_seconds(),
            resets,
        )
    if not meter.running_type:
        return BudgetVerdict()
    waits: list[float] = []
    if max_hours_per_day is not None:
        waits.append((max_hours_per_day - hours_today) * 3600.0 / max(running, 1))
    rate = prices.hourly(meter.running_type) if rate is None else rate
    if max_monthly_spend is not None and rate > 0:
        waits.append((max_monthly_spend - spend) / rate * 3600.0)
    return BudgetVerdict(None, min(waits) if waits else None)


def account(
    stored: Any,
    state: str | None,
    instance_type: str,
    max_hours_per_day: float | None,
    max_monthly_spend: float | None,
    prices: PriceTable,
    now: datetime,
    others: Sequence[Any] = (),
) -> tuple[CostMeter, BudgetVerdict]:
    """The round's cost step (both shells): the meter from its stored form (status.cost or the state
    file) credited up to `now` with what runs, and the budget's verdict before deciding.

    `instance_type` is what the instance reports, else what the spec asks for. `others`: the other
    replicas' stored meters: the budget is the endpoint's, so their time and spend count too."""
    meter = observe(from_status(stored), now, billed_type(state, instance_type) if state else None)
    if not others:
        return meter, budget_verdict(meter, max_hours_per_day, max_monthly_spend, prices, now)
    # each other replica credited up to now with what it ran when it last looked
    meters = [meter, *(observe(m, now, m.running_type) for m in map(from_status, others))]
    running = sum(1 for m in meters if m.running_type)
    verdict = budget_verdict(
        combined(meters, now),
        max_hours_per_day,
        max_monthly_spend,
        prices,
        now,
        running=running,
        rate=running_rate(meters, prices),
    )
    return meter, verdict
