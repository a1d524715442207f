"""Which instance is ours: only the one whose id the credential store records, carrying our owner and
cluster labels (status is a mirror that tenants can write; labels can be copied). Anything else
with our labels is warned about once and never touched."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from remote_ollama.cloud.port import Cloud
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.core.types import Memory
from remote_ollama.engine.credentials import CredentialStore, InstanceRecord
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_CREATION,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    LABEL_REPLICA,
)
from remote_ollama.spec.vocabulary import Reason

from .target import Target

log = logging.getLogger("remote_ollama.engine.reconciler")


@dataclass
class Ownership:
    cloud: Cloud
    target: Target
    store: CredentialStore
    # Posts a Warning Event (reason, message) about an instance not trusted (operator mode).
    warn_event: Callable[[Reason, str], None]
    _warned: set[tuple[Reason, str]] = field(default_factory=set)

    async def observe_instance(self, memory: Memory) -> ObservedInstance | None:
        """Only an instance made for this owner: the one whose id the store records (status is a
        mirror that tenants can write), carrying our owner and cluster labels. Nothing is adopted by
        labels alone: anyone in the organisation who may list instances can copy them."""
        record = await self.store.record()
        if record is None:  # no credentials: nothing was ever created, whatever status says
            found = None
            await self._warn_unrecorded()
        elif record.instance_id is not None:
            found = await self.ours(record.instance_id)
            if found is not None and record.zone is None:  # an older version's record: now it has one
                await self.store.keep(InstanceRecord(found.id, record.creation_token, self.cloud.zone))
        elif record.creation_token is not None:
            found = await self._created_with(record.creation_token)
        else:  # credentials from a version that kept no record: its remembered id, if labelled ours
            found = await self.ours(memory.instance_id) if memory.instance_id else None
            if found is not None:
                await self.store.keep(InstanceRecord(found.id, zone=self.cloud.zone))
            else:
                await self._warn_unrecorded()
        if memory.instance_id and memory.instance_id != (
            found.id if found else record and record.instance_id
        ):
            self.warn(
                Reason.FOREIGN_INSTANCE_IGNORED,
                memory.instance_id,
                f"status names instance {memory.instance_id}, which was not created for this resource: "
                "ignored (it is neither stopped, started, changed nor deleted)",
            )
        return found

    async def ours(self, instance_id: str) -> ObservedInstance | None:
        """The live instance with this id if it carries our owner and cluster labels."""
        found = await self.cloud.get_instance(instance_id)
        if found is None or found.state in GONE:
            return None
        if not self._labelled_ours(found):
            self.warn(
                Reason.FOREIGN_INSTANCE_IGNORED,
                instance_id,
                f"instance {instance_id} does not carry this resource's owner and cluster labels: "
                "ignored (it is neither stopped, started, changed nor deleted)",
            )
            return None
        return found

    async def _created_with(self, token: str) -> ObservedInstance | None:
        """After a crash between the create call and recording its id: the oldest live instance with
        our labels and this create's token (a copy of the token can only be younger), recorded now."""
        live = [
            i
            for i in await self.cloud.find_instances({**self.owner_labels(), LABEL_CREATION: token})
            if i.state not in GONE and i.created_at is not None
        ]
        if not live:
            return None
        first = min(i.created_at for i in live if i.created_at is not None)
        oldest = [i for i in live if i.created_at == first]
        if len(oldest) != 1:  # created in the same second (the API's resolution): which is ours is unknown
            for inst in oldest:
                self.warn(
                    Reason.UNRECORDED_INSTANCE_IGNORED,
                    inst.id,
                    f"instance {inst.id} carries this resource's last creation token, as does another "
                    "made in the same second: neither is adopted nor touched",
                )
            return None
        await self.store.keep(InstanceRecord(oldest[0].id, token, self.cloud.zone))
        return await self.ours(oldest[0].id)

    async def _warn_unrecorded(self) -> None:
        """Instances with our labels but no record of their create: each warned about once."""
        for inst in await self.cloud.find_instances(self.owner_labels()):
            if inst.state not in GONE and self._same_replica(inst):
                self.warn(
                    Reason.UNRECORDED_INSTANCE_IGNORED,
                    inst.id,
                    f"instance {inst.id} carries this resource's labels but was not recorded as created "
                    "for it (labels can be copied): not adopted and not touched",
                )

    def owner_labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE,
            LABEL_OWNER: self.target.owner_uid,
            LABEL_CLUSTER: self.target.cluster,
        }

    def _same_replica(self, instance: ObservedInstance) -> bool:
        """The operator's replicas share the owner uid: another replica's VM is not a look-alike of
        this one's (a VM without the label is replica 0's, made while `max` was 1)."""
        replica = self.target.replica
        return replica is None or instance.labels.get(LABEL_REPLICA, "0") == str(replica)

    def _labelled_ours(self, instance: ObservedInstance) -> bool:
        return all(instance.labels.get(k) == v for k, v in self.owner_labels().items())

    def warn(self, reason: Reason, instance_id: str, message: str) -> None:
        """Once per reason and instance per process: a Warning Event (operator) or log line."""
        if (reason, instance_id) in self._warned:
            return
        self._warned.add((reason, instance_id))
        log.warning("%s: %s", reason, message)
        self.warn_event(reason, message)

    # -- acting ------------------------------------------------------------------------------------------
