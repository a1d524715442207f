"""Capacity fallback: which (zone, instance type) to use, and where to go when one has no room (pure).

Candidates are `spec.zone`/`spec.instanceType` then `spec.placements` in order. A create or start
that fails for capacity or quota moves to the next candidate; the one that works is kept. After
the last one fails, the next attempt starts over from the first (after the shell's backoff).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import ConditionType, Reason

from .types import Condition


@dataclass(frozen=True)
class PlacementState:
    index: int = 0  # into spec.candidates()
    tried: tuple[str, ...] = ()  # "zone/type (reason)" that failed since the last success


@dataclass(frozen=True)
class Fallback:
    state: PlacementState
    exhausted: bool  # every candidate failed in this pass
    message: str  # for the Event and the condition


def current(spec: Spec, state: PlacementState) -> Spec:
    """The spec to act on: zone and instance type of the current candidate."""
    return spec.at_placement(state.index)


def after_failure(spec: Spec, state: PlacementState, reason: Reason) -> Fallback:
    """The create/start on the current candidate failed for `reason` (capacity or quota)."""
    cands = spec.candidates()
    index = state.index % len(cands)
    tried = (*state.tried, f"{cands[index].name} ({reason})")
    nxt = index + 1
    if nxt >= len(cands):
        return Fallback(
            PlacementState(0, tried),
            True,
            f"no placement could run the VM; tried {', '.join(tried)}; starting over from {cands[0].name}",
        )
    return Fallback(
        PlacementState(nxt, tried), False, f"tried {', '.join(tried)}; now trying {cands[nxt].name}"
    )


def after_success(state: PlacementState) -> PlacementState:
    """The VM runs on the preferred candidate again: forget the failures."""
    return PlacementState(state.index, ())


def settled(state: PlacementState, running: bool) -> PlacementState:
    """After a round: a VM running on the preferred candidate clears the failures (a fallback
    candidate keeps them, so the condition says why the VM is not where it was asked to be)."""
    return after_success(state) if running and state.index == 0 and state.tried else state


def condition(spec: Spec, state: PlacementState) -> Condition:
    if state.tried:
        where = spec.candidates()[state.index % len(spec.candidates())].name
        return Condition(
            ConditionType.CAPACITY_UNAVAILABLE,
            True,
            Reason.FELL_BACK,
            f"tried {', '.join(state.tried)}; using {where}",
        )
    return Condition(ConditionType.CAPACITY_UNAVAILABLE, False, Reason.AVAILABLE, "")


def to_status(spec: Spec, state: PlacementState) -> dict[str, Any]:
    here = current(spec, state)
    return {
        "index": state.index,
        "zone": here.zone,
        "instanceType": here.instance_type.name,
        "tried": list(state.tried),
    }


def from_status(spec: Spec, raw: Any) -> PlacementState:
    """The state back from status.placement, found by zone and type (the list may have been edited)."""
    if not isinstance(raw, dict):
        return PlacementState()
    for index, cand in enumerate(spec.candidates()):
        if cand.zone == raw.get("zone") and cand.instance_type.name == raw.get("instanceType"):
            tried = raw.get("tried")
            return PlacementState(index, tuple(str(t) for t in tried) if isinstance(tried, list) else ())
    return PlacementState()


def in_zone(spec: Spec, state: PlacementState, zone: str | None) -> PlacementState:
    """The state moved to a candidate in `zone`, where the recorded instance is (status, which the
    tenant can write, must not send the operator to look for it elsewhere and make another VM):
    the one of the same instance type, else the first there. Unchanged without a recorded zone or
    when the spec no longer names it (the spec's own edit, as before)."""
    cands = spec.candidates()
    here = current(spec, state)
    if zone is None or here.zone == zone:
        return state
    there = [i for i, c in enumerate(cands) if c.zone == zone]
    same = [i for i in there if cands[i].instance_type.name == here.instance_type.name]
    return PlacementState((same or there)[0], state.tried) if there else state
