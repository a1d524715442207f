"""Each replica's record in status.replicas (pure): its lifecycle memory and what the scaler asked of
it, read back each round, and the aggregate the resource shows (issue 19, `spec.replicas.max > 1`).

Replica 0 is the VM a `max: 1` resource has: with no record of its own yet it takes the resource's
status.lifecycle and status.instance, so raising `max` keeps that VM; the resource's
status.lifecycle and status.instance keep mirroring replica 0, so lowering `max` to 1 does too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.placement import PlacementState
from remote_ollama.core.types import Activity, Decision, Memory, memory_from_json
from remote_ollama.spec.vocabulary import Phase

from .status import LIFECYCLE_FIELDS, lifecycle_json, memory_from, parse_time, rfc3339

JSON = dict[str, Any]
UP = frozenset({Phase.PENDING, Phase.PROVISIONING, Phase.STARTING, Phase.READY})
# The resource's phase while no replica is Ready: the one furthest on its way up, else the first's.
COMING = (Phase.STARTING, Phase.PROVISIONING, Phase.PENDING)


@dataclass(frozen=True)
class Member:
    """One replica as the last round left it."""

    index: int
    memory: Memory
    wake: datetime | None  # the scaler asked it to start at (its Activity.wake_requested)
    sleep: datetime | None  # the scaler asked it to stop at (its Activity.sleep_requested)
    last_activity: datetime | None
    cost: Any  # its own meter (status.replicas[i].cost): the resource's cost is the members' sum
    placement: PlacementState = field(
        default_factory=PlacementState
    )  # its zone and type (replica_placement.py)

    @property
    def up(self) -> bool:
        return self.memory.phase in UP

    def activity(self, in_flight: int, last_use: datetime | None) -> Activity:
        latest = max((t for t in (self.last_activity, last_use) if t is not None), default=None)
        return Activity(
            last_activity=latest, wake_requested=self.wake, sleep_requested=self.sleep, in_flight=in_flight
        )


def items_of(body: JSON) -> dict[int, JSON]:
    out: dict[int, JSON] = {}
    for item in (body.get("status") or {}).get("replicas") or []:
        if isinstance(item, dict) and isinstance(item.get("index"), int) and item["index"] >= 0:
            out[item["index"]] = item
    return out


def member_from(body: JSON, index: int, item: JSON | None) -> Member:
    """Replica `index`'s memory; a replica never seen starts stopped (a request or the floor wakes it)."""
    created = parse_time((body.get("metadata") or {}).get("creationTimestamp"))
    item = item or {}
    stored = item.get("lifecycle")
    status = body.get("status") or {}
    spent = item.get("cost")
    if isinstance(stored, dict):
        flat = {snake: stored.get(camel) for snake, camel in LIFECYCLE_FIELDS.items()}
        flat |= {"instance_id": item.get("instanceID"), "phase": item.get("phase")}
        flat["created_at"] = created.isoformat() if created else None
        memory = memory_from_json({k: v for k, v in flat.items() if v is not None})
    elif index == 0 and (status.get("lifecycle") or status.get("instance")):
        memory = memory_from(body)  # the VM of the resource's `max: 1` days, and its meter
        spent = status.get("cost")
    else:
        memory = Memory(created_at=created, scaled_down_at=created, phase=Phase.STOPPED)
    return Member(
        index,
        memory,
        parse_time(item.get("wakeRequestedAt")),
        parse_time(item.get("sleepRequestedAt")),
        parse_time(item.get("lastActivity")),
        spent,
    )


def member_item(
    member: Member,
    decision: Decision,
    instance: ObservedInstance | None,
    activity: Activity,
    cost: JSON | None,
    loaded: tuple[str, ...] | None,
    previous: JSON | None,
) -> JSON:
    """status.replicas[i] after this round (a whole item: the list is replaced by a merge patch)."""
    item: JSON = {
        "index": member.index,
        "phase": str(decision.phase),
        "message": decision.message[:1024],
        "inFlight": activity.in_flight,
        "lifecycle": {k: v for k, v in lifecycle_json(decision.memory).items() if v is not None},
    }
    if decision.memory.instance_id:
        item["instanceID"] = decision.memory.instance_id
    if instance is not None and decision.memory.instance_id:
        item |= {"zone": instance.zone, "instanceState": instance.state}
        if instance.public_ip:
            item["publicIP"] = instance.public_ip
    # kept while only stopped (same IP at the next start), as the resource's status.endpoint
    endpoint = decision.endpoint or (
        (previous or {}).get("endpoint") if decision.memory.instance_id else None
    )
    if endpoint:
        item["endpoint"] = endpoint
    for key, at in (("wakeRequestedAt", member.wake), ("sleepRequestedAt", member.sleep)):
        if at is not None:
            item[key] = rfc3339(at)
    if activity.last_activity is not None:
        item["lastActivity"] = rfc3339(activity.last_activity)
    if loaded is not None:
        item["loadedModels"] = list(loaded)[:32]
    elif (previous or {}).get("loadedModels") and decision.phase is Phase.READY:
        item["loadedModels"] = previous["loadedModels"] if previous else []
    if cost is not None:
        item["cost"] = cost
    return item


def aggregate_phase(phases: list[Phase]) -> Phase:
    if Phase.READY in phases:
        return Phase.READY
    return next((p for p in COMING if p in phases), phases[0] if phases else Phase.STOPPED)
