"""A namespace's estimated spend this month across all its RemoteOllamas, against the platform
policy's `namespaceMonthlySpend` (pure; the operator keeps the meter, kube/operator/spend_ledger.py).

The meter is one `CostMeter` per resource uid, kept apart from each resource's `status.cost` (which
any status writer of the namespace can zero): a tenant can neither reset it by patching status nor
by deleting and re-creating a resource (the old uid's spend stays counted until the month ends).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from remote_ollama.spec.vocabulary import Reason

from . import cost

# a meter last seen running this long ago belongs to a resource gone without a last word
FORGOTTEN_AFTER = timedelta(days=31)


def replica_key(uid: str, index: int) -> str:
    """Replica `index`'s key: the resource's uid for replica 0 (the one VM of `max: 1`), `<uid>.r<i>`
    for the others, as each key meters one VM."""
    return uid + (f".r{index}" if index else "")


def of_resource(key: str, uid: str) -> bool:
    """Whether `key` meters one of resource `uid`'s VMs (any replica)."""
    return key == uid or key.startswith(uid + ".r")


def parse(data: Mapping[str, str]) -> dict[str, cost.CostMeter]:
    """The meters of a ledger's data (uid -> the JSON of `entry`); an unreadable one counts nothing."""
    meters: dict[str, cost.CostMeter] = {}
    for uid, text in data.items():
        try:
            meters[uid] = cost.from_status(json.loads(text))
        except ValueError:
            continue
    return meters


def entry(meter: cost.CostMeter, name: str, prices: cost.PriceTable) -> str:
    """One resource's line of the ledger (the status.cost shape, with its name for people)."""
    return json.dumps({"name": name, **cost.to_status(meter, prices)}, separators=(",", ":"))


def credited(meter: cost.CostMeter, now: datetime, running_type: str | None) -> cost.CostMeter:
    """`meter` credited up to `now` with what ran at its last observation; `running_type` from now on."""
    return cost.observe(meter, now, running_type)


def spent(meters: Mapping[str, cost.CostMeter], prices: cost.PriceTable, now: datetime) -> float:
    month = cost.month_of(now)
    return sum(m.spend(prices) for m in meters.values() if m.month == month)


def verdict(
    namespace: str,
    meters: Mapping[str, cost.CostMeter],
    cap: float,
    prices: cost.PriceTable,
    now: datetime,
) -> cost.BudgetVerdict:
    """Refused until next month once the namespace's spend reached `cap`; else looked at again when
    the VMs running now would reach it together."""
    total = spent(meters, prices, now)
    if total >= cap:
        resets = cost.next_month(now)
        return cost.BudgetVerdict(
            f"namespace spend cap reached: the RemoteOllamas of namespace {namespace} spent an estimated "
            f"{total:.2f} {prices.currency} this month, the platform policy's namespaceMonthlySpend is "
            f"{cap:.2f}; waking is refused until {resets.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            (resets - now).total_seconds(),
            resets,
            Reason.NAMESPACE_SPEND_CAP_REACHED,
        )
    month = cost.month_of(now)
    rate = sum(prices.hourly(m.running_type) for m in meters.values() if m.running_type and m.month == month)
    return cost.BudgetVerdict(None, (cap - total) / rate * 3600.0 if rate > 0 else None)


def stale(meters: Mapping[str, cost.CostMeter], now: datetime) -> list[str]:
    """Uids whose meter counts nothing any more: an earlier month, and not running (or not seen for
    a month: a resource deleted while its VM ran)."""
    month = cost.month_of(now)
    return sorted(
        uid
        for uid, m in meters.items()
        if m.month != month
        and (not m.running_type or m.observed_at is None or now - m.observed_at > FORGOTTEN_AFTER)
    )
