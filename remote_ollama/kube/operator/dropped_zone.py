"""A spec edit that drops the zone a recorded VM is in (issue 19): `spec.zone`/`spec.placements`
no longer name the zone of the instance the operator-owned record names, so `placement.in_zone` has
no candidate there and the round would make a new VM in the new placement while the old one kept
running, unrecorded once the create overwrote the record and unmetered. Before any create, the
recorded VM is moved as a capacity fallback moves one (`fallback.move_on`): deleted, and the record
follows to the zone the next create is made in. Requests in flight to it complete first (as
`retiring.py` waits for a replica), for at most MOVE_GRACE: the proxy keeps sending new requests to
the VM it knows, so a busy endpoint would otherwise never move. The model volume stays in the old
zone, recorded, and goes with the resource."""

from __future__ import annotations

import asyncio

import kopf

from remote_ollama.core.types import Memory
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Reason

from .context import ResourceContext
from .events import event

IN_FLIGHT_RETRY = 2.0  # seconds before looking again while requests to the old VM are in flight
MOVE_GRACE = 300.0  # seconds the move waits for them at most


async def leave_dropped_zone(
    ctx: ResourceContext, body: kopf.Body, base: Spec, reconciler: Reconciler, new_zone: str, in_flight: int
) -> float | None:
    """Retire the instance `reconciler`'s store records when its zone is no longer a candidate;
    the delay before the next round while requests to it are still in flight, else None (the
    round goes on and makes the VM in `new_zone`)."""
    record = await reconciler.store.record()
    old = record.zone if record is not None else None
    index = reconciler.target.replica or 0
    if old is None or old in {c.zone for c in base.candidates()}:
        ctx.moves_waiting.pop(index, None)
        return None
    cloud = await ctx.cloud_in(base, old)
    if cloud is None:  # credentials unreadable: the round says why
        return None
    who = f"replica {index}: " if index else ""
    there = Reconciler(cloud, reconciler.target, reconciler.store)
    try:
        found = await there.ownership.observe_instance(Memory())
        if found is not None and in_flight and not _waited_enough(ctx, index):
            if f"{index}/{old}/{new_zone}" not in ctx.warned_placements:
                ctx.warned_placements.add(f"{index}/{old}/{new_zone}")
                event(
                    body,
                    Reason.PLACEMENT_DROPPED,
                    f"{who}the spec no longer names zone {old}, where its VM {found.id} runs: it moves to "
                    f"zone {new_zone} once the {in_flight} request(s) in flight to it complete "
                    f"(at most {MOVE_GRACE:.0f}s)",
                )
            return IN_FLIGHT_RETRY
        if found is not None:
            await there.delete_instance(found, found.id, wait=True)
            event(
                body,
                Reason.PLACEMENT_DROPPED,
                f"{who}the spec no longer names zone {old}: its VM {found.id} there is deleted and a new "
                f"one is made in zone {new_zone}" + (f" ({in_flight} request(s) cut)" if in_flight else ""),
            )
    finally:
        await there.close()
    ctx.moves_waiting.pop(index, None)
    await reconciler.store.moved(new_zone)  # the next create is there; the old zone's VM is gone
    return None


def _waited_enough(ctx: ResourceContext, index: int) -> bool:
    now = asyncio.get_running_loop().time()
    return now - ctx.moves_waiting.setdefault(index, now) >= MOVE_GRACE
