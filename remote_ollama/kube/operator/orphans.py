"""What a crash may leave in one account and zone: this cluster's instances, security groups, baked
templates, model volumes and volume snapshots whose owner (a RemoteOllama uid) no longer exists.

Each is deleted once it has been seen unowned for the grace period, and only when the list of
owners could be read (else nothing is deleted). Clusters and standalone users may share one
Exoscale account: only this cluster's are looked at, and an owner that exists is never touched.
Instances, volumes and volume snapshots carry labels (cluster and owner); security groups and
templates carry none, so their names say cluster and owner. A baked template's instance snapshot
dies with its instance, so it needs no sweep of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core.observed import GONE
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    SETUP_HASH_LENGTH,
    TEMPLATE_PREFIX,
    owner_in_name,
    security_group_name,
)

log = logging.getLogger("remote_ollama.kube.operator")

Report = Callable[[str], None]  # an OrphanDeleted Event's message


@dataclass
class OrphanSweep:
    """Seen-since times across sweeps (a thing is deleted once unowned for `grace` seconds)."""

    cluster_id: str
    grace: float
    seen: dict[str, float] = field(default_factory=dict)

    def due(self, key: str, now: float) -> bool:
        """Unowned since at least the grace period (first seen now: not yet)."""
        return now - self.seen.setdefault(key, now) >= self.grace

    async def sweep(
        self, cloud: Cloud, owners: Callable[[], Awaitable[set[str] | None]], report: Report, now: float
    ) -> None:
        mine = {LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE, LABEL_CLUSTER: self.cluster_id}
        instances = await cloud.find_instances(mine)
        group_prefix = security_group_name(self.cluster_id, "")
        tpl_prefix = f"{TEMPLATE_PREFIX}-{self.cluster_id}-"
        groups = await cloud.security_group_names(group_prefix)
        templates = await cloud.private_templates(tpl_prefix)
        volumes = await _unless_refused(cloud.volumes(mine))
        snapshots = await _unless_refused(cloud.volume_snapshots(mine))
        if not (instances or groups or templates or volumes or snapshots):
            return
        alive = await owners()
        if alive is None:
            return  # cannot prove ownership: delete nothing
        for inst in instances:
            owner = inst.labels.get(LABEL_OWNER)
            if inst.labels.get(LABEL_CLUSTER) != self.cluster_id or owner in alive or inst.state in GONE:
                self.seen.pop(inst.id, None)
                continue
            if self.due(inst.id, now):
                await cloud.delete_instance(inst.id, wait=False)
                self.seen.pop(inst.id, None)
                report(f"deleted instance {inst.id} of deleted owner {owner} (cluster {self.cluster_id})")
        for group in groups:
            owner = owner_in_name(group, group_prefix)
            if owner is None or owner in alive or not self.due(f"sg:{group}", now):
                continue
            try:  # refused while an instance still uses it: the next sweep tries again
                await cloud.delete_security_group(group)
            except CloudError as exc:
                log.info("orphaned security group %s not deleted yet: %s", group, exc)
                continue
            self.seen.pop(f"sg:{group}", None)
            report(f"deleted security group {group} of deleted owner {owner}")
        for tpl in templates:
            name = str(tpl.get("name", ""))
            owner = owner_in_name(name, tpl_prefix, SETUP_HASH_LENGTH)
            if self._unowned(owner, alive, f"tpl:{tpl.get('id')}", now):
                await cloud.delete_template(str(tpl["id"]))
                report(f"deleted template {name} of deleted owner {owner}")
        for volume in volumes:
            owner = _owner(volume, self.cluster_id)
            if self._unowned(owner, alive, f"vol:{volume.get('id')}", now):
                if volume.get("instance"):
                    await cloud.detach_volume(str(volume["id"]))
                await cloud.delete_volume(str(volume["id"]))
                report(f"deleted model volume {volume.get('name')} of deleted owner {owner}")
        for snap in snapshots:
            owner = _owner(snap, self.cluster_id)
            if self._unowned(owner, alive, f"snap:{snap.get('id')}", now):
                await cloud.delete_volume_snapshot(str(snap["id"]))
                report(f"deleted volume snapshot {snap.get('name')} of deleted owner {owner}")

    def _unowned(self, owner: str | None, alive: set[str], key: str, now: float) -> bool:
        """An owner that no longer exists, for the grace period: due for deletion (and forgotten)."""
        if owner is None or owner in alive or not self.due(key, now):
            return False
        self.seen.pop(key, None)
        return True


def _owner(labelled: dict[str, Any], cluster_id: str) -> str | None:
    """The owner uid of a labelled object of this cluster (None: not this cluster's, or no owner)."""
    labels = labelled.get("labels") or {}
    return labels.get(LABEL_OWNER) if labels.get(LABEL_CLUSTER) == cluster_id else None


async def _unless_refused(listing: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A listing; none where the API refuses it for good (a zone without block storage)."""
    try:
        return await listing
    except CloudError as exc:
        if exc.retryable:
            raise
        log.debug("nothing to sweep: %s", exc)
        return []
