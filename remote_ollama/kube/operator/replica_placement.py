"""Capacity fallback per replica (spec.placements with `spec.replicas.max > 1`, issue 19).

Each replica walks the candidates as the one VM does (`core.placement`, the same decision): a
capacity or quota refusal moves that replica alone to the next placement, its own cloud client is
that zone's, and where it is is kept in status.replicas[i].placement. The resource's
status.placement mirrors replica 0's, as its status.lifecycle does, so changing `max` keeps
replica 0 where it is; CapacityUnavailable says which replicas fell back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remote_ollama.cloud.errors import CredentialsError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core import placement
from remote_ollama.core.placement import PlacementState
from remote_ollama.core.types import Condition
from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import ConditionType, Reason

from .context import ResourceContext
from .fallback import set_condition

JSON = dict[str, Any]


def placement_of(base: Spec, raw: JSON, index: int, item: JSON | None) -> PlacementState:
    """Replica `index`'s placement: its own record; replica 0 without one takes the resource's
    (the VM of its `max: 1` days stays where it is)."""
    stored = (item or {}).get("placement")
    if stored is None and index == 0:
        stored = (raw.get("status") or {}).get("placement")
    return placement.from_status(base, stored)


class ZoneClouds:
    """This round's cloud client per zone (the credentials Secret read once per zone)."""

    def __init__(self, ctx: ResourceContext, base: Spec, cloud: Cloud):
        self.ctx, self.base = ctx, base
        self.clouds: dict[str, Cloud] = {cloud.zone: cloud}

    async def in_zone(self, zone: str) -> Cloud:
        if zone not in self.clouds:
            problem, cloud = await self.ctx.cloud_for(self.base, zone)
            if cloud is None:  # the Secret went between two reads of one round: the round fails
                raise CredentialsError(problem or "no credentials")
            self.clouds[zone] = cloud
        return self.clouds[zone]


def capacity_condition(base: Spec, states: list[tuple[int, PlacementState]]) -> Condition:
    """CapacityUnavailable over the replicas: True while any of them is not where it was asked to be."""
    fell = [f"replica {i}: {placement.condition(base, s).message}" for i, s in states if s.tried]
    if not fell:
        return placement.condition(base, PlacementState())
    return Condition(ConditionType.CAPACITY_UNAVAILABLE, True, Reason.FELL_BACK, "; ".join(fell)[:1024])


def add_to(
    patch: JSON, raw: JSON, base: Spec, states: list[tuple[int, PlacementState]], now: datetime
) -> None:
    """status.placement (replica 0's) and the condition, only when fallbacks are configured."""
    if not base.placements:
        return
    zero = next((s for i, s in states if i == 0), PlacementState())
    patch["placement"] = placement.to_status(base, zero)
    set_condition(patch, raw, capacity_condition(base, states), now)
