"""In a cluster: spec.coldStart.modelVolume shows in the resource's status (the ModelVolume
condition, its storage in status.cost) and the volume goes with the resource."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import (
    KEY,
    SECRET,
    OperatorWorld,
    credentials_secret,
    operator_world,
    remote_ollama,
    wait_until,
)

from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud
from remote_ollama.core.model_volume import volume_name
from remote_ollama.engine.target import instance_name
from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.spec.names import LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_MANAGED_BY_VALUE, LABEL_OWNER


def status(world: OperatorWorld) -> dict[str, Any]:
    return dict(((world.get("remoteollama", "granite") or {}).get("status")) or {})


def condition(world: OperatorWorld, kind: str) -> dict[str, Any]:
    return next((c for c in status(world).get("conditions") or [] if c["type"] == kind), {})


def test_the_volume_shows_in_status_and_goes_with_the_resource(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        store = volumes.of(world.sim.sim.states["ch-gva-2"])  # a zone with block storage
        world.apply(credentials_secret())
        cold_start = {"modelVolume": {"enabled": True, "size": 10}}
        world.apply(remote_ollama(zone="ch-gva-2", idle={"stopAfter": "10m"}, coldStart=cold_start))
        ready = world.wait_phase("Ready", timeout=60)
        instance = ready["status"]["instance"]["id"]
        (volume,) = store.volumes.values()
        assert volume.instance_id == instance and volume.labels[LABEL_OWNER] == ready["metadata"]["uid"]
        wait_until(
            lambda: condition(world, "ModelVolume").get("reason") == "VolumeReady", 30, "the condition"
        )
        assert condition(world, "ModelVolume")["status"] == "True"
        assert f"{volume.name} (10 GiB) attached to {instance}" in condition(world, "ModelVolume")["message"]
        wait_until(
            lambda: (status(world).get("cost") or {}).get("volumeStorageGB") == 10.7, 30, "its storage"
        )

        world.delete_resource()
        assert store.volumes == {}


def test_where_block_storage_is_not_offered_the_condition_and_a_warning_say_so(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        cold_start = {"modelVolume": {"enabled": True}}
        world.apply(remote_ollama(zone="at-vie-2", idle={"stopAfter": "10m"}, coldStart=cold_start))
        world.wait_phase("Ready", timeout=60)  # made as without a volume
        wait_until(lambda: condition(world, "ModelVolume").get("reason") == "VolumeUnsupported", 30, "it")
        assert "at-vie-2" in condition(world, "ModelVolume")["message"]
        assert condition(world, "ModelVolume")["status"] == "False"

        def warnings() -> list[dict[str, Any]]:
            out = world.kube.kubectl("get", "events", "-n", world.namespace, "-o", "json", check=True)
            items = json.loads(out.stdout)["items"]
            return [e for e in items if e.get("reason") == "VolumeUnsupported" and e.get("type") == "Warning"]

        wait_until(warnings, 30, "a VolumeUnsupported Warning Event")
        assert all(volumes.of(state).volumes == {} for state in world.sim.sim.states.values())


def test_a_volume_made_in_each_placement_zone_goes_with_the_resource(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room in Geneva once its volume is made: the VM and a volume of its own come up in
    Frankfurt (spec.placements). Deleting the resource removes both zones' volumes and the VM."""
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        sim.fail_capacity(1, on=("create",), zone="ch-gva-2")
        world.apply(credentials_secret())
        cold_start = {"modelVolume": {"enabled": True, "size": 10}}
        world.apply(
            remote_ollama(
                zone="ch-gva-2",
                placements=[{"zone": "de-fra-1"}],
                idle={"stopAfter": "10m"},
                coldStart=cold_start,
            )
        )
        ready = world.wait_phase("Ready", timeout=60)
        assert ready["status"]["placement"]["zone"] == "de-fra-1"
        (vm,) = world.instances()
        (there,) = volumes.of(sim.states["de-fra-1"]).volumes.values()
        assert there.instance_id == vm.id and len(volumes.of(sim.states["ch-gva-2"]).volumes) == 1

        world.delete_resource()
        assert [z for z in ("ch-gva-2", "de-fra-1") if volumes.of(sim.states[z]).volumes] == []
        assert world.instances() == []


def test_a_look_alike_volume_is_never_attached_and_a_warning_event_says_so(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another organisation member plants a volume with our labels and name before the first VM
    (the resource waits for its credentials Secret): the VM gets a volume of its own, the
    look-alike no call, and an UnrecordedVolumeIgnored Warning Event names it."""
    with operator_world(kube, monkeypatch) as world:
        zone = world.sim.sim.states["ch-gva-2"]
        world.apply(remote_ollama(zone="ch-gva-2", coldStart={"modelVolume": {"enabled": True, "size": 10}}))
        uid = wait_until(
            lambda: (world.get("remoteollama", "granite") or {}).get("metadata", {}).get("uid"), 30, "uid"
        )
        cluster = (world.get("namespace", "kube-system") or {})["metadata"]["uid"]  # the cluster id
        labels = {
            LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE,
            LABEL_OWNER: uid,
            LABEL_CLUSTER: cluster,
        }
        name = volume_name(instance_name(world.namespace, "granite"))
        member = ExoscaleCloud(KEY, SECRET, "ch-gva-2", endpoint=world.sim.url)  # the same organisation
        planted = str(member.volumes.create_volume(name, 10, labels)["id"])
        made = len(world.sim.sim.calls)  # the member's own calls made it
        world.apply(credentials_secret())
        ready = world.wait_phase("Ready", timeout=60)
        vm = ready["status"]["instance"]["id"]
        assert volumes.of(zone).volumes[planted].instance_id is None, "the look-alike is the model directory"
        (ours,) = (v for v in volumes.of(zone).volumes.values() if v.id != planted)
        assert ours.instance_id == vm
        assert [c.operation for c in world.sim.sim.calls[made:] if planted in c.path] == []

        def warnings() -> list[dict[str, Any]]:
            out = world.kube.kubectl("get", "events", "-n", world.namespace, "-o", "json", check=True)
            items = json.loads(out.stdout)["items"]
            return [
                e
                for e in items
                if e.get("reason") == "UnrecordedVolumeIgnored" and e.get("type") == "Warning"
            ]

        (event,) = wait_until(warnings, 30, "an UnrecordedVolumeIgnored Warning Event")
        assert planted in event["message"]
