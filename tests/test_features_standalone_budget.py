"""Standalone mode honours spec.budget: it meters cost, stops past the cap and refuses waits at once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import LIFECYCLE, deadline

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.local.controller import LocalController
from remote_ollama.local.replicas import ReplicaGroup
from remote_ollama.proxy.interfaces import NotReady
from remote_ollama.proxy.routing import Router
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

KEY, SECRET = "EXObudgettest", "budget-test-secret"


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def step_until(ctl: LocalController, phase: Phase, rounds: int = 200) -> None:
    for _ in range(rounds):
        if (await ctl.step()).phase is phase:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {phase}")


async def test_standalone_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "REMOTE_OLLAMA_PRICES", json.dumps({"currency": "USD", "perHour": {"gpua5000.small": 2}})
    )
    timings = SimTimings(boot=0.2, stop=0.2, destroy=0.2, operation=0.05, cloud_init=0.1, pull=0.05)
    sim = SimulatorThread(keys={KEY: SECRET}, timings=timings)
    sim.start()
    try:
        spec = parse_spec({"idle": {}, "budget": {"maxMonthlySpend": 5}}, require_credentials=False)
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, spec.zone, endpoint=sim.url, poll_interval=0.05)
        clock = FakeClock(datetime(2025, 6, 10, 9, 0, tzinfo=UTC))
        ctl = LocalController(spec, cloud, str(tmp_path / "state.json"), clock=clock, start_down=False)
        await step_until(ctl, Phase.READY)

        clock.now += timedelta(hours=2)  # 2 h x 2 USD = 4 USD: within the 5 USD cap
        await ctl.step()
        assert ctl.status()["cost"] == {
            "month": "2025-06",
            "runningHoursThisMonth": 2.0,
            "estimatedSpend": 4.0,
            "currency": "USD",
        }
        assert ctl.budget_refusal is None

        clock.now += timedelta(minutes=30)  # 5 USD: the cap
        decision = await ctl.step()
        assert decision.reason == "BudgetExceeded" and "maxMonthlySpend" in decision.message
        assert ctl.status()["budget_exceeded"].startswith("budget exceeded")
        await step_until(ctl, Phase.STOPPED)

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(NotReady, match="budget exceeded") as refused:
            await ctl.await_ready(loop.time() + deadline(LIFECYCLE))
        assert loop.time() - started < 1
        # a refusal, not provisioning: retrying makes sense at the monthly reset
        assert refused.value.refused and refused.value.retry_at == datetime(2025, 7, 1, tzinfo=UTC)

        # the meter survives a restart (state file)
        again = LocalController(spec, cloud, str(tmp_path / "state.json"), clock=clock)
        assert again.saved.cost is not None and again.saved.cost["estimatedSpend"] == 5.0
        await ctl.reconciler.close()
    finally:
        sim.stop()


async def test_the_budget_counts_every_replica(tmp_path: Path) -> None:
    """Two replicas of one endpoint, each 2 h up: 4 running hours today together, over a cap of 3
    that neither reaches alone; both stop and waking is refused."""
    timings = SimTimings(boot=0.2, stop=0.2, destroy=0.2, operation=0.05, cloud_init=0.1, pull=0.05)
    sim = SimulatorThread(keys={KEY: SECRET}, timings=timings)
    sim.start()
    try:
        spec = parse_spec(
            {"idle": {}, "budget": {"maxRunningHoursPerDay": 3}, "replicas": {"max": 2}},
            require_credentials=False,
        )
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, spec.zone, endpoint=sim.url, poll_interval=0.05)
        clock = FakeClock(datetime(2025, 6, 10, 9, 0, tzinfo=UTC))
        group = ReplicaGroup(spec, cloud, str(tmp_path / "state.json"), router=Router(), clock=clock)
        clock.now += timedelta(seconds=1)  # a request after the replicas began stopped
        for member in group.members:
            await member.request_wake(clock())
            await step_until(member, Phase.READY)

        clock.now += timedelta(hours=2)
        decisions = [await m.step() for m in group.members]
        assert [d.reason for d in decisions] == ["BudgetExceeded"] * 2, decisions
        assert "4.00 running hours today" in decisions[0].message
        assert group.status()["cost"]["runningHoursThisMonth"] == 4.0  # each replica's own, summed
        for member in group.members:
            await step_until(member, Phase.STOPPED)
        loop = asyncio.get_running_loop()
        with pytest.raises(NotReady, match="budget exceeded") as refused:
            await group.await_ready(loop.time() + 30)
        assert refused.value.refused
        for member in group.members:
            await member.reconciler.close()
    finally:
        sim.stop()
