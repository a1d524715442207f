"""The standalone replica group's bookkeeping without a cloud: state files side by side, one
security group, replica labels, and /status summing the replicas' cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remote_ollama.core.types import Decision, Memory
from remote_ollama.local.replicas import ReplicaGroup, replica_state_file
from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.proxy.routing import Router
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_REPLICA
from remote_ollama.spec.sections import ReplicaPolicy
from remote_ollama.spec.vocabulary import Phase, Reason


def group(tmp_path: Path) -> ReplicaGroup:
    spec = Spec(replicas=ReplicaPolicy(max=3))
    cloud: Any = object()  # never called: nothing here runs a round
    return ReplicaGroup(spec, cloud, str(tmp_path / "state.json"), router=Router())


def test_replicas_are_individual_instances_sharing_one_security_group(tmp_path: Path) -> None:
    g = group(tmp_path)
    assert replica_state_file(str(tmp_path / "state.json"), 0) == str(tmp_path / "state.json")
    assert replica_state_file(str(tmp_path / "state.json"), 2) == str(tmp_path / "state.replica-2.json")
    targets = [m.reconciler.target for m in g.members]
    assert len({t.owner_uid for t in targets}) == 3 and len({t.name for t in targets}) == 3
    assert {t.security_group for t in targets} == {targets[0].security_group}
    assert [t.owns_group for t in targets] == [True, False, False]
    assert [t.labels(g.spec)[LABEL_REPLICA] for t in targets] == ["0", "1", "2"]


def test_status_lists_the_replicas_and_sums_their_cost(tmp_path: Path) -> None:
    g = group(tmp_path)
    for m, hours, spend in zip(g.members, (1.5, 0.25, 0.0), (2.01, 0.34, 0.0), strict=True):
        m.saved.cost = {
            "month": "2026-12",
            "runningHoursThisMonth": hours,
            "estimatedSpend": spend,
            "currency": "EUR",
        }
    status = g.status()
    assert status["cost"] == {
        "month": "2026-12",
        "runningHoursThisMonth": 1.75,
        "estimatedSpend": 2.35,
        "currency": "EUR",
    }
    assert [r["index"] for r in status["replicas"]] == [0, 1, 2]
    assert {r["phase"] for r in status["replicas"]} == {"Stopped"}
    assert (status["ready_replicas"], status["desired_replicas"]) == (0, 0)


def test_the_router_forgets_the_addresses_of_replicas_long_gone(tmp_path: Path) -> None:
    """Each new VM of a replica has a new address: the router keeps counts and loaded models for
    the members' endpoints and for requests still running, not one per VM ever (issue 19)."""
    g = group(tmp_path)
    router = g.router

    def moved(index: int, n: int) -> str:
        url = f"https://198.51.100.{n}:11435"
        member = g.members[index]
        member.decision = Decision((), Phase.READY, Reason.READY, "ready", (), Memory(), url, 30.0)
        assert member.on_change is not None
        member.on_change()  # the end of the replica's round
        return url

    first = moved(0, 1)
    router.begin(Upstream(first, None))  # one that outlives its VM
    for n in range(2, 102):
        url = moved(0, n)
        router.begin(Upstream(url, None))
        router.learn(url, "granite3.1-dense:8b")
        router.end(Upstream(url, None))
    assert set(router.begun) == {first, url} and set(router.loaded) == {url}
    assert g.usage(0) == (0, 1)  # the current VM's use, still counted for its idleness
    router.end(Upstream(first, None))
    moved(1, 200)
    assert set(router.begun) == {url}
