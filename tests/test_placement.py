"""Capacity fallback choices (pure): order, wrap-around, status round trip, condition."""

from __future__ import annotations

import pytest

from remote_ollama.core import placement
from remote_ollama.core.placement import PlacementState
from remote_ollama.spec.model import SpecError
from remote_ollama.spec.parse import parse_spec

SPEC = parse_spec(
    {
        "credentialsSecretRef": {"name": "c"},
        "placements": [{"zone": "de-fra-1"}, {"zone": "ch-gva-2", "instanceType": "gpu3080ti.small"}],
    }
)


def test_candidates_start_with_the_spec_and_skip_duplicates() -> None:
    spec = parse_spec(
        {"credentialsSecretRef": {"name": "c"}, "placements": [{"zone": "at-vie-2"}, {"zone": "de-fra-1"}]}
    )
    assert [c.name for c in spec.candidates()] == ["at-vie-2/gpua5000.small", "de-fra-1/gpua5000.small"]


def test_failures_walk_the_list_then_start_over() -> None:
    s = PlacementState()
    assert placement.current(SPEC, s) is SPEC
    f1 = placement.after_failure(SPEC, s, "QuotaExceeded")
    assert not f1.exhausted and placement.current(SPEC, f1.state).zone == "de-fra-1"
    assert "now trying de-fra-1/gpua5000.small" in f1.message
    f2 = placement.after_failure(SPEC, f1.state, "InsufficientCapacity")
    here = placement.current(SPEC, f2.state)
    assert (here.zone, here.instance_type.name) == ("ch-gva-2", "gpu3080ti.small")
    assert here.instance_hash() != SPEC.instance_hash()
    f3 = placement.after_failure(SPEC, f2.state, "InsufficientCapacity")
    assert f3.exhausted and f3.state.index == 0 and len(f3.state.tried) == 3
    assert "no placement could run the VM" in f3.message


def test_condition_and_status_round_trip() -> None:
    f = placement.after_failure(SPEC, PlacementState(), "QuotaExceeded")
    cond = placement.condition(SPEC, f.state)
    assert cond.status and "at-vie-2/gpua5000.small (QuotaExceeded)" in cond.message
    assert "using de-fra-1/gpua5000.small" in cond.message
    assert placement.from_status(SPEC, placement.to_status(SPEC, f.state)) == f.state
    assert not placement.condition(SPEC, placement.after_success(f.state)).status
    assert placement.from_status(SPEC, {"zone": "hr-zag-1", "instanceType": "gpu2.small"}) == PlacementState()
    assert placement.from_status(SPEC, None) == PlacementState()


def test_invalid_placements_are_reported_with_their_index() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(
            {"credentialsSecretRef": {"name": "c"}, "placements": [{"zone": "mars-1"}, {"instanceType": "x"}]}
        )
    paths = [p for p, _ in err.value.problems]
    assert paths == ["spec.placements[0]", "spec.placements[1]"]
