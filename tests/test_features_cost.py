"""End to end: status.cost over a simulated month turn, the Est-Cost column, and a daily budget cap.

The operator's clock is replaced by one the test moves (hours pass in an instant); every other
part is real: a real kube-apiserver, kopf, the Exoscale simulator and the proxy process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, deadline, wait_until

from remote_ollama.kube.operator.context import OPERATOR
from remote_ollama.spec.sections import DEFAULT_HOLD_TIMEOUT

PRICES = {"currency": "CHF", "perHour": {"gpua5000.small": 1.5}}


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def kick(world: OperatorWorld, at: datetime) -> None:
    """A new wake-requested value makes the operator run a round at once (the VM is up anyway)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    world.kube.kubectl(
        "annotate", "rol", "granite", f"remoteollama.dev/wake-requested={stamp}", "--overwrite", check=True
    )


def cost(world: OperatorWorld) -> dict[str, Any]:
    obj = world.get("remoteollama", "granite") or {}
    return dict((obj.get("status") or {}).get("cost") or {})


def condition(world: OperatorWorld, kind: str) -> dict[str, Any]:
    obj = world.get("remoteollama", "granite") or {}
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def advance_and_wait(world: OperatorWorld, clock: FakeClock, to: datetime, check: Any, what: str) -> None:
    clock.now = to
    kick(world, to)
    wait_until(lambda: check(cost(world)), 20, what)


def test_cost_over_a_month_turn_and_daily_budget(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime(2025, 1, 31, 20, 0, tzinfo=UTC))
    monkeypatch.setattr(OPERATOR, "clock", clock)
    env = {"REMOTE_OLLAMA_PRICES": json.dumps(PRICES)}
    with operator_world(kube, monkeypatch, extra_env=env) as world:
        world.apply(credentials_secret())
        # always on (no stopAfter), at most 3 running hours per UTC day
        world.apply(remote_ollama(idle={}, budget={"maxRunningHoursPerDay": 3}))
        world.wait_phase("Ready")
        assert cost(world)["month"] == "2025-01"
        assert cost(world)["currency"] == "CHF"

        # two hours on the last evening of January
        advance_and_wait(
            world,
            clock,
            datetime(2025, 1, 31, 22, 0, tzinfo=UTC),
            lambda c: c.get("runningHoursToday") == 2.0,
            "2 h today",
        )
        c = cost(world)
        assert (c["runningHoursThisMonth"], c["estimatedSpend"]) == (2.0, 3.0)
        table = kube.kubectl("get", "rol").stdout.splitlines()
        column = table[0].index("EST-COST")
        assert table[1][column:].split()[0] == "3", table

        # across midnight and the month: February starts from zero, the 3 h before midnight stay in January
        advance_and_wait(
            world,
            clock,
            datetime(2025, 2, 1, 1, 0, tzinfo=UTC),
            lambda c: c.get("month") == "2025-02",
            "February",
        )
        c = cost(world)
        assert (c["runningHoursThisMonth"], c["runningHoursToday"], c["estimatedSpend"]) == (1.0, 1.0, 1.5)
        assert condition(world, "BudgetExceeded")["status"] == "False"

        # 3.5 h today: past the cap -> scaled to zero, BudgetExceeded, requests refused at once
        advance_and_wait(
            world,
            clock,
            datetime(2025, 2, 1, 3, 30, tzinfo=UTC),
            lambda c: c.get("runningHoursToday") == 3.5,
            "3.5 h today",
        )
        assert cost(world)["estimatedSpend"] == 5.25
        wait_until(
            lambda: condition(world, "BudgetExceeded").get("status") == "True", LIFECYCLE, "BudgetExceeded"
        )
        assert "maxRunningHoursPerDay" in condition(world, "BudgetExceeded")["message"]
        wait_until(
            lambda: [i.state for i in world.instances()] == ["stopped"], LIFECYCLE, "VM stopped by budget"
        )
        world.wait_phase("Stopped")

        url = world.start_proxy()
        # refused at once, not held for holdTimeout (the default, far past the client's deadline)
        assert deadline(30) < DEFAULT_HOLD_TIMEOUT
        reply = httpx.post(
            f"{url}/api/generate", json={"model": "granite3.1-dense:8b", "prompt": "hi"}, timeout=deadline(30)
        )
        assert reply.status_code == 503
        assert "budget exceeded" in reply.json()["error"]
        assert [i.state for i in world.instances()] == ["stopped"], "a request past the cap does not wake"

        # the next UTC day the cap resets
        clock.now = datetime(2025, 2, 2, 0, 0, 1, tzinfo=UTC)
        kick(world, clock.now + timedelta(seconds=1))
        wait_until(
            lambda: condition(world, "BudgetExceeded").get("status") == "False", LIFECYCLE, "budget reset"
        )
        assert cost(world)["runningHoursToday"] == 0.0
