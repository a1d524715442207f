"""The round's side of spec.coldStart.modelVolume: the resource's volume made with its first VM,
attached to each new VM (the VM's setup mounts it before Ollama starts), detached when the VM is
destroyed, deleted with the resource (core/model_volume.py decides which VM and what status says).

A VM made for the volume carries the volume's id in a label, so an attach that did not happen (a
crash, an API outage) is done at the next round. Where Exoscale refuses block storage (a permanent
error from create or attach), the refusal is kept for the zone and instance family, a VM made for
the volume is deleted at once (its setup would wait for a device that never comes) and the next
VM is made without it: today's behaviour, with the ModelVolume condition saying why. The volume
itself is kept (a later VM of another type may use it; it goes with the resource).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from remote_ollama.cloud.errors import CloudError, NotFoundError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core.model_volume import Volume, condition, unsupported_key, volume_name, wanted
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.core.types import Condition
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_VOLUME
from remote_ollama.spec.vocabulary import Reason

log = logging.getLogger(__name__)


@dataclass
class ModelVolumes:
    """One resource's model volume in one zone (`Reconciler.volumes`)."""

    cloud: Cloud
    instance_name: str
    labels: Mapping[str, str]  # the resource's owner labels
    replica: int | None = None
    # a refusal's Warning (operator: an Event), once per zone and family and process
    warn: Callable[[Reason, str], None] | None = None
    _volume: Volume | None = None
    _listed: bool = False
    _refused: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return volume_name(self.instance_name)

    def refused(self, spec: Spec) -> str | None:
        return self._refused.get(unsupported_key(self.cloud.zone, spec.instance_type.name))

    def _refuse(self, spec: Spec, exc: CloudError) -> None:
        message = f"no model volume in {self.cloud.zone} for {spec.instance_type.name}: {exc.message}"
        log.warning("%s", message)
        self._refused[unsupported_key(self.cloud.zone, spec.instance_type.name)] = exc.message
        if self.warn is not None:
            self.warn(Reason.VOLUME_UNSUPPORTED, f"{message}; models are pulled to the VM's disk")

    async def current(self) -> Volume | None:
        """The resource's volume in this zone (listed once, then kept up to date)."""
        if not self._listed:
            found = [v for v in await self.cloud.volumes(self.labels) if v.get("name") == self.name]
            self._volume = Volume.from_api(found[0]) if found else None
            self._listed = True
        return self._volume

    @property
    def gb(self) -> float:
        """Its size for status.cost (0: none)."""
        return self._volume.gb if self._volume is not None else 0.0

    def condition(self, spec: Spec) -> Condition | None:
        return condition(spec, self.replica, self._volume, self.refused(spec))

    async def for_create(self, spec: Spec) -> Volume | None:
        """The volume the next VM gets, made now if there is none (grown while detached when
        spec's size is larger); None when not wanted or refused here."""
        if not wanted(spec, self.replica) or self.refused(spec):
            return None
        size = spec.cold_start.model_volume.size
        try:
            volume = await self.current()
            if volume is None:
                volume = Volume.from_api(await self.cloud.create_volume(self.name, size, self.labels))
                log.info("model volume %s (%d GiB) created", volume.name, size)
            elif volume.instance_id is None and volume.size_gib < size:
                await self.cloud.grow_volume(volume.id, size)
                volume = Volume(volume.id, volume.name, size, volume.state, None)
        except CloudError as exc:
            if exc.retryable:
                raise
            self._refuse(spec, exc)
            return None
        self._volume = volume
        return volume

    async def ensure_attached(self, spec: Spec, instance: ObservedInstance | None) -> None:
        """Each round: the volume known (listed once per process while enabled, for status.cost),
        and attached to the VM made for it unless it is already (still on a VM being deleted:
        detached from it first). A refusal deletes that VM, made again without the volume at the
        next round; the volume is kept (billed, deleted with the resource)."""
        if spec.cold_start.model_volume.enabled and not self._listed and not self.refused(spec):
            try:
                await self.current()
            except CloudError as exc:
                if exc.retryable:
                    raise
                self._refuse(spec, exc)
        wanted_id = instance.labels.get(LABEL_VOLUME) if instance is not None else None
        volume = self._volume
        if instance is None or not wanted_id or instance.state in GONE or volume is None:
            return
        if volume.id != wanted_id or volume.instance_id == instance.id:
            return
        self._listed = False
        volume = await self.current()
        if volume is None or volume.instance_id == instance.id:
            return
        try:
            if volume.instance_id is not None:
                await self.cloud.detach_volume(volume.id)
            await self.cloud.attach_volume(volume.id, instance.id)
        except NotFoundError:  # the VM (or the volume) went meanwhile: the next round sees
            self._listed = False
            return
        except CloudError as exc:
            if exc.retryable:
                raise
            self._refuse(spec, exc)
            await self.cloud.delete_instance(instance.id, wait=False)
            return
        self._volume = Volume(volume.id, volume.name, volume.size_gib, "attached", instance.id)

    async def release(self, instance_id: str) -> None:
        """Before the VM is deleted: the volume is detached (and kept for the next VM)."""
        for raw in await self.cloud.volumes(self.labels):
            volume = Volume.from_api(raw)
            if volume.name == self.name and volume.instance_id == instance_id:
                await self.cloud.detach_volume(volume.id)
                log.info("model volume %s detached from %s (kept)", volume.name, instance_id)
                self._volume = Volume(volume.id, volume.name, volume.size_gib, "detached", None)

    async def delete(self) -> None:
        """With the resource (its VMs deleted first): every volume of it in this zone (none where
        the API refuses to list them: no block storage there)."""
        try:
            found = await self.cloud.volumes(self.labels)
        except CloudError as exc:
            if exc.retryable:
                raise
            log.info("no volumes to delete in %s: %s", self.cloud.zone, exc)
            found = []
        for raw in found:
            volume = Volume.from_api(raw)
            if volume.instance_id is not None:
                await self.cloud.detach_volume(volume.id)
            await self.cloud.delete_volume(volume.id)
            log.info("model volume %s deleted with the resource", volume.name)
        self._volume, self._listed = None, True
