"""Replica VMs found from what the operator owns, not from status (issue 19).

status.replicas is how a round learns which replicas exist, but it can lose them: an operator of a
version without retiring lowered to `max: 1` wrote it back as `[0]` (its replicas 1.. kept running,
with their Secret pairs, until the resource went), and a tenant may clear status. So once per
process, spec generation and cloud client, the cloud's instances of this resource (our managed-by,
owner uid and cluster labels) are listed in every zone one may be in (the placements', those status
names, those the records name: a lost replica on a fallback zone is found there too), and the
replica index i on each one's `remote-ollama-replica` label counts as found only when replica i's own Secret records that instance
(`Ownership.observe_instance`, issue 18): a look-alike made by another member of the organisation,
with the same labels, is never counted (nor touched). A found replica at or above `max` is retired
as any other (retiring.py: stopped once nothing is in flight to it, then its VM and Secret pair go).
"""

from __future__ import annotations

from typing import Any

import kopf

from remote_ollama.cloud.port import Cloud
from remote_ollama.core.observed import GONE
from remote_ollama.core.types import Memory
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.kube.signal import MAX_REPLICAS
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_REPLICA

from .context import ResourceContext, retire
from .events import event
from .fallback import zones_used
from .members import items_of
from .ownership import NameConflict
from .recorded_placement import recorded_zones
from .replica_set import member_reconciler


async def find_replicas(ctx: ResourceContext, body: kopf.Body, base: Spec, cloud: Cloud) -> None:
    """Look for this resource's replica VMs in the cloud when due (see the module's docstring), in
    every zone one may be in: the spec's, those status names and those the records name."""
    key = (body.metadata.get("generation"), id(cloud))
    if ctx.replicas_scanned == key:
        return
    raw = dict(body)
    for zone in dict.fromkeys(
        [cloud.zone, *zones_used(base, raw), *await recorded_zones(ctx, raw, base.replicas.max)]
    ):
        there = cloud if zone == cloud.zone else await ctx.cloud_in(base, zone)
        if there is not None:
            await _scan(ctx, body, there)
    ctx.replicas_scanned = key


async def _scan(ctx: ResourceContext, body: kopf.Body, cloud: Cloud) -> None:
    """One zone's instances labelled ours; a replica counts when its own Secret records one."""
    candidates = set()
    for instance in await cloud.find_instances(ctx.reconciler(cloud).ownership.owner_labels()):
        label = instance.labels.get(LABEL_REPLICA, "")
        if instance.state not in GONE and label.isdigit() and 0 < int(label) < MAX_REPLICAS:
            candidates.add(int(label))
    for index in sorted(candidates - ctx.replicas_found):
        own = ctx.members.get(index)
        if own is not None and own.cloud is not cloud:  # kept in its own zone; looked at here apart
            reconciler = Reconciler(cloud, own.target, own.store)
        else:
            reconciler = member_reconciler(ctx, cloud, index)
        reconciler.warn = lambda reason, message: event(body, reason, message)
        try:  # the instance replica `index`'s Secret records, if it is live and labelled ours
            ours = await reconciler.ownership.observe_instance(Memory())
        except NameConflict:  # a Secret of that name not owned by the resource records nothing
            ours = None
        if ours is not None:
            ctx.replicas_found.add(index)
        if own is None and ours is None:  # made for this look only
            retire(ctx.members.pop(index))
        elif own is not None and reconciler is not own:
            await reconciler.close()


def beyond(ctx: ResourceContext, raw: dict[str, Any], replicas_max: int) -> list[int]:
    """The replicas at or above `replicas_max` to retire: listed in status or found in the cloud."""
    return sorted(i for i in set(items_of(raw)) | ctx.replicas_found if i >= replicas_max)
