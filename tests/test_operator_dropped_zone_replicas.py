"""Replicas and zones the spec no longer names, or status no longer lists (issue 19), on the real
kube-apiserver with the Exoscale simulator. A spec edit dropping replica 0's recorded zone moves
that replica alone (its VM there is deleted before one is made in the new placement); a replica on
a fallback zone that status lost is found there and retired, not only at deletion."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import (
    CloudWorld,
    OperatorWorld,
    cloud_world,
    credentials_secret,
    operator_world,
    remote_ollama,
)
from test_operator_identity import patch_status
from test_operator_scale_in import secrets_gone
from waiting import LIFECYCLE, wait_until

from remote_ollama.spec.names import LABEL_REPLICA

HOME, OTHER = "at-vie-2", "de-fra-1"
KEEP = {"idle": {"stopAfter": "1h"}, "warmUp": False}


def members(world: OperatorWorld | CloudWorld) -> dict[int, dict[str, Any]]:
    obj = world.get("remoteollama", "granite") or {}
    return {m["index"]: m for m in (obj.get("status") or {}).get("replicas") or []}


def where(world: OperatorWorld | CloudWorld) -> list[tuple[str, str]]:
    """(replica index, zone) of each live instance."""
    sim = world.sim.sim
    return sorted((i.labels.get(LABEL_REPLICA, "0"), str(sim.zone_of(i.id))) for i in world.instances())


def one_replica_fallen_back(world: OperatorWorld | CloudWorld) -> None:
    """Replica 0 in HOME, then replica 1 in OTHER (HOME has no room left for it)."""
    world.sim.sim.set_quota("gpua5000", 10)
    world.apply(credentials_secret())
    world.apply(remote_ollama(placements=[{"zone": OTHER}], replicas={"min": 1, "max": 2}, **KEEP))
    wait_until(lambda: members(world).get(0, {}).get("phase") == "Ready", 90, "replica 0 Ready")
    world.sim.sim.fail_capacity(1000, on=("create",), zone=HOME)
    world.apply(remote_ollama(placements=[{"zone": OTHER}], replicas={"min": 2, "max": 2}, **KEEP))
    wait_until(lambda: where(world) == [("0", HOME), ("1", OTHER)], 90, "replica 1 up in OTHER")


def test_a_spec_edit_dropping_replica_0s_zone_moves_replica_0_alone(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        one_replica_fallen_back(world)
        ids = {i.labels.get(LABEL_REPLICA, "0"): i.id for i in world.instances()}
        world.apply(remote_ollama(zone=OTHER, replicas={"min": 2, "max": 2}, **KEEP))
        wait_until(
            lambda: where(world) == [("0", OTHER), ("1", OTHER)], LIFECYCLE, "replica 0 moved to OTHER"
        )
        after = {i.labels.get(LABEL_REPLICA, "0"): i.id for i in world.instances()}
        assert after["1"] == ids["1"] and after["0"] != ids["0"]  # replica 1 untouched
        events = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
        said = [e["message"] for e in events if e.get("reason") == "PlacementDropped"]
        assert any(f"zone {HOME}" in m and f"zone {OTHER}" in m and ids["0"] in m for m in said), said
        wait_until(
            lambda: [m.get("phase") for m in members(world).values()] == ["Ready", "Ready"], 90, "two Ready"
        )
        world.delete_resource()
        assert world.instances() == [] and world.security_groups() == []


def test_a_lost_replica_on_a_fallback_zone_is_found_there_and_retired(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        first = world.start_operator()
        one_replica_fallen_back(world)
        wait_until(lambda: members(world).get(1, {}).get("phase") == "Ready", 90, "replica 1 Ready")
        [one] = [i.id for i in world.instances() if i.labels.get(LABEL_REPLICA) == "1"]
        first.kill()
        spec = {"spec": {"replicas": {"min": 0, "max": 1}}}  # an older operator then wrote status back
        kube.kubectl("patch", "rol", "granite", "--type", "merge", "-p", json.dumps(spec), check=True)
        patch_status(kube, {"replicas": [members(world)[0]]})
        world.start_operator()
        wait_until(
            lambda: one not in {i.id for i in world.instances()}, 90, "replica 1's VM in OTHER deleted"
        )
        wait_until(lambda: secrets_gone(world, 1), 30, "replica 1's Secrets deleted")
        assert where(world) == [("0", HOME)]
