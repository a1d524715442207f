"""Replica VMs that status lost are found and retired (issue 19): an operator of a version without
retiring, lowered to `max: 1`, wrote status.replicas back as `[0]`, and its replica 1 kept its VM and
its Secret pair until the resource was deleted (a tenant clearing status did the same). The operator
finds its replicas from what it owns (the cloud's instances of this resource that each replica's own
Secret records), so a new one retires replica 1; look-alikes with the same labels stay untouched.

The operator runs as a process on the real kube-apiserver with the Exoscale simulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from test_operator_identity import patch_status
from test_operator_orphans import planted, touched
from test_operator_replicas import stream
from test_operator_scale_in import secrets_gone
from waiting import wait_until

from remote_ollama.spec.names import LABEL_OWNER, LABEL_REPLICA


def members(world: CloudWorld) -> dict[int, dict[str, Any]]:
    obj = world.get("remoteollama", "granite") or {}
    return {m["index"]: m for m in (obj.get("status") or {}).get("replicas") or []}


def live(world: CloudWorld) -> dict[str, str]:
    return {i.id: i.state for i in world.instances()}


@pytest.mark.parametrize("damage", ["an older operator at max 1", "a tenant clearing status"])
def test_replicas_status_lost_are_found_from_what_the_operator_owns_and_retired(
    kube: KubeNamespace, damage: str
) -> None:
    with cloud_world(kube) as world:
        world.sim.sim.set_quota("gpua5000", 10)
        world.apply(credentials_secret())
        first = world.start_operator()
        world.apply(remote_ollama(replicas={"min": 2, "max": 2}, idle={"stopAfter": "1h"}, warmUp=False))
        wait_until(
            lambda: [m.get("phase") for m in members(world).values()] == ["Ready", "Ready"], 90, "two Ready"
        )
        zero, one = members(world)[0]["instanceID"], members(world)[1]["instanceID"]
        # an organisation member's look-alikes, with every label of ours (replica 1's, and a replica 2)
        copied = {LABEL_OWNER: world.uid()}
        alikes = [
            planted(world, world.cluster_id(), f"alike-{i}", **copied, **{LABEL_REPLICA: str(i)})
            for i in (1, 2)
        ]
        wait_until(lambda: all(live(world).get(a) == "running" for a in alikes), 30, "look-alikes up")
        first.kill()

        # while no operator of ours runs, the damage
        spec = {"spec": {"replicas": {"min": 0, "max": 1}}}
        world.kube.kubectl("patch", "rol", "granite", "--type", "merge", "-p", json.dumps(spec), check=True)
        if damage == "an older operator at max 1":
            patch_status(kube, {"replicas": [members(world)[0]]})
        else:
            cleared = {k: None for k in (world.get("remoteollama", "granite") or {}).get("status") or {}}
            patch_status(kube, cleared)
            assert members(world) == {}

        world.start_operator()
        wait_until(lambda: one not in live(world), 90, "replica 1's VM deleted")
        assert touched(world, one) == ["stop-instance", "delete-instance"]  # stopped first, then deleted
        wait_until(lambda: secrets_gone(world, 1), 30, "replica 1's Secrets deleted")
        # the look-alikes are neither stopped nor deleted, and replica 0 is the same VM, serving
        for alike in alikes:
            assert touched(world, alike) == [] and live(world)[alike] == "running"
        if damage == "an older operator at max 1":  # its memory (status.lifecycle) was kept
            assert live(world)[zero] == "running" and touched(world, zero) == []
        else:  # its memory went too: like any idle replica never seen, it stops until asked for
            assert zero in live(world) and "delete-instance" not in touched(world, zero)
        assert world.get("secret", "granite-remote-ollama") is not None
        assert world.get("secret", "granite-remote-ollama-vm") is not None
        wait_until(lambda: list(members(world)) == [0], 30, "status lists replica 0 only")
        url = world.start_proxy()
        out: list[Any] = []
        stream(url, 1, out)
        assert isinstance(out[0], dict) and out[0].get("done") is True, out
        assert live(world)[zero] == "running" and "delete-instance" not in touched(world, zero)
