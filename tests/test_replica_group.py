"""The standalone replica group's bookkeeping without a cloud: state files side by side, one
security group, replica labels, and /status summing the replicas' cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remote_ollama.local.replicas import ReplicaGroup, replica_state_file
from remote_ollama.proxy.routing import Router
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_REPLICA
from remote_ollama.spec.sections import ReplicaPolicy


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
