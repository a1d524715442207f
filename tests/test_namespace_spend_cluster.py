"""End to end: the platform policy's namespaceMonthlySpend caps the spend of all RemoteOllamas of a
namespace together, on a meter the tenant cannot reset (a ConfigMap in the operator's namespace).

The operator's clock is one the test moves (hours pass in an instant); the rest is real: the
kube-apiserver, kopf, the Exoscale simulator and the proxy process.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, remote_ollama
from spend_world import FakeClock, capped_world, condition, entries, kick
from waiting import wait_until

NAMES = ("granite", "phi")


def ledger(world: OperatorWorld) -> dict[str, dict[str, Any]]:
    """The namespace's meter, by resource name."""
    return {e["name"]: e for e in entries(world)}


def hours(world: OperatorWorld, name: str) -> float | None:
    entry = ledger(world).get(name)
    return entry["runningHoursThisMonth"] if entry else None


def test_two_resources_share_the_namespace_cap_on_a_meter_status_patches_cannot_reset(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime(2025, 1, 31, 10, 0, tzinfo=UTC))
    with capped_world(kube, monkeypatch, clock) as world:
        run(world, clock)


def run(world: OperatorWorld, clock: FakeClock) -> None:
    world.apply(credentials_secret())
    for name in NAMES:  # both always on, neither with a budget of its own
        world.apply(remote_ollama(name, idle={}))
    for name in NAMES:
        world.wait_phase("Ready", name, timeout=60)

    def advance(to: datetime, name: str, want: float) -> None:
        clock.now = to
        kick(world, name, to)
        wait_until(lambda: hours(world, name) == want, 20, f"{name} metered {want} h")

    for name in NAMES:  # two hours each: 6 CHF of 10
        advance(datetime(2025, 1, 31, 12, 0, tzinfo=UTC), name, 2.0)
    assert {c: condition(world, c, "BudgetExceeded").get("status") for c in NAMES} == dict.fromkeys(
        NAMES, "False"
    )

    # the tenant zeroes granite's status.cost: its own meter restarts, the namespace's does not
    zero = {
        "status": {"cost": {"month": "2025-01", "secondsByType": [], "estimatedSpend": 0, "observedAt": None}}
    }
    kube, ns = world.kube, world.namespace  # the tenant: every verb on every resource of its namespace
    kube.kubectl("create", "serviceaccount", "tenant", check=True)
    kube.kubectl("create", "role", "everything", "--verb=*", "--resource=*.*", check=True)
    kube.kubectl(
        "create", "rolebinding", "tenant", "--role=everything", f"--serviceaccount={ns}:tenant", check=True
    )
    tenant = kube.kubeconfig_for("tenant")
    patch = ("patch", "rol", "granite", "--subresource=status", "--type=merge", "-p", json.dumps(zero))
    kube.kubectl(*patch, kubeconfig=tenant, check=True)
    meter = ("get", "configmap", f"remote-ollama-spend.{ns}", "-n", "remote-ollama")
    assert "Forbidden" in kube.kubectl(*meter, kubeconfig=tenant).stderr  # nor can it reach the meter
    advance(datetime(2025, 1, 31, 13, 30, tzinfo=UTC), "phi", 3.5)  # 3.5 h + 2 h: 8.25 CHF
    assert condition(world, "phi", "BudgetExceeded").get("status") == "False"
    advance(datetime(2025, 1, 31, 13, 30, tzinfo=UTC), "granite", 3.5)  # 7 h: 10.5 CHF, over the cap
    own = ((world.get("remoteollama", "granite") or {}).get("status") or {}).get("cost") or {}
    assert own.get("runningHoursThisMonth", 0) <= 1.5, own  # the status meter did restart

    for name in NAMES:  # both stopped, both told why
        cond = wait_until(
            lambda n=name: (
                condition(world, n, "BudgetExceeded").get("status") == "True"
                and condition(world, n, "BudgetExceeded")
            ),
            20,
            f"{name} capped",
        )
        assert cond["reason"] == "NamespaceSpendCapReached"
        assert f"namespace {world.namespace} spent an estimated 10.50 CHF this month" in cond["message"]
        assert (
            "namespaceMonthlySpend is 10.00" in cond["message"] and "2025-02-01T00:00:00Z" in cond["message"]
        )
        ready = condition(world, name, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "NamespaceSpendCapReached")
    wait_until(
        lambda: sorted(i.state for i in world.instances()) == ["stopped", "stopped"], 30, "both VMs stopped"
    )
    events = json.loads(world.kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
    warned = {
        e["involvedObject"]["name"]
        for e in events
        if e.get("reason") == "NamespaceSpendCapReached" and e.get("type") == "Warning"
    }
    assert warned == set(NAMES)

    url = world.start_proxy("granite")
    started = time.monotonic()
    reply = httpx.post(
        f"{url}/api/generate", json={"model": "granite3.1-dense:8b", "prompt": "hi"}, timeout=30
    )
    assert reply.status_code == 503 and "namespace spend cap reached" in reply.json()["error"]
    assert reply.headers.get("Retry-After"), "a refusal that ends with the month says when"
    assert time.monotonic() - started < 5, "refused at once, not held for holdTimeout"
    assert sorted(i.state for i in world.instances()) == ["stopped", "stopped"], (
        "a request past the cap wakes nothing"
    )

    # the next month the cap resets: both always-on VMs run again
    clock.now = datetime(2025, 2, 1, 0, 0, 1, tzinfo=UTC)
    for name in NAMES:
        kick(world, name, clock.now)
    for name in NAMES:
        wait_until(
            lambda n=name: condition(world, n, "BudgetExceeded").get("status") == "False", 20, f"{name} reset"
        )
    wait_until(
        lambda: sorted(i.state for i in world.instances()) == ["running", "running"], 30, "both VMs up"
    )
