"""Lowering spec.replicas.max (issue 19) on the real kube-apiserver with the Exoscale simulator: the
replicas at or above the new max are stopped once nothing is in flight to them, then deleted with
their Secret pair; replica 0, its VM and its Secrets stay, and it keeps serving."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from test_operator_replicas import SLOW, TARGET, burst, status, stream
from waiting import wait_until

from remote_ollama.spec.names import LABEL_REPLICA


def by_replica(world: OperatorWorld) -> dict[str, Any]:
    return {i.labels.get(LABEL_REPLICA): i for i in world.instances()}


def two_at_most(stop_after: str) -> str:
    """A resource of two replicas at most that the load alone does not scale down during a test."""
    return remote_ollama(
        replicas={"min": 0, "max": 2, "scaleDownAfter": "10m"},
        ollama={"env": {"OLLAMA_NUM_PARALLEL": str(TARGET)}},
        idle={"stopAfter": stop_after},
        warmUp=False,
    )


def secrets_gone(world: OperatorWorld, index: int) -> bool:
    """Replica `index`'s Secret pair is deleted."""
    suffix = f"-{index}"
    return all(world.get("secret", f"granite-remote-ollama{kind}{suffix}") is None for kind in ("", "-vm"))


def replica_one_busy(world: OperatorWorld) -> bool:
    st = status(world)
    items = {m["index"]: m for m in st.get("replicas") or []}
    return st.get("readyReplicas") == 2 and int((items.get(1) or {}).get("inFlight") or 0) > 0


def test_lowering_max_to_one_drains_then_deletes_the_second_replica_and_replica_zero_serves_on(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW) as world:
        world.apply(credentials_secret())
        world.apply(two_at_most("10m"))  # only the lowered max retires one
        url = world.start_proxy()
        wait_until(lambda: status(world).get("phase") == "Stopped", 30, "starts at zero")
        out, threads = burst([url], 3 * TARGET)
        wait_until(lambda: replica_one_busy(world), 90, "two Ready, replica 1 with a request in flight")
        zero = by_replica(world)["0"]
        stops_before = world.sim.sim.call_count("stop-instance")

        patch = {"spec": {"replicas": {"max": 1}}}
        world.kube.kubectl("patch", "rol", "granite", "--type", "merge", "-p", json.dumps(patch), check=True)
        for t in threads:
            t.join(120)
        # no stream was cut: replica 1 was stopped only once its requests were done
        assert len(out) == 3 * TARGET
        assert all(isinstance(o, dict) and o.get("done") is True for o in out), out

        wait_until(lambda: list(by_replica(world)) == ["0"], 90, "replica 1's VM deleted")
        assert world.sim.sim.call_count("stop-instance") == stops_before + 1  # replica 1, stopped first
        wait_until(lambda: secrets_gone(world, 1), 30, "replica 1's Secrets deleted")
        wait_until(
            lambda: [m["index"] for m in status(world).get("replicas") or []] == [0], 30, "one replica"
        )
        # replica 0 is untouched: the same VM, running, its Secrets kept, and it serves
        assert by_replica(world)["0"].id == zero.id and by_replica(world)["0"].state == "running"
        assert world.get("secret", "granite-remote-ollama") is not None
        assert world.get("secret", "granite-remote-ollama-vm") is not None
        after: list[Any] = []
        stream(url, 99, after)
        assert isinstance(after[0], dict) and after[0].get("done") is True, after
        assert status(world).get("phase") == "Ready"
