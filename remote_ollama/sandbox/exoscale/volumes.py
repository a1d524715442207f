"""The simulator's block storage: volumes and volume snapshots of one zone, as the API v2 document
bundled with python-exoscale describes them (create-block-storage-volume, list/get/update/delete,
attach-block-storage-volume-to-instance, detach, resize; create/list/get/delete snapshots), with
labels; create takes GiB and answers show bytes. The operations' handlers: handlers/block_storage.py.

Exoscale's block-storage documentation lists the zones that offer it (at-vie-1, ch-gva-2, de-fra-1)
and has said both "all but GPU" and "all" instance offerings: elsewhere, and for a family in
`refused_families`, create or attach answers 400 (the real answer there is not documented). A
volume attaches to one instance at a time (up to 5 per instance) after `SimTimings.volume_attach`;
an instance that is deleted lets its volumes go (they show detached). What a volume holds (the
model files a simulated VM pulled onto it) is `Volume.contents`, which outlives every instance.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from remote_ollama.sandbox.exoscale.objects import GIB, GONE_STATES, ApiError, api_shape, new_id, now_rfc3339
from remote_ollama.sandbox.exoscale.state import CloudState

BLOCK_STORAGE_ZONES = ("at-vie-1", "ch-gva-2", "de-fra-1")
MIN_GIB, MAX_GIB = 10, 10240
MAX_PER_INSTANCE = 5


@dataclass
class BlockStorageObject:
    """What a volume and a volume snapshot both are: a labelled, sized thing in a state."""

    id: str
    name: str
    size: int  # GiB (the API shows bytes)
    labels: dict[str, str]
    created_at: str
    state: str

    def to_api(self) -> dict[str, Any]:
        return api_shape(self, "id", "name", "labels", "state", "created_at") | {"size": self.size * GIB}


@dataclass
class Volume(BlockStorageObject):
    state: str = "detached"
    instance_id: str | None = None
    contents: set[str] = field(default_factory=set)  # what a simulated VM wrote on it

    def to_api(self) -> dict[str, Any]:
        attached = {} if self.instance_id is None else {"instance": {"id": self.instance_id}}
        return super().to_api() | {"blocksize": 4096, "encrypted": False} | attached


@dataclass
class VolumeSnapshot(BlockStorageObject):
    state: str = "created"
    volume_id: str = field(kw_only=True)

    def to_api(self) -> dict[str, Any]:
        of_volume = {"volume-size": self.size * GIB, "block-storage-volume": {"id": self.volume_id}}
        return super().to_api() | of_volume


class BlockStorage:
    """One zone's volumes and volume snapshots (`of(state)`)."""

    def __init__(self, state: CloudState) -> None:
        self.state = state
        self.volumes: dict[str, Volume] = {}
        self.snapshots: dict[str, VolumeSnapshot] = {}
        self.refused_families: set[str] = set()

    @property
    def offered(self) -> bool:
        return self.state.zone in BLOCK_STORAGE_ZONES

    def _refuse_here(self) -> None:
        if not self.offered:
            raise ApiError(400, f"Block Storage is not available in zone {self.state.zone}")

    def _live_instance(self, volume: Volume) -> str | None:
        """The instance it is attached to; a deleted instance has let it go."""
        inst = self.state.instances.get(volume.instance_id or "")
        if volume.instance_id is not None and (inst is None or inst.state in GONE_STATES):
            volume.instance_id, volume.state = None, "detached"
        return volume.instance_id

    def get(self, volume_id: str) -> Volume:
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise ApiError(404, f"Block Storage Volume {volume_id} not found")
        self._live_instance(volume)
        return volume

    def listing(self, instance_id: str | None = None) -> list[Volume]:
        return [v for v in self.volumes.values() if instance_id in (None, self._live_instance(v))]

    def attached_to(self, instance_id: str) -> list[Volume]:
        return [v for v in self.listing() if v.instance_id == instance_id]

    def create(self, name: str, size: int, labels: dict[str, str]) -> dict[str, Any]:
        self._refuse_here()
        if not MIN_GIB <= size <= MAX_GIB:
            raise ApiError(400, f"size: a volume is {MIN_GIB} GiB to {MAX_GIB} GiB: {size}")
        volume = Volume(new_id(), name, size, labels, now_rfc3339(), state="creating")
        self.volumes[volume.id] = volume
        return self.later(volume.id, "block-storage", 0.0, lambda: setattr(volume, "state", "detached"))

    def attach(self, volume_id: str, instance_id: str) -> dict[str, Any]:
        volume = self.get(volume_id)
        inst = self.state.get_instance(instance_id)
        if inst.instance_type.family in self.refused_families:
            raise ApiError(400, f"Block Storage cannot be attached to {inst.instance_type.family} instances")
        if volume.instance_id is not None or volume.state != "detached":
            raise ApiError(400, f"Block Storage Volume {volume.id} is {volume.state}: detach it first")
        if len(self.attached_to(instance_id)) >= MAX_PER_INSTANCE:
            raise ApiError(400, f"Instance {instance_id} has {MAX_PER_INSTANCE} volumes attached already")
        volume.state, volume.instance_id = "attaching", instance_id

        def attached() -> None:
            if volume.instance_id == instance_id:
                volume.state = "attached"

        return self.later(volume.id, "block-storage", self.state.timings.volume_attach, attached)

    def detach(self, volume_id: str) -> dict[str, Any]:
        volume = self.get(volume_id)
        if volume.instance_id is None:
            raise ApiError(400, f"Block Storage Volume {volume.id} is not attached")
        volume.state, volume.instance_id = "detached", None
        return self.later(volume.id, "block-storage", 0.0, lambda: None)

    def resize(self, volume_id: str, size: int) -> dict[str, Any]:
        volume = self.get(volume_id)
        inst = self.state.instances.get(volume.instance_id or "")
        if inst is not None and inst.state != "stopped":
            raise ApiError(400, "only a detached volume or one on a stopped instance can be resized")
        if not volume.size < size <= MAX_GIB:
            raise ApiError(400, f"size: a volume only grows, up to {MAX_GIB} GiB ({volume.size} GiB now)")
        volume.size = size
        return volume.to_api()

    def delete(self, volume_id: str) -> dict[str, Any]:
        volume = self.get(volume_id)
        if volume.instance_id is not None:
            raise ApiError(400, f"Block Storage Volume {volume.id} is attached: detach it first")
        del self.volumes[volume.id]
        return self.later(volume.id, "block-storage", 0.0, lambda: None)

    def snapshot(self, volume_id: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        volume = self.get(volume_id)
        snap = VolumeSnapshot(new_id(), name, volume.size, labels, now_rfc3339(), volume_id=volume.id)
        self.snapshots[snap.id] = snap
        return self.later(snap.id, "block-storage-snapshot", 0.0, lambda: None)

    def get_snapshot(self, snapshot_id: str) -> VolumeSnapshot:
        snap = self.snapshots.get(snapshot_id)
        if snap is None:
            raise ApiError(404, f"Block Storage Snapshot {snapshot_id} not found")
        return snap

    def delete_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        del self.snapshots[self.get_snapshot(snapshot_id).id]
        return self.later(snapshot_id, "block-storage-snapshot", 0.0, lambda: None)

    def later(self, ref: str, kind: str, delay: float, then: Any) -> dict[str, Any]:
        """An operation that succeeds (after `then`) once `delay` and the usual latency passed."""
        op = self.state.new_operation(ref, kind)

        def done() -> None:
            then()
            op.state = "success"

        asyncio.get_running_loop().call_later(delay + self.state.op_delay(), done)
        return op.to_api()


_STORES: weakref.WeakKeyDictionary[CloudState, BlockStorage] = weakref.WeakKeyDictionary()


def of(state: CloudState) -> BlockStorage:
    """The zone's block storage (made at its first use)."""
    if state not in _STORES:
        _STORES[state] = BlockStorage(state)
    return _STORES[state]
