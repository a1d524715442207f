"""Capacity fallback per replica (issue 19) on the real kube-apiserver with the Exoscale simulator:
a replica the preferred zone has no room for comes up in the next of spec.placements, as the one
VM does, while the others stay where they are; deleting the resource cleans every zone used."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from test_operator_replicas import SLOW, TARGET, burst, status
from waiting import wait_until

from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.spec.names import LABEL_REPLICA

HOME, NEXT = "ch-gva-2", "de-fra-1"


def test_a_replica_the_first_zone_has_no_room_for_comes_up_in_the_next_placement(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW) as world:
        sim = world.sim.sim
        world.apply(credentials_secret())
        world.apply(
            remote_ollama(
                zone=HOME,
                placements=[{"zone": NEXT}],
                replicas={"min": 1, "max": 2, "scaleDownAfter": "30s"},
                ollama={"env": {"OLLAMA_NUM_PARALLEL": str(TARGET)}},
                coldStart={"modelVolume": {"enabled": True, "size": 10}},
                warmUp=False,
            )
        )
        url = world.start_proxy()
        wait_until(lambda: status(world).get("readyReplicas") == 1, 90, "replica 0 Ready (min 1)")
        [first] = world.instances()
        assert sim.zone_of(first.id) == HOME

        sim.fail_capacity(1000, on=("create",), zone=HOME)  # no room for another VM in Vienna
        out, threads = burst([url], 3 * TARGET)
        wait_until(lambda: status(world).get("readyReplicas") == 2, 120, "replica 1 Ready elsewhere")

        def members() -> dict[int, dict[str, Any]]:
            return {m["index"]: m for m in status(world).get("replicas") or []}

        # both serve: streams sent while replica 0 is busy go to replica 1 (least outstanding)
        more, more_threads = burst([url], TARGET)
        wait_until(lambda: members()[1].get("lastActivity"), 60, "replica 1 serving")
        for t in threads + more_threads:
            t.join(120)
        assert len(out) + len(more) == 4 * TARGET
        assert all(isinstance(o, dict) and o.get("done") is True for o in out + more), out + more

        st = status(world)
        zero, one = members()[0], members()[1]
        assert (zero["zone"], one["zone"]) == (HOME, NEXT), st["replicas"]
        assert zero["placement"]["zone"] == HOME and one["placement"]["zone"] == NEXT
        assert one["placement"]["instanceType"] == "gpua5000.small"
        assert f"{HOME}/gpua5000.small (InsufficientCapacity)" in one["placement"]["tried"]
        assert st["placement"]["zone"] == HOME  # the resource's placement is replica 0's
        cap = next(c for c in st["conditions"] if c["type"] == "CapacityUnavailable")
        assert cap["status"] == "True" and cap["reason"] == "FellBack"
        assert f"replica 1: tried {HOME}/gpua5000.small" in cap["message"], cap["message"]
        by_zone = {sim.zone_of(i.id): i.labels.get(LABEL_REPLICA, "0") for i in world.instances()}
        assert by_zone == {HOME: "0", NEXT: "1"}, by_zone
        # the model volume stays replica 0's: none made for replica 1 in Frankfurt
        assert len(volumes.of(sim.states[HOME]).volumes) == 1
        assert volumes.of(sim.states[NEXT]).volumes == {}
        events = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
        moved = [e["message"] for e in events if e.get("reason") == "CapacityUnavailable"]
        assert any(m.startswith("replica 1: ") and f"now trying {NEXT}" in m for m in moved), moved

        world.delete_resource()
        assert world.instances() == []
        assert world.security_groups() == []
        assert [z for z in (HOME, NEXT) if volumes.of(sim.states[z]).volumes] == []

        def secrets() -> list[str]:
            listing = kube.kubectl("get", "secrets", "-o", "json", check=True).stdout
            names = [s["metadata"]["name"] for s in json.loads(listing)["items"]]
            return [n for n in names if n.startswith("granite-remote-ollama")]

        wait_until(lambda: secrets() == [], 30, "no Secret left")
