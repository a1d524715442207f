"""Standalone's /status document: the phase, the instance, the setup, the cost and the budget."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from remote_ollama.core.cost import STORAGE_KEYS
from remote_ollama.engine.status_doc import status_document
from remote_ollama.spec.vocabulary import ConditionType

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
    volume = next((x for x in d.conditions if x.type == ConditionType.MODEL_VOLUME), None) if d else None
    if volume is not None:  # spec.coldStart.modelVolume: the volume, or why there is none
        out["model_volume"] = {
            "ready": volume.status,
            "reason": str(volume.reason),
            "message": volume.message,
        }
    if c.saved.cost:
        spent = c.saved.cost
        out["cost"] = {
            k: spent.get(k) for k in ("month", "runningHoursThisMonth", "estimatedSpend", "currency")
        }
        # a baked template's and a model volume's storage, only when there is one
        out["cost"].update({k: v for k, v in spent.items() if k.endswith(STORAGE_KEYS) and v is not None})
    if c.budget_refusal:
        out["budget_exceeded"] = c.budget_refusal
    if c.error:
        out["error"] = c.error
    return out
