"""The round's side of spec.coldStart.modelVolume: the resource's volume made with its first VM,
attached to each new VM (the VM's setup mounts it before Ollama starts), detached when the VM is
destroyed, deleted with the resource (core/model_volume.py decides which VM and what status says).

A VM made for the volume carries the volume's id in a label, so an attach that did not happen (a
crash, an API outage) is done at the next round. Where Exoscale refuses block storage (a permanent
error from create or attach), the refusal is kept for the zone and instance family, a VM made for
the volume is deleted at once (its setup would wait for a device that never comes) and the next
VM is made without it: today's behaviour, with the ModelVolume condition saying why. The volume
itself is kept (a later VM of another type may use it; it goes with the resource).

Only the volume whose id the store records for the zone is ours (engine/volume_record.py): a
look-alike with our labels and name is never attached (it would be Ollama's model directory),
only warned about.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from remote_ollama.cloud.errors import CloudError, NotFoundError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core.model_volume import Volume, condition, unsupported_key, volume_name, wanted
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.core.types import Condition
from remote_ollama.engine.credentials import CredentialStore
from remote_ollama.engine.volume_record import VolumeRecord
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_CREATION, LABEL_VOLUME
from remote_ollama.spec.vocabulary import Reason

log = logging.getLogger(__name__)


@dataclass
class ModelVolumes:
    """One resource's model volume in one zone (`Reconciler.volumes`), and at deletion every
    zone's the record lists."""

    cloud: Cloud
    store: CredentialStore  # where the volume's id is recorded (tenants cannot write there)
    instance_name: str
    labels: Mapping[str, str]  # the resource's owner labels
    replica: int | None = None
    # a refusal's or a look-alike's Warning (operator: an Event), once per process
    warn: Callable[[Reason, str], None] | None = None
    _volume: Volume | None = None
    _listed: bool = False
    _refused: dict[tuple[str, str], str] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

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

    async def _record(self) -> VolumeRecord | None:
        return (await self.store.volumes()).get(self.cloud.zone)

    async def _keep(self, zone: str, record: VolumeRecord | None) -> None:
        volumes = await self.store.volumes()
        if record is None:
            volumes.pop(zone, None)
        else:
            volumes[zone] = record
        await self.store.keep_volumes(volumes)

    async def current(self) -> Volume | None:
        """The resource's volume in this zone: the recorded one (listed once, then kept up to date)."""
        if not self._listed:
            record = await self._record()
            listed = await self.cloud.volumes(self.labels)
            self._volume = await self._resolve(record, listed) if record is not None else None
            self._listed = True
            self._warn_look_alikes(listed)
        return self._volume

    async def _resolve(self, record: VolumeRecord, listed: list[dict[str, object]]) -> Volume | None:
        """The recorded id's volume; with only a token (a create whose answer was lost), the oldest
        volume carrying it (a copy of the token can only be younger), recorded now."""
        if record.id is not None:
            return next((Volume.from_api(v) for v in listed if str(v.get("id")) == record.id), None)
        made = [v for v in listed if _labels(v).get(LABEL_CREATION) == record.token]
        if not made:
            return None
        first = min(str(v.get("created-at") or "") for v in made)
        oldest = [v for v in made if str(v.get("created-at") or "") == first]
        if len(oldest) != 1:  # made in the same second: which is ours is unknown, neither is used
            return None
        volume = Volume.from_api(oldest[0])
        await self._keep(self.cloud.zone, VolumeRecord(volume.id, record.token))
        return volume

    def _warn_look_alikes(self, listed: list[dict[str, object]]) -> None:
        ours = self._volume.id if self._volume is not None else None
        for raw in listed:
            vid = str(raw.get("id"))
            if vid == ours or vid in self._warned:
                continue
            self._warned.add(vid)
            message = (
                f"volume {vid} ({raw.get('name')}) carries this resource's labels but was not recorded "
                "as created for it (labels can be copied): never attached, grown or deleted"
            )
            log.warning("%s: %s", Reason.UNRECORDED_VOLUME_IGNORED, message)
            if self.warn is not None:
                self.warn(Reason.UNRECORDED_VOLUME_IGNORED, message)

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
                volume = await self._create(size)
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

    async def _create(self, size: int) -> Volume:
        """A new volume, its creation token recorded first (a lost answer is found by it) and its
        id once known. A token still recorded is reused: its create may have been carried out."""
        record = await self._record()
        token = record.token if record is not None and record.id is None and record.token else None
        token = token or secrets.token_hex(8)
        await self._keep(self.cloud.zone, VolumeRecord(None, token))
        raw = await self.cloud.create_volume(self.name, size, {**self.labels, LABEL_CREATION: token})
        volume = Volume.from_api(raw)
        await self._keep(self.cloud.zone, VolumeRecord(volume.id, token))
        self._warned.add(volume.id)
        log.info("model volume %s (%d GiB) created", volume.name, size)
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
        self._listed = False
        volume = await self.current()
        if volume is not None and volume.instance_id == instance_id:
            await self.cloud.detach_volume(volume.id)
            log.info("model volume %s detached from %s (kept)", volume.name, instance_id)
            self._volume = Volume(volume.id, volume.name, volume.size_gib, "detached", None)

    async def delete(self, elsewhere: Callable[[str], Awaitable[Cloud | None]] | None = None) -> None:
        """With the resource (its VMs deleted first): the recorded volume of every zone the record
        lists (`elsewhere` gives the cloud of a zone other than this one; None: left recorded).
        Each zone's entry goes once its volume is gone, so a failure retries only what is left."""
        for zone in sorted(await self.store.volumes(), key=lambda z: z != self.cloud.zone):
            cloud = self.cloud if zone == self.cloud.zone else (await elsewhere(zone) if elsewhere else None)
            if cloud is None:
                log.warning("model volume in %s not deleted: no client for that zone", zone)
                continue
            here = ModelVolumes(cloud, self.store, self.instance_name, self.labels)
            try:
                volume = await here.current()
            except CloudError as exc:
                if exc.retryable:
                    raise
                log.info("no volumes to delete in %s: %s", zone, exc)  # no block storage there
                volume = None
            if volume is not None:
                if volume.instance_id is not None:
                    await cloud.detach_volume(volume.id)
                await cloud.delete_volume(volume.id)
                log.info("model volume %s deleted with the resource", volume.name)
            await self._keep(zone, None)
        self._volume, self._listed = None, True


def _labels(raw: Mapping[str, object]) -> Mapping[str, object]:
    labels = raw.get("labels")
    return labels if isinstance(labels, Mapping) else {}
