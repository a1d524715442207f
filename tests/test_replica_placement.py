"""Capacity fallback per replica (pure parts): where each replica is read back from status, the
condition over the replicas, and the zones a deletion cleans."""

from __future__ import annotations

from remote_ollama.core import placement
from remote_ollama.core.placement import PlacementState
from remote_ollama.kube.operator.fallback import zones_used
from remote_ollama.kube.operator.replica_placement import capacity_condition, placement_of
from remote_ollama.spec.parse import parse_spec

SPEC = parse_spec(
    {
        "credentialsSecretRef": {"name": "c"},
        "placements": [{"zone": "de-fra-1"}, {"zone": "ch-gva-2", "instanceType": "gpu3080ti.small"}],
    }
)
FRA = {"index": 1, "zone": "de-fra-1", "instanceType": "gpua5000.small", "tried": ["x"]}


def test_replica_zero_without_a_record_stays_where_the_one_vm_was_and_the_others_start_at_the_top() -> None:
    raw = {"status": {"placement": FRA}}
    assert placement_of(SPEC, raw, 0, None) == PlacementState(1, ("x",))
    assert placement_of(SPEC, raw, 1, None) == PlacementState()
    assert placement_of(SPEC, raw, 1, {"index": 1, "placement": FRA}).index == 1
    own = {"index": 0, "placement": {"zone": "at-vie-2", "instanceType": "gpua5000.small"}}
    assert placement_of(SPEC, raw, 0, own) == PlacementState()  # its own record wins


def test_the_condition_names_each_replica_on_a_fallback() -> None:
    clear = capacity_condition(SPEC, [(0, PlacementState()), (1, PlacementState())])
    assert not clear.status
    moved = placement.after_failure(SPEC, PlacementState(), "InsufficientCapacity").state
    cond = capacity_condition(SPEC, [(0, PlacementState()), (1, moved)])
    assert cond.status and cond.reason == "FellBack"
    assert (
        cond.message
        == "replica 1: tried at-vie-2/gpua5000.small (InsufficientCapacity); using de-fra-1/gpua5000.small"
    )


def test_deletion_cleans_every_placement_zone_and_the_zones_status_names_if_they_are_zones() -> None:
    raw = {
        "status": {
            "placement": {"zone": "at-vie-2"},
            "replicas": [
                {"index": 1, "zone": "bg-sof-1", "placement": {"zone": "hr-zag-1"}},
                {"index": 2, "zone": "evil.example/", "placement": "nonsense"},
                "junk",
            ],
        }
    }
    assert zones_used(SPEC, raw) == ["at-vie-2", "de-fra-1", "ch-gva-2", "bg-sof-1", "hr-zag-1"]
