"""Which model volume is ours, per zone: recorded beside the instance record where tenants cannot
write (the operator's Secret `<name>-remote-ollama-vm`, standalone: the state file).

A volume's labels and name can be copied by anyone in the organisation who may create volumes,
and the volume we attach becomes Ollama's model directory: only the recorded id is attached,
grown, detached or deleted. As for instances, a random creation token is recorded before the
create call (and set as a label on the volume), so a create whose answer was lost is found again:
nobody can copy the token before our volume shows it, so a copy is always younger. One entry per
zone a VM of the resource ran in (spec.placements), so deletion finds every zone's volume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

RECORD_VOLUMES = "model-volumes"  # the store's key: JSON {zone: {"id": ..., "token": ...}}
MAX_RECORD = 64 * 1024  # a record larger than this was not written by us: read as empty


@dataclass(frozen=True)
class VolumeRecord:
    """One zone's volume: its id once known, the token of the create that made (or makes) it."""

    id: str | None = None
    token: str | None = None


def volumes_from(data: Mapping[str, str] | None) -> dict[str, VolumeRecord]:
    """The record in a store's data (nothing, or anything unreadable: none)."""
    raw = (data or {}).get(RECORD_VOLUMES) or ""
    if not raw or len(raw) > MAX_RECORD:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, VolumeRecord] = {}
    for zone, entry in parsed.items():
        if isinstance(entry, dict):
            vid, token = entry.get("id"), entry.get("token")
            out[str(zone)] = VolumeRecord(str(vid) if vid else None, str(token) if token else None)
    return out


def volumes_data(volumes: Mapping[str, VolumeRecord]) -> dict[str, str]:
    """The store's data for the record (no key when empty)."""
    entries = {
        zone: {k: v for k, v in (("id", r.id), ("token", r.token)) if v}
        for zone, r in sorted(volumes.items())
    }
    return {RECORD_VOLUMES: json.dumps(entries, sort_keys=True)} if entries else {}
