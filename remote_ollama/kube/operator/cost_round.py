"""The operator's side of cost and budget: meter from status.cost, observe, verdict, write back.

The round's cost step itself is `cost.account()` (both shells, in `Reconciler.look`); here the
operator keeps its price table and writes the result into status (`CostRound.add_to()`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from remote_ollama.core import cost
from remote_ollama.core.types import Condition
from remote_ollama.spec.vocabulary import ConditionType, Reason

from .status import conditions

log = logging.getLogger("remote_ollama.kube.operator")


def prices() -> cost.PriceTable:
    """The price table of the operator's environment."""
    return cost.prices_from(os.environ)


@dataclass(frozen=True)
class CostRound:
    meter: cost.CostMeter
    verdict: cost.BudgetVerdict
    prices: cost.PriceTable
    storage: cost.Storage = field(
        default_factory=cost.Storage
    )  # the baked template and model volume: a cost too

    def status(self) -> dict[str, Any]:
        return {
            **cost.to_status(self.meter, self.prices),
            **cost.storage_status(self.storage, self.prices),
        }

    def add_to(self, patch: dict[str, Any], body: dict[str, Any], now: datetime) -> None:
        """status.cost and the BudgetExceeded condition, into a status patch."""
        patch["cost"] = self.status()
        resets = self.verdict.resets_at if self.verdict.exceeded else None
        # the proxy's Retry-After for a refusal; None (merge patch) clears it
        patch["cost"]["budgetResetsAt"] = (
            resets.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if resets else None
        )
        meta = body.get("metadata") or {}
        previous = (body.get("status") or {}).get("conditions")
        generation = int(meta.get("generation") or 1)
        patch["conditions"] = [
            c for c in patch.get("conditions") or [] if c.get("type") != ConditionType.BUDGET_EXCEEDED
        ]
        patch["conditions"] += conditions(previous, [self.condition()], generation, now)
        if self.verdict.exceeded:  # Ready says whose cap keeps the VM down, not just NotReady
            for cond in patch["conditions"]:
                if cond.get("type") == ConditionType.READY and cond.get("status") == "False":
                    cond["reason"], cond["message"] = str(self.verdict.reason), self.verdict.exceeded

    def condition(self) -> Condition:
        if self.verdict.exceeded:
            # whose cap: the resource's budget (OverBudget) or its namespace's (NamespaceSpendCapReached)
            reason = (
                Reason.OVER_BUDGET if self.verdict.reason is Reason.BUDGET_EXCEEDED else self.verdict.reason
            )
            return Condition(ConditionType.BUDGET_EXCEEDED, True, reason, self.verdict.exceeded)
        return Condition(ConditionType.BUDGET_EXCEEDED, False, Reason.WITHIN_BUDGET, "")
