"""A spec edit that drops the zone the recorded VM is in (issue 19): the operator must not make a
new VM in the new placement and leave the old one running, unrecorded and unmetered. The VM moves:
the one in the dropped zone is deleted first (an Event names both zones), one is made in the new
placement and the record follows; deleting the resource leaves nothing in either zone."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from test_operator_identity import patch_status
from waiting import LIFECYCLE, wait_until

from remote_ollama.spec.names import ANN_IN_FLIGHT

HOME, OTHER = "at-vie-2", "de-fra-1"


def recorded_zone(kube: KubeNamespace) -> str:
    raw = kube.kubectl("get", "secret", "granite-remote-ollama-vm", "-o", "json", check=True).stdout
    return base64.b64decode(json.loads(raw)["data"].get("instance-zone", "")).decode()


def dropped(kube: KubeNamespace) -> list[dict[str, Any]]:
    items = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
    return [e for e in items if e.get("reason") == "PlacementDropped"]


def ready_in_home(kube: KubeNamespace, world: OperatorWorld) -> Any:
    """One VM Ready in HOME with OTHER as its fallback, recorded there; returns it."""
    world.apply(credentials_secret())
    world.apply(remote_ollama(placements=[{"zone": OTHER}], idle={}))
    world.wait_phase("Ready", timeout=60)
    [vm] = world.instances()
    assert world.sim.sim.zone_of(vm.id) == HOME and recorded_zone(kube) == HOME
    return vm


def test_a_spec_edit_dropping_the_vms_zone_moves_the_vm(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        old = ready_in_home(kube, world)

        world.apply(remote_ollama(zone=OTHER, idle={}))  # placements [B] only

        def moved() -> list[Any]:
            live = world.instances()
            return live if [sim.zone_of(i.id) for i in live] == [OTHER] else []

        [new] = wait_until(moved, LIFECYCLE, "the one VM running in the new zone only")
        assert new.id != old.id and world.instances(zone=HOME) == []
        world.wait_phase("Ready", timeout=60)
        assert recorded_zone(kube) == OTHER
        (event,) = wait_until(lambda: dropped(kube), LIFECYCLE, "an Event PlacementDropped")
        assert f"zone {HOME}" in event["message"] and f"zone {OTHER}" in event["message"]
        assert old.id in event["message"]

        world.delete_resource()
        assert world.instances(zone=HOME) == [] and world.instances(zone=OTHER) == []
        assert world.security_groups() == []


def waiting_move(kube: KubeNamespace, world: OperatorWorld) -> Any:
    """A VM Ready in HOME with a request in flight to it, then the spec edited to OTHER only:
    the operator says it waits; returns the VM."""
    old = ready_in_home(kube, world)
    kube.kubectl("annotate", "rol", "granite", f"{ANN_IN_FLIGHT}=1", "--overwrite", check=True)
    world.apply(remote_ollama(zone=OTHER, idle={}))
    (event,) = wait_until(lambda: dropped(kube), LIFECYCLE, "an Event PlacementDropped")
    assert "once the 1 request(s) in flight to it complete" in event["message"], event["message"]
    return old


def test_the_move_waits_for_the_requests_in_flight(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        old = waiting_move(kube, world)
        assert [i.id for i in world.instances()] == [old.id]  # still serving; nothing made in OTHER
        assert not [c for c in sim.calls if c.operation == "create-instance" and c.zone == OTHER]
        kube.kubectl("annotate", "rol", "granite", f"{ANN_IN_FLIGHT}=0", "--overwrite", check=True)
        wait_until(
            lambda: [sim.zone_of(i.id) for i in world.instances()] == [OTHER], LIFECYCLE, "moved to OTHER"
        )
        world.wait_phase("Ready", timeout=60)
        assert recorded_zone(kube) == OTHER


def test_deleting_while_the_move_waits_deletes_the_vm_in_the_dropped_zone(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        waiting_move(kube, world)
        patch_status(kube, {"placement": None, "replicas": None})  # status (tenant-writable) names no zone
        world.delete_resource()
        assert world.instances(zone=HOME) == [] and world.instances(zone=OTHER) == []
        assert world.security_groups() == []
