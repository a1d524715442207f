"""End to end: no quota and no capacity where preferred -> the VM comes up on the next placement."""

from __future__ import annotations

import json
from typing import Any

import ollama
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, wait_until


def test_quota_and_capacity_failures_move_to_the_next_placement(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        sim.exceed_quota("gpua5000")  # no A5000 anywhere (the organisation's quota counts every zone)
        sim.fail_capacity(1, on=("create",), zone="at-vie-2")  # and no room for anything in Vienna
        world.apply(credentials_secret())
        placements = [
            {"zone": "de-fra-1"},
            {"zone": "at-vie-2", "instanceType": "gpu3080ti.small"},
            {"zone": "ch-gva-2", "instanceType": "gpu3080ti.small"},
        ]
        world.apply(remote_ollama(placements=placements))
        obj = world.wait_phase("Ready", timeout=60)
        status = obj["status"]
        assert status["placement"]["zone"] == "ch-gva-2"
        assert status["placement"]["instanceType"] == "gpu3080ti.small"
        # the VM exists in Geneva, each create went to its own zone, and nothing is left in Vienna
        [vm] = world.instances()
        assert sim.zone_of(vm.id) == "ch-gva-2" and vm.instance_type.name == "gpu3080ti.small"
        creates = [c.zone for c in sim.calls if c.operation == "create-instance"]
        assert creates == ["at-vie-2", "ch-gva-2"], creates  # the quota is read before creating
        assert world.instances(zone="at-vie-2", live=False) == []
        conds = {c["type"]: c for c in status["conditions"]}
        cap = conds["CapacityUnavailable"]
        assert cap["status"] == "True" and cap["reason"] == "FellBack"
        for tried in (
            "at-vie-2/gpua5000.small (QuotaExceeded)",
            "de-fra-1/gpua5000.small (QuotaExceeded)",
            "at-vie-2/gpu3080ti.small (InsufficientCapacity)",
        ):
            assert tried in cap["message"], cap["message"]
        assert "using ch-gva-2/gpu3080ti.small" in cap["message"]

        def fallback_events() -> list[dict[str, Any]]:
            out = kube.kubectl("get", "events", "-o", "json", check=True).stdout
            return [e for e in json.loads(out)["items"] if e.get("reason") == "CapacityUnavailable"]

        events = wait_until(
            lambda: len(fallback_events()) == 3 and fallback_events(), LIFECYCLE, "three events"
        )
        last = sorted(e["message"] for e in events)[-1]
        assert "now trying ch-gva-2/gpu3080ti.small" in " ".join(e["message"] for e in events), last
        assert all(e["type"] == "Warning" for e in events)


def test_no_room_to_start_the_stopped_vm_moves_it_to_the_next_zone(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stopped VM cannot start again in Vienna: it is deleted there and created in Frankfurt,
    and the request that woke it is answered from Frankfurt."""
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        world.apply(credentials_secret())
        world.apply(remote_ollama(placements=[{"zone": "de-fra-1"}]))
        world.wait_phase("Ready", timeout=60)
        [first] = world.instances()
        assert sim.zone_of(first.id) == "at-vie-2"
        world.wait_phase("Stopped")
        wait_until(lambda: [i.state for i in world.instances()] == ["stopped"], LIFECYCLE, "instance stopped")

        sim.fail_capacity(5, on=("start",), zone="at-vie-2")  # whether retried in place or not: no room
        client = ollama.Client(host=world.start_proxy(), timeout=120)
        reply = client.generate(model="granite3.1-dense:8b", prompt="again", stream=False)
        assert reply.done and reply.response

        def placed() -> dict[str, Any]:
            return ((world.get("remoteollama", "granite") or {}).get("status") or {}).get("placement") or {}

        wait_until(
            lambda: placed().get("zone") == "de-fra-1", LIFECYCLE, f"placement in de-fra-1 ({placed()})"
        )
        world.wait_phase("Ready")
        [moved] = world.instances()
        assert moved.id != first.id and sim.zone_of(moved.id) == "de-fra-1"
        wait_until(
            lambda: world.instances(zone="at-vie-2", live=False) == [], LIFECYCLE, "nothing left in Vienna"
        )
        starts = [c.zone for c in sim.calls if c.operation == "start-instance"]
        creates = [c.zone for c in sim.calls if c.operation == "create-instance"]
        assert starts and set(starts) == {"at-vie-2"}, starts
        assert creates == ["at-vie-2", "de-fra-1"], creates
