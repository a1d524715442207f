"""Security groups are named from the cluster id and the resource uid, marked with their owner,
and converged only when provably the resource's; groups of VMs created under the old names keep
working and are cleaned up with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from memory_data import memory_store

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.exoscale.adapter import owner_labels
from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.engine.target import Target
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import legacy_security_group_name, security_group_name
from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
from remote_ollama.vm.pki import generate_vm_credentials

KEY, SECRET, ZONE = "EXOsgtest0123456789", "sg-test-secret", "at-vie-2"
CLUSTER = "0f5e2d9c-1111-4222-8333-444455556666"
UID_A, UID_B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"


@pytest.fixture
async def world() -> AsyncIterator[tuple[ExoscaleSimulator, AsyncExoscaleCloud]]:
    timings = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.02)
    async with ExoscaleSimulator(keys={KEY: SECRET}, zone=ZONE, timings=timings) as sim:
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, ZONE, endpoint=sim.url, poll_interval=0.02)
        yield sim, cloud


def reconciler(
    cloud: AsyncExoscaleCloud, uid: str, namespace: str, name: str, cluster: str = CLUSTER
) -> Reconciler:
    target = Target(
        owner_uid=uid,
        cluster=cluster,
        name=f"{namespace}-{name}",
        security_group=security_group_name(cluster, uid),
        legacy_security_group=legacy_security_group_name(namespace, name),
        mark_group=True,
    )
    return Reconciler(cloud, target, memory_store())


def ingress(sim: ExoscaleSimulator, name: str) -> list[str]:
    (group,) = [g for g in sim.state.security_groups.values() if g.name == name]
    return sorted(r.network for r in group.rules if r.flow_direction == "ingress")


def spec(*cidrs: str) -> Spec:
    return replace(Spec(), allowed_source_cidrs=cidrs)


async def test_colliding_old_names_get_distinct_groups(world: Any) -> None:
    sim, cloud = world
    assert legacy_security_group_name("team-a", "llm") == legacy_security_group_name("team", "a-llm")
    a = reconciler(cloud, UID_A, "team-a", "llm")
    b = reconciler(cloud, UID_B, "team", "a-llm")
    other_cluster = reconciler(cloud, UID_A.replace("a", "c"), "team-a", "llm", cluster="another-cluster")
    await a.ensure_access(spec("203.0.113.0/24"))
    await b.ensure_access(spec("198.51.100.0/24"))
    await other_cluster.ensure_access(spec("192.0.2.0/24"))
    assert len(sim.state.security_groups) == 3
    assert ingress(sim, a.target.security_group) == ["203.0.113.0/24"]
    assert ingress(sim, b.target.security_group) == ["198.51.100.0/24"], "a's rules rewrote b's group"
    await a.ensure_access(spec("10.0.0.0/8"))
    assert ingress(sim, b.target.security_group) == ["198.51.100.0/24"]


async def test_a_group_with_our_name_but_not_our_mark_is_left_alone(world: Any) -> None:
    sim, cloud = world
    a = reconciler(cloud, UID_A, "team-a", "llm")
    planted = await cloud.ensure_security_group(a.target.security_group, ["0.0.0.0/0"])
    with pytest.raises(CloudError) as err:
        await a.ensure_access(spec("203.0.113.0/24"))
    assert err.value.reason == "SecurityGroupConflict" and not err.value.retryable
    assert ingress(sim, a.target.security_group) == ["0.0.0.0/0"]
    assert [g.id for g in sim.state.security_groups.values()] == [planted]


async def test_a_vm_made_under_the_old_name_keeps_its_group_and_takes_it_along(world: Any) -> None:
    sim, cloud = world
    a = reconciler(cloud, UID_A, "team-a", "llm")
    b = reconciler(cloud, UID_B, "team", "a-llm")  # same old name: its VM is not attached to it
    legacy = a.target.legacy_security_group
    assert legacy is not None
    old_id = await cloud.ensure_security_group(legacy, ["0.0.0.0/0"])
    inst = await cloud.create_instance(
        "team-a-llm", "gpua5000.small", "Linux Ubuntu 22.04 LTS 64-bit", 50,
        encode_user_data(render_user_data(generate_vm_credentials(), ["granite3.1-dense:8b"])), old_id,
        owner_labels(UID_A, CLUSTER), deadline=20,
    )  # fmt: skip
    await a.ensure_access(spec("203.0.113.0/24"), inst)
    assert ingress(sim, legacy) == ["203.0.113.0/24"], "the VM's own (old-named) group follows the spec"
    assert all(g.name != a.target.security_group for g in sim.state.security_groups.values())
    await b.destroy_all()  # b has no VM: the old-named group is not provably b's
    assert any(g.name == legacy for g in sim.state.security_groups.values())
    await a.destroy_all()
    assert sim.state.security_groups == {}, "the old-named group outlived its VM"
