"""Standalone's /status document: the phase, the instance, the setup, the cost and the budget."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from remote_ollama.engine.status_doc import status_document

log = logging.getLogger("remote_ollama")


if TYPE_CHECKING:
    from .controller import LocalController


def standalone_status(c: LocalController) -> dict[str, Any]:
    """The /status document of a standalone controller."""
    d = c.decision
    phase = d.phase if d else c.saved.memory.phase
    out = status_document(
        c.spec,
        phase=phase,
        error=bool(c.error),
        instance_status=c.instance_state or "none",
        remote_url=d.endpoint if d else None,
        setup=c.setup,
    )
    if c.saved.cost:
        spent = c.saved.cost
        out["cost"] = {
            k: spent.get(k) for k in ("month", "runningHoursThisMonth", "estimatedSpend", "currency")
        }
        # a baked template's storage, only when there is one
        out["cost"].update(
            {k: spent[k] for k in ("templateStorageGB", "templateMonthlySpend") if spent.get(k) is not None}
        )
    if c.budget_refusal:
        out["budget_exceeded"] = c.budget_refusal
    if c.error:
        out["error"] = c.error
    return out
