"""Block-storage volumes (spec.coldStart.modelVolume): find by labels, create, grow, attach, detach,
delete; and the volume snapshots the orphan sweep looks at. `ExoscaleCloud.volumes`.

Unlike templates and security groups, volumes and their snapshots carry labels: a volume is the
resource's when it carries its owner and cluster labels and its name. Create takes GiB; the API
shows sizes in bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from remote_ollama.cloud.errors import NotFoundError

from .transport import JSON, ExoscaleTransport

log = logging.getLogger(__name__)

DEADLINE = 600.0  # seconds an attach, detach, create or delete may take


def _labelled(items: list[JSON], labels: Mapping[str, str]) -> list[JSON]:
    return [i for i in items if all((i.get("labels") or {}).get(k) == v for k, v in labels.items())]


class Volumes:
    """Block-storage volumes of one zone (blocking)."""

    def __init__(self, api: ExoscaleTransport) -> None:
        self._call: Callable[..., Any] = api.call
        self._wait_operation: Callable[[JSON, float], JSON] = api.wait_operation

    def volumes(self, labels: Mapping[str, str]) -> list[JSON]:
        """Every volume of the zone carrying all `labels`."""
        found: list[JSON] = self._call("list_block_storage_volumes").get("block-storage-volumes", [])
        return _labelled(found, labels)

    def _named(self, name: str, labels: Mapping[str, str]) -> JSON | None:
        """The oldest volume of that name carrying `labels` (which hold the create's token: a copy
        can only be younger)."""
        named = [v for v in self.volumes(labels) if v.get("name") == name]
        return min(named, key=lambda v: str(v.get("created-at") or "")) if named else None

    def create_volume(self, name: str, size_gib: int, labels: Mapping[str, str]) -> JSON:
        """A new empty volume (a retry after a lost answer adopts the one it made, found by its
        labels: the caller puts a creation token among them)."""

        def made() -> JSON | None:
            found = self._named(name, labels)
            return {"adopted": found} if found is not None else None

        op = self._call(
            "create_block_storage_volume", before_retry=made, name=name, size=size_gib, labels=dict(labels)
        )
        if "adopted" in op:
            adopted: JSON = op["adopted"]
            return adopted
        volume_id = str(self._wait_operation(op, DEADLINE)["reference"]["id"])
        log.info("exoscale block-storage volume %s (%s, %d GiB) created", volume_id, name, size_gib)
        volume: JSON = self._call("get_block_storage_volume", id=volume_id)
        return volume

    def grow_volume(self, volume_id: str, size_gib: int) -> None:
        """A larger size (volumes only grow; only while detached or on a stopped instance)."""
        self._call("resize_block_storage_volume", id=volume_id, size=size_gib)

    def _attached_to(self, volume_id: str) -> str | None:
        volume: JSON = self._call("get_block_storage_volume", id=volume_id)
        return str((volume.get("instance") or {}).get("id") or "") or None

    def attach_volume(self, volume_id: str, instance_id: str) -> None:
        """Attach; a retry after a lost answer first looks whether the attach was carried out (a
        second attach would be refused: "detach it first")."""

        def done() -> JSON | None:
            return {"done": True} if self._attached_to(volume_id) == instance_id else None

        op = self._call(
            "attach_block_storage_volume_to_instance",
            before_retry=done,
            id=volume_id,
            instance={"id": instance_id},
        )
        if "done" not in op:
            self._wait_operation(op, DEADLINE)
        log.info("exoscale volume %s attached to instance %s", volume_id, instance_id)

    def detach_volume(self, volume_id: str) -> None:
        """Detach (kept for the next VM); a volume already gone is left as it is, and a retry after
        a lost answer first looks whether the detach was carried out."""

        def done() -> JSON | None:
            return {"done": True} if self._attached_to(volume_id) is None else None

        try:
            op = self._call("detach_block_storage_volume", before_retry=done, id=volume_id)
        except NotFoundError:
            return
        if "done" not in op:
            self._wait_operation(op, DEADLINE)

    def delete_volume(self, volume_id: str) -> None:
        """Delete one volume; an absent one is already deleted."""
        self._unless_gone("delete_block_storage_volume", volume_id)

    def volume_snapshots(self, labels: Mapping[str, str]) -> list[JSON]:
        """Every block-storage snapshot of the zone carrying all `labels` (the orphan sweep's)."""
        found: list[JSON] = self._call("list_block_storage_snapshots").get("block-storage-snapshots", [])
        return _labelled(found, labels)

    def delete_volume_snapshot(self, snapshot_id: str) -> None:
        self._unless_gone("delete_block_storage_snapshot", snapshot_id)

    def _unless_gone(self, operation: str, object_id: str) -> None:
        """`operation` on the object and its operation waited for; a 404 means nothing to do."""
        try:
            op = self._call(operation, id=object_id)
        except NotFoundError:
            return
        self._wait_operation(op, DEADLINE)
