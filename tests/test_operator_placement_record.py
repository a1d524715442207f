"""Where a VM is kept is the operator's record, not status (issues 18/19: trust nothing others can
write). A tenant patching status.placement (or a replica's) to another allowed zone must not have
the operator look for its VM there, make a new one and leave the recorded one running unmetered:
it keeps acting in the recorded instance's zone, warns once, and repairs the status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import ollama
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from test_operator_dropped_zone import ready_in_home
from test_operator_identity import patch_status
from waiting import LIFECYCLE, wait_until

from remote_ollama.spec.names import ANN_WAKE_REQUESTED

HOME, OTHER = "at-vie-2", "de-fra-1"


def not_recorded(kube: KubeNamespace) -> list[dict[str, Any]]:
    items = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
    return [e for e in items if e.get("reason") == "PlacementNotRecorded"]


def look_again(kube: KubeNamespace, world: OperatorWorld) -> None:
    """A wake request: the operator's next round comes now (the VM is up: it changes nothing);
    returns once a round answered it."""
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    kube.kubectl("annotate", "rol", "granite", f"{ANN_WAKE_REQUESTED}={now}", "--overwrite", check=True)
    wait_until(lambda: status(world).get("wakeRequestAnswered") == now, LIFECYCLE, "a round answered")


def status(world: OperatorWorld) -> dict[str, Any]:
    return dict((world.get("remoteollama", "granite") or {}).get("status") or {})


def test_a_status_placement_naming_another_zone_moves_nothing(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        vm = ready_in_home(kube, world)

        forged = {"index": 1, "zone": OTHER, "instanceType": "gpua5000.small", "tried": []}
        patch_status(kube, {"placement": forged})
        look_again(kube, world)
        assert not [c for c in sim.calls if c.operation == "create-instance" and c.zone == OTHER]
        assert [(i.id, sim.zone_of(i.id)) for i in world.instances(live=False)] == [(vm.id, HOME)]
        (event,) = wait_until(lambda: not_recorded(kube), LIFECYCLE, "Warning Event PlacementNotRecorded")
        assert event["type"] == "Warning"
        assert f"names zone {OTHER}" in event["message"] and f"in zone {HOME}" in event["message"]
        wait_until(lambda: status(world)["placement"]["zone"] == HOME, LIFECYCLE, "status.placement repaired")
        look_again(kube, world)  # another round: still nothing made elsewhere, no second Event
        assert [(i.id, sim.zone_of(i.id)) for i in world.instances(live=False)] == [(vm.id, HOME)]
        assert not [c for c in sim.calls if c.operation == "create-instance" and c.zone == OTHER]
        assert len(not_recorded(kube)) == 1
        client = ollama.Client(host=world.start_proxy(), timeout=120)
        reply = client.generate(model="granite3.1-dense:8b", prompt="still here", stream=False)
        assert reply.done and reply.response
        assert world.phase() == "Ready" and [i.id for i in world.instances()] == [vm.id]


def test_a_replicas_status_placement_naming_another_zone_moves_nothing(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        sim = world.sim.sim
        sim.set_quota("gpua5000", 10)
        world.apply(credentials_secret())
        world.apply(
            remote_ollama(placements=[{"zone": OTHER}], replicas={"min": 2, "max": 2}, idle={}, warmUp=False)
        )

        def members() -> dict[int, dict[str, Any]]:
            return {m["index"]: m for m in status(world).get("replicas") or []}

        wait_until(
            lambda: [m.get("phase") for m in members().values()] == ["Ready", "Ready"], 90, "two Ready"
        )
        before = sorted((i.id, sim.zone_of(i.id)) for i in world.instances())
        assert [z for _, z in before] == [HOME, HOME]
        one = members()[1]
        forged = dict(one, placement={**one["placement"], "index": 1, "zone": OTHER})
        patch_status(kube, {"replicas": [forged if i == 1 else m for i, m in sorted(members().items())]})
        look_again(kube, world)
        assert not [c for c in sim.calls if c.operation == "create-instance" and c.zone == OTHER]
        assert sorted((i.id, sim.zone_of(i.id)) for i in world.instances(live=False)) == before
        (event,) = wait_until(lambda: not_recorded(kube), LIFECYCLE, "Warning Event PlacementNotRecorded")
        assert event["type"] == "Warning" and "status.replicas[1].placement" in event["message"]
        wait_until(
            lambda: members()[1]["placement"]["zone"] == HOME, LIFECYCLE, "replica 1's placement repaired"
        )
        assert [m.get("phase") for m in members().values()] == ["Ready", "Ready"]
        assert sorted((i.id, sim.zone_of(i.id)) for i in world.instances()) == before
