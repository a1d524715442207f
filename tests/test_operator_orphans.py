"""Orphan clean-up: only this cluster's instances whose owner is gone, only after the grace period.

Several clusters and laptops may share one Exoscale account, so instances labelled for another
cluster or for standalone mode are never stopped, started or deleted.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator

from cluster.fixtures import KubeNamespace
from operator_world import KEY, SECRET, CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until

from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud
from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.sandbox.exoscale.objects import PrivateTemplate
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    SETUP_HASH_LENGTH,
    STANDALONE_CLUSTER,
    security_group_name,
    template_name,
)
from remote_ollama.spec.sections import DEFAULT_TEMPLATE

GRACE = 2.0


def planted(world: CloudWorld, cluster: str, name: str, **copied: str) -> str:
    """An instance someone else made, with the labels the operator would recognise (and `copied`:
    more labels, or the owner uid, copied from one of ours)."""
    cloud = ExoscaleCloud(KEY, SECRET, world.sim.sim.zone, endpoint=world.sim.url, poll_interval=0.05)
    sg = cloud.security_groups.ensure_security_group(f"planted-{name}", ["0.0.0.0/0"])
    labels = {
        LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE,
        LABEL_OWNER: str(uuid.uuid4()),
        LABEL_CLUSTER: cluster,
        **copied,
    }
    inst = cloud.create_instance(
        name, "gpua5000.small", DEFAULT_TEMPLATE, 50, "I2Nsb3VkLWNvbmZpZwo=", sg, labels, wait=False
    )
    return inst.id


@contextlib.contextmanager
def swept_world(kube: KubeNamespace, quota: int | None = None) -> Iterator[tuple[CloudWorld, str]]:
    """The operator sweeping every 0.5 s with a grace of GRACE, one resource Ready (its instance id)."""
    env = {"REMOTE_OLLAMA_ORPHAN_GRACE": str(GRACE), "REMOTE_OLLAMA_ORPHAN_INTERVAL": "0.5"}
    with cloud_world(kube, env=env) as world:
        if quota is not None:
            world.sim.sim.set_quota("gpua5000", quota)
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(remote_ollama(idle={}))
        yield world, world.wait_phase("Ready")["status"]["instance"]["id"]


def touched(world: CloudWorld, instance_id: str) -> list[str]:
    verbs = {"stop-instance", "start-instance", "delete-instance", "reboot-instance"}
    return [c.operation for c in list(world.sim.sim.calls) if instance_id in c.path and c.operation in verbs]


def test_orphans_of_this_cluster_only_are_deleted_after_the_grace(kube: KubeNamespace) -> None:
    with swept_world(kube, quota=10) as (world, ours):
        planted_at = time.monotonic()
        orphan = planted(world, world.cluster_id(), "orphan")
        foreign = planted(world, "another-clusters-uid", "foreign")
        standalone = planted(world, STANDALONE_CLUSTER, "laptop")

        wait_until(lambda: touched(world, orphan), LIFECYCLE, "orphan deleted")
        assert time.monotonic() - planted_at >= GRACE
        assert touched(world, orphan) == ["delete-instance"]

        def event() -> list[dict[str, object]]:
            items = json.loads(kube.kubectl("get", "events", "-A", "-o", "json", check=True).stdout)["items"]
            return [
                e for e in items if e.get("reason") == "OrphanDeleted" and orphan in str(e.get("message"))
            ]

        wait_until(event, LIFECYCLE, "OrphanDeleted event")

        # a few more sweeps: the other clusters' instances and our own live one stay untouched
        sweeps = world.calls("list-instances")
        wait_until(lambda: world.calls("list-instances") >= sweeps + 3, LIFECYCLE, "three more sweeps")
        for other in (foreign, standalone, ours):
            assert touched(world, other) == [], other
        states = {i.id: i.state for i in world.instances()}
        assert states[foreign] == states[standalone] == states[ours] == "running"


def test_orphaned_security_groups_and_templates_of_this_cluster_go_after_the_grace(
    kube: KubeNamespace,
) -> None:
    """Security groups and baked templates carry no labels: their names say cluster and owner uid."""
    with swept_world(kube) as (world, _):
        cloud = ExoscaleCloud(KEY, SECRET, world.sim.sim.zone, endpoint=world.sim.url, poll_interval=0.05)
        ours = security_group_name(world.cluster_id(), world.uid())
        gone_owner = str(uuid.uuid4())
        orphan_group = security_group_name(world.cluster_id(), gone_owner)
        foreign_group = security_group_name("another-clusters-uid", gone_owner)
        planted_at = time.monotonic()
        for name in (orphan_group, foreign_group):
            cloud.security_groups.ensure_security_group(name, ["0.0.0.0/0"])
        state = world.sim.sim.state
        orphan_tpl = template_name(world.cluster_id(), gone_owner, "0" * SETUP_HASH_LENGTH)
        foreign_tpl = template_name("another-clusters-uid", gone_owner, "0" * SETUP_HASH_LENGTH)
        for name in (orphan_tpl, foreign_tpl):
            tpl = PrivateTemplate(str(uuid.uuid4()), name, "planted", 50, state.zone, "2026-01-01T00:00:00Z")
            state.templates[tpl.id] = tpl

        def names() -> set[str]:
            return {g.name for g in state.security_groups.values()} | {
                t.name for t in state.templates.values()
            }

        wait_until(lambda: not {orphan_group, orphan_tpl} & names(), LIFECYCLE, "the orphans deleted")
        assert time.monotonic() - planted_at >= GRACE
        sweeps = world.calls("list-security-groups")
        wait_until(lambda: world.calls("list-security-groups") >= sweeps + 3, LIFECYCLE, "three more sweeps")
        assert {ours, foreign_group, foreign_tpl} <= names()


def test_orphaned_model_volumes_and_volume_snapshots_of_this_cluster_go_after_the_grace(
    kube: KubeNamespace,
) -> None:
    """Volumes and their snapshots carry labels: this cluster's whose owner is gone are deleted (an
    attached one detached first); another cluster's and a live owner's are never touched."""
    with swept_world(kube) as (world, ours):
        store = volumes.of(world.sim.sim.state)
        gone = str(uuid.uuid4())
        owners = {"orphan": (world.cluster_id(), gone), "attached": (world.cluster_id(), gone)}
        owners |= {"foreign": ("another-clusters-uid", gone), "live": (world.cluster_id(), world.uid())}
        planted_at = time.monotonic()
        for name, (cluster, owner) in owners.items():
            labels = {LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE, LABEL_CLUSTER: cluster, LABEL_OWNER: owner}
            volume = volumes.Volume(str(uuid.uuid4()), name, 10, labels, "2026-01-01T00:00:00Z")
            store.volumes[volume.id] = volume
            snap = volumes.VolumeSnapshot(
                str(uuid.uuid4()), name, 10, labels, volume.created_at, volume_id=volume.id
            )
            store.snapshots[snap.id] = snap
        attached = next(v for v in store.volumes.values() if v.name == "attached")
        attached.instance_id, attached.state = ours, "attached"  # to a live VM: let go first

        def names() -> set[str]:
            return {f"vol:{v.name}" for v in store.volumes.values()} | {
                f"snap:{s.name}" for s in store.snapshots.values()
            }

        orphans = {"vol:orphan", "vol:attached", "snap:orphan", "snap:attached"}
        wait_until(lambda: not orphans & names(), 20, "the orphans deleted")
        assert time.monotonic() - planted_at >= GRACE
        assert world.calls("detach-block-storage-volume") == 1
        sweeps = world.calls("list-block-storage-volumes")
        wait_until(lambda: world.calls("list-block-storage-volumes") >= sweeps + 3, 10, "three more sweeps")
        assert names() == {"vol:foreign", "vol:live", "snap:foreign", "snap:live"}
        assert [i.state for i in world.instances() if i.id == ours] == ["running"]
