"""The operator's side of capacity fallback: status.placement, the CapacityUnavailable condition, Events.

The choice itself is `placement.py` (pure); this module reads and writes it in the resource's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf

from remote_ollama.cloud.errors import CloudError
from remote_ollama.core import placement
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import ActionKind, Decision
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.kube.operator.events import event
from remote_ollama.spec.fields_row import ZONES
from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Phase, Reason

from .context import ResourceContext
from .status import conditions

EXHAUSTED_RETRY = 30.0  # seconds before starting over from the first placement


@dataclass(frozen=True)
class Placing:
    """This round's placement: `base` is the spec as written, `spec` the one to act on."""

    base: Spec
    state: placement.PlacementState

    @property
    def spec(self) -> Spec:
        return placement.current(self.base, self.state)

    def add_to(self, patch: dict[str, Any], body: dict[str, Any], now: datetime) -> None:
        """status.placement and the CapacityUnavailable condition (only when fallbacks are configured)."""
        if not self.base.placements:
            return
        state = placement.settled(self.state, (patch.get("instance") or {}).get("state") == "running")
        patch["placement"] = placement.to_status(self.base, state)
        set_condition(patch, body, placement.condition(self.base, state), now)


def placing_for(base: Spec, body: dict[str, Any]) -> Placing:
    return Placing(base, placement.from_status(base, (body.get("status") or {}).get("placement")))


def zones_used(base: Spec, raw: dict[str, Any]) -> list[str]:
    """Every zone a VM of the resource may be in, for its deletion: each placement's (the spec as
    written) and those status names for the resource and each replica (the list may have been
    edited since); a status zone counts only when it is a zone of the spec's vocabulary."""
    status = raw.get("status") or {}
    named = [_zone(status.get("placement"))]
    for item in status.get("replicas") or []:
        named += [_zone(item), _zone(item.get("placement") if isinstance(item, dict) else None)]
    return list(dict.fromkeys([c.zone for c in base.candidates()] + [z for z in named if z in ZONES]))


def _zone(raw: Any) -> Any:
    return raw.get("zone") if isinstance(raw, dict) else None


async def fall_back(
    ctx: ResourceContext,
    body: kopf.Body,
    placing: Placing,
    exc: CloudError,
    reconciler: Reconciler,
    instance: ObservedInstance | None,
    decision: Decision,
    now: datetime,
) -> float:
    """A create/start failed for capacity or quota: move on, say so, and come back soon."""
    step = await move_on(placing.base, placing.state, exc, reconciler, instance, decision)
    event(body, Reason.CAPACITY_UNAVAILABLE, step.message)
    patch: dict[str, Any] = {
        "phase": str(Phase.PROVISIONING),
        "message": step.message,
        "placement": placement.to_status(placing.base, step.state),
        "instance": None,
        "endpoint": None,
    }
    cond = placement.condition(placing.base, step.state)
    patch["conditions"] = [c for c in body.status.get("conditions") or [] if c.get("type") != cond.type]
    set_condition(patch, dict(body), cond, now)
    await ctx.patch_status(patch)
    return EXHAUSTED_RETRY if step.exhausted else 1.0


async def move_on(
    base: Spec,
    state: placement.PlacementState,
    exc: CloudError,
    reconciler: Reconciler,
    instance: ObservedInstance | None,
    decision: Decision,
) -> placement.Fallback:
    """The next placement after a capacity or quota refusal (`placement.after_failure`), for the one
    VM and for each replica alike. A stopped VM that could not start stays where it is: it is
    deleted, or it would be left behind in the old zone (its model volume is detached first, kept
    there and deleted with the resource)."""
    step = placement.after_failure(base, state, exc.reason)
    started = any(a.kind is ActionKind.START_INSTANCE for a in decision.actions)
    if started and instance is not None and len(base.candidates()) > 1:
        await reconciler.delete_instance(instance, instance.id)
    await reconciler.store.moved(placement.current(base, step.state).zone)  # its next create is there
    return step


def set_condition(patch: dict[str, Any], body: dict[str, Any], cond: Any, now: datetime) -> None:
    meta = body.get("metadata") or {}
    previous = (body.get("status") or {}).get("conditions")
    patch["conditions"] = [c for c in patch.get("conditions") or [] if c.get("type") != cond.type]
    patch["conditions"] += conditions(previous, [cond], int(meta.get("generation") or 1), now)
