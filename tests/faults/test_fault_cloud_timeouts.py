"""Request timeouts on every Exoscale call the engine makes. A timed-out request may still be
carried out by the cloud (the simulator finishes it after the client gave up), so this is where
ambiguous creates could make twin VMs: none may exist at any moment, and none may be left."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from standalone_world import (
    ENGINE_OPERATIONS,
    LateAnswerSimulator,
    StandaloneWorld,
    full_cycle,
    standalone_world,
)
from waiting import until

CLIENT_TIMEOUT = 0.25
SLOW = 0.6  # the answer comes after the client gave up, and the call is still carried out
SLOW_CALLS = 2  # fewer than the adapter's retries: each burst is survivable within one round


async def slow_burst(w: StandaloneWorld, operation: str, calls: int) -> int:
    """Make `operation` slow until it has been called `calls` times; returns how many were slowed."""
    before = w.sim.call_count(operation)
    w.sim.slow_responses(SLOW, operation=operation)
    while w.sim.call_count(operation) < before + calls:
        await asyncio.sleep(0.005)
    w.sim.clear_faults()
    return w.sim.call_count(operation) - before


@pytest.mark.parametrize("operation", ENGINE_OPERATIONS)
async def test_timeouts(operation: str, tmp_path: Path) -> None:
    async with standalone_world(tmp_path, timeout=CLIENT_TIMEOUT, retries=4) as w:
        w.scenario = f"timeouts {operation}"
        burst = asyncio.create_task(slow_burst(w, operation, SLOW_CALLS))
        await full_cycle(w)
        injected = await asyncio.wait_for(burst, 5)
        # Late answers still land after the cycle: give them time, then nothing may be alive.
        await asyncio.sleep(0)
        await w.none_live()
        assert "error" not in w.controller.status()
        sg = [g for g in w.sim.state.security_groups.values() if g.name.endswith(w.owner)]
        assert len(sg) == 1, "one security group per owner"
        await until(lambda: w.recovered() == len(w.faults()) == injected, what="clean after each timeout")
    assert injected >= SLOW_CALLS
    assert w.duplicates == 0, f"twin instances existed at once: {sorted(w.seen_ids)}"
    assert len(w.seen_ids) == 1


MUTATING = (
    "create-instance",
    "create-security-group",
    "add-rule-to-security-group",
    "start-instance",
    "stop-instance",
    "delete-instance",
)


@pytest.mark.parametrize("operation", MUTATING)
async def test_lost_answers(operation: str, tmp_path: Path) -> None:
    """The cloud did it but the answer never arrived: the retry must adopt, not duplicate."""
    async with standalone_world(
        tmp_path, timeout=CLIENT_TIMEOUT, retries=4, sim_class=LateAnswerSimulator
    ) as w:
        assert isinstance(w.sim, LateAnswerSimulator)
        w.scenario = f"lost answers {operation}"
        w.sim.answer_late(operation, SLOW_CALLS, SLOW)
        await full_cycle(w)
        await w.none_live()
        lost = SLOW_CALLS - w.sim.late[operation][0]
        assert lost >= 1, f"no {operation} answer was lost"
        surfaced = [s["error"] for s in w.statuses if "error" in s]
        assert not surfaced, f"a retried {operation} that had happened must not be an error: {surfaced}"
        sgs = [g for g in w.sim.state.security_groups.values() if g.name.endswith(w.owner)]
        assert len(sgs) == 1, "one security group per owner"
        rules = [(r.flow_direction, r.protocol, r.network, r.start_port, r.end_port) for r in sgs[0].rules]
        assert rules == [("ingress", "tcp", "0.0.0.0/0", 11435, 11435)], rules
        await until(lambda: w.recovered() == len(w.faults()) == lost, what="clean after each lost answer")
    assert w.duplicates == 0, f"twin instances existed at once: {sorted(w.seen_ids)}"
    assert len(w.seen_ids) == 1
