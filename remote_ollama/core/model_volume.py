"""spec.coldStart.modelVolume (pure): which VM gets the models' volume, what it is called, and what
status says about it.

A block-storage volume attaches to one instance at a time, so only replica 0 (the VM that wakes
from zero, whose cold start users feel) gets one; further replicas of a scale-out pull to their own
disk while replica 0 serves. One volume per resource also bounds the storage bill to one volume.
Where Exoscale refuses block storage (the zone, or the instance family: its documentation has said
"all but GPU" and later "all"), the refusal is remembered per zone and family, the ModelVolume
condition says so, and the VM is made as without a volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import ConditionType, Reason

from .types import Condition

MAX_NAME = 255  # Exoscale's volume name limit


def volume_name(instance_name: str) -> str:
    """The volume of the resource whose VM is `instance_name`."""
    return f"{instance_name}-models"[:MAX_NAME]


def wanted(spec: Spec, replica: int | None) -> bool:
    """Whether this VM's models live on the resource's volume (replica 0 of a scale-out only)."""
    return spec.cold_start.model_volume.enabled and replica in (None, 0)


@dataclass(frozen=True)
class Volume:
    """A volume as the round needs it (from the API's block-storage-volume)."""

    id: str
    name: str
    size_gib: int
    state: str
    instance_id: str | None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Volume:
        """The API shows `size` in bytes (create takes GiB); a figure below 1 GiB can only be GiB
        (a volume is at least 10 GiB), read so should the API ever answer in GiB."""
        attached = raw.get("instance") or {}
        size = int(raw.get("size") or 0)
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", "")),
            size_gib=size // 1024**3 if size >= 1024**3 else size,
            state=str(raw.get("state", "")),
            instance_id=str(attached["id"]) if attached.get("id") else None,
        )

    @property
    def gb(self) -> float:
        """Its size in GB, as storage is billed."""
        return self.size_gib * 1024**3 / 1e9


def unsupported_key(zone: str, instance_type: str) -> tuple[str, str]:
    """Refusals are remembered per zone and instance family (`gpua5000.small` -> `gpua5000`)."""
    return zone, instance_type.split(".", 1)[0]


def condition(
    spec: Spec, replica: int | None, volume: Volume | None, unsupported: str | None
) -> Condition | None:
    """ModelVolume, present while spec.coldStart.modelVolume is enabled."""
    if not spec.cold_start.model_volume.enabled:
        return None
    if unsupported is not None:
        return Condition(
            ConditionType.MODEL_VOLUME,
            False,
            Reason.VOLUME_UNSUPPORTED,
            f"no model volume here ({unsupported}): models are pulled to the VM's disk",
        )
    if not wanted(spec, replica):
        return None
    if volume is None:
        return Condition(ConditionType.MODEL_VOLUME, False, Reason.NOT_READY, "created with the next VM")
    where = f"attached to {volume.instance_id}" if volume.instance_id else "detached, kept for the next VM"
    return Condition(
        ConditionType.MODEL_VOLUME,
        True,
        Reason.VOLUME_READY,
        f"volume {volume.name} ({volume.size_gib} GiB) {where}",
    )
