"""A replicated endpoint's members in the operator (issue 19): each replica's memory round-trips
through status.replicas, replica 0 adopts the VM of the resource's `max: 1` days, and the budget
caps the replicas together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remote_ollama.core import cost
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import Decision, Memory
from remote_ollama.engine.target import instance_name
from remote_ollama.kube.operator.context import OPERATOR
from remote_ollama.kube.operator.members import member_from, member_item
from remote_ollama.kube.operator.replica_set import replica_instance_name
from remote_ollama.kube.operator.replica_status import endpoint_budget
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase, Reason

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CREATED = "2026-12-07T10:00:00Z"


def body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "granite", "creationTimestamp": CREATED}, "status": status or {}}


def test_a_replica_never_seen_starts_stopped_so_only_load_or_the_floor_wakes_it() -> None:
    m = member_from(body(), 2, None)
    assert m.memory.phase is Phase.STOPPED and m.memory.scaled_down_at is not None and not m.up


def test_replica_zero_takes_the_vm_and_meter_of_the_max_one_days() -> None:
    raw = body(
        {
            "phase": "Ready",
            "instance": {"id": "i-one"},
            "lifecycle": {"readyAt": "2026-12-07T11:00:00Z"},
            "cost": {"month": "2026-12", "secondsByType": [{"instanceType": "gpu3.small", "seconds": 7200}]},
        }
    )
    m = member_from(raw, 0, {"index": 0, "phase": "Ready"})  # max 1 wrote a member without memory
    assert (m.memory.instance_id, m.memory.phase, m.up) == ("i-one", Phase.READY, True)
    assert cost.from_status(m.cost).seconds_this_month == 7200
    assert member_from(raw, 1, None).memory.instance_id is None


def test_a_replicas_memory_and_the_scalers_asks_round_trip_through_its_status_item() -> None:
    m = member_from(body(), 1, None)
    asked = m.__class__(m.index, m.memory, NOW, None, None, None)
    memory = Memory(instance_id="i-two", phase=Phase.READY, ready_at=NOW - timedelta(minutes=1))
    decision = Decision(
        (), Phase.READY, Reason.READY, "ready", (), memory, "https://198.51.100.7:11435", 30.0
    )
    vm = ObservedInstance("i-two", "running", "198.51.100.7", "at-vie-1")
    item = member_item(asked, decision, vm, asked.activity(3, NOW), {"month": "2026-12"}, ("granite",), None)
    assert {k: item[k] for k in ("index", "phase", "publicIP", "zone", "inFlight", "loadedModels")} == {
        "index": 1,
        "phase": "Ready",
        "publicIP": "198.51.100.7",
        "zone": "at-vie-1",
        "inFlight": 3,
        "loadedModels": ["granite"],
    }
    back = member_from(body(), 1, item)
    assert (back.memory.instance_id, back.memory.phase, back.wake, back.last_activity) == (
        "i-two",
        Phase.READY,
        NOW,
        NOW,
    )
    assert back.memory.ready_at == NOW - timedelta(minutes=1) and back.cost == {"month": "2026-12"}


def test_the_budget_caps_the_replicas_together() -> None:
    spec = parse_spec({"credentialsSecretRef": {"name": "x"}, "budget": {"maxRunningHoursPerDay": 3}})
    day = cost.day_of(NOW)
    meter = cost.CostMeter(month=cost.month_of(NOW), day=day, seconds_today=2 * 3600, observed_at=NOW)
    old = cost.CostMeter(
        month="2026-11", seconds_by_type={"gpu3.small": 99_999}, day="2026-11-30", seconds_today=9e4
    )
    original = OPERATOR.clock
    OPERATOR.clock = lambda: NOW
    try:
        table = cost.PriceTable()
        assert endpoint_budget(spec, [meter], table).exceeded is None  # one replica: 2 h of 3
        together = endpoint_budget(spec, [meter, meter, old], table)  # two: 4 h; last month's counts nothing
        assert together.exceeded is not None and "4.00 running hours today" in together.exceeded
    finally:
        OPERATOR.clock = original
    assert cost.combined([meter, meter, old], NOW).seconds_this_month == 0


def test_each_replicas_vm_name_keeps_its_index_however_long_the_names() -> None:
    names = [
        replica_instance_name("t1-a-rather-long-namespace-name", "granite-a-long-name", i) for i in range(3)
    ]
    assert len(set(names)) == 3 and all(len(n) <= 63 for n in names)
    assert names[1].endswith("-r1") and names[0] == instance_name(
        "t1-a-rather-long-namespace-name", "granite-a-long-name"
    )
