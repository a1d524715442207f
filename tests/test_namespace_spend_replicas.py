"""End to end: the namespace's monthly spend cap with scale-out (issue 19). Each replica's VM is
metered in the namespace's meter (two replicas running spend twice as fast); over the cap every
replica stops, the resource says why, its proxy refuses at once, and the scaler desires no replica
the cap would refuse (no request is held for one).

The operator's clock is one the test moves (hours pass in an instant); the rest is real: the
kube-apiserver, kopf, the Exoscale simulator and the proxy process.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, remote_ollama
from spend_world import FakeClock, capped_world, condition, entries, kick
from waiting import wait_until


def hours(world: OperatorWorld) -> list[float]:
    """granite's entries in the namespace's meter: running hours this month, one per VM."""
    return sorted(e["runningHoursThisMonth"] for e in entries(world) if e["name"] == "granite")


def status(world: OperatorWorld) -> dict[str, Any]:
    return dict((world.get("remoteollama", "granite") or {}).get("status") or {})


def running(world: OperatorWorld) -> int:
    return sum(1 for i in world.instances() if i.state == "running")


def scaled_up(world: OperatorWorld) -> int:
    """ScalingUp Events of granite (counted with their repeats)."""
    events = json.loads(world.kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
    return sum(
        int(e.get("count") or 1)
        for e in events
        if e.get("reason") == "ScalingUp" and e["involvedObject"]["name"] == "granite"
    )


def test_replicas_are_metered_each_and_all_stop_at_the_namespace_cap(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ahead of the real clock: a replica's memory starts at its creation (the real time)
    clock = FakeClock(datetime(2027, 1, 31, 10, 0, tzinfo=UTC), timedelta(microseconds=1))
    with capped_world(kube, monkeypatch, clock) as world:
        run(world, clock)


def run(world: OperatorWorld, clock: FakeClock) -> None:
    world.apply(credentials_secret())
    # two replicas kept warm, no budget of its own; a held request would wait a minute
    world.apply(
        remote_ollama(replicas={"min": 2, "max": 2}, idle={}, warmUp=False, wake={"holdTimeout": "60s"})
    )
    wait_until(lambda: status(world).get("readyReplicas") == 2, 90, "two replicas Ready")
    assert running(world) == 2

    def advance(to: datetime, want: list[float]) -> None:
        clock.now = to
        kick(world, "granite", to)
        wait_until(lambda: hours(world) == want, 30, f"granite's VMs metered {want} h")

    # (a) two hours with two replicas: four hours in the namespace's meter (6 CHF of 10)
    advance(datetime(2027, 1, 31, 12, 0, tzinfo=UTC), [2.0, 2.0])
    assert condition(world, "granite", "BudgetExceeded").get("status") == "False"
    ups = scaled_up(world)

    # (b) 3.5 hours each: 7 h, 10.5 CHF, over the cap: every replica stops, the resource says why
    advance(datetime(2027, 1, 31, 13, 30, tzinfo=UTC), [3.5, 3.5])
    cond = wait_until(
        lambda: (
            condition(world, "granite", "BudgetExceeded").get("status") == "True"
            and condition(world, "granite", "BudgetExceeded")
        ),
        30,
        "granite capped",
    )
    assert cond["reason"] == "NamespaceSpendCapReached", cond
    assert f"namespace {world.namespace} spent an estimated 10.50 CHF this month" in cond["message"]
    wait_until(lambda: running(world) == 0, 60, "both replicas' VMs stopped")
    ready = condition(world, "granite", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceSpendCapReached"), ready
    assert "2027-02-01T00:00:00Z" in ready["message"]
    # (c) the scaler desires none of the replicas the cap refuses, though spec.replicas.min is 2
    wait_until(lambda: status(world).get("desiredReplicas") == 0, 30, "no replica desired over the cap")

    url = world.start_proxy("granite")
    started = time.monotonic()
    reply = httpx.post(
        f"{url}/api/generate", json={"model": "granite3.1-dense:8b", "prompt": "hi"}, timeout=90
    )
    waited = time.monotonic() - started
    assert reply.status_code == 503 and "namespace spend cap reached" in reply.json()["error"], reply.text
    assert reply.json().get("reason") == "NamespaceSpendCapReached", reply.text
    assert reply.headers.get("Retry-After"), "a refusal that ends with the month says when"
    assert waited < 10, f"held {waited:.1f}s for replicas the cap refuses (holdTimeout 60s)"
    kick(world, "granite", datetime(2027, 1, 31, 13, 31, tzinfo=UTC))  # more rounds over the cap
    wait_until(lambda: "1/" not in str(status(world).get("replicaSummary")), 10, "a round")
    assert running(world) == 0 and status(world).get("desiredReplicas") == 0, status(world)
    assert scaled_up(world) == ups, "no replica started (nor asked for) past the cap"

    # the next month the cap resets: both replicas run again
    clock.now = datetime(2027, 2, 1, 0, 0, 1, tzinfo=UTC)
    kick(world, "granite", clock.now)
    wait_until(
        lambda: condition(world, "granite", "BudgetExceeded").get("status") == "False", 30, "granite reset"
    )
    wait_until(lambda: running(world) == 2, 60, "both replicas up again")
