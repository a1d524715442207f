"""The placement a resource's VM (or replica's) is acted on in: the zone its operator-owned instance
record names wins over status.placement, which the tenant can write (issue 18: a status pointing
at another zone would have the recorded VM left running there, unrecorded and unmetered, and a new
one made). A status that disagrees gets a Warning Event and is overwritten at the next patch."""

from __future__ import annotations

from typing import Any

import kopf

from remote_ollama.core import placement
from remote_ollama.core.placement import PlacementState
from remote_ollama.spec.fields_row import ZONES
from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Reason

from .context import ResourceContext, credential_store
from .events import event
from .members import items_of
from .ownership import NameConflict


async def recorded(
    ctx: ResourceContext, body: kopf.Body, base: Spec, state: PlacementState, index: int = 0
) -> PlacementState:
    """Replica `index`'s placement (0: the one VM's) in its recorded instance's zone."""
    if not base.placements:  # one candidate: nothing for status to choose
        return state
    record = await credential_store(ctx.body, index).record()
    kept = placement.in_zone(base, state, record.zone if record else None)
    if kept != state:
        said, acted = placement.current(base, state), placement.current(base, kept)
        key = f"{index}/{said.zone}/{acted.zone}"
        if key not in ctx.warned_placements:
            ctx.warned_placements.add(key)
            who = f"status.replicas[{index}].placement" if index else "status.placement"
            event(
                body,
                Reason.PLACEMENT_NOT_RECORDED,
                f"{who} names zone {said.zone}, but the instance recorded for this resource is in "
                f"zone {acted.zone}: acting there (status is not where a VM is kept)",
            )
    return kept


async def recorded_zones(ctx: ResourceContext, raw: dict[str, Any], replicas_max: int) -> list[str]:
    """The zones the instance records name, of the one VM and of every replica the spec, status or
    the cloud scan knows: for the resource's deletion, where the spec may no longer name a zone a
    VM still is in (an edit while its move waited) and status may have been cleared."""
    zones: list[str] = []
    for index in sorted({0, *range(replicas_max), *items_of(raw), *ctx.replicas_found}):
        try:
            record = await credential_store(ctx.body, index).record()
        except NameConflict:  # not the resource's Secret: it records nothing of ours
            continue
        if record is not None and record.zone in ZONES:
            zones.append(record.zone)
    return list(dict.fromkeys(zones))
