"""The platform team's spend policy (REMOTE_OLLAMA_POLICY, the chart's `policy`), which tenants
cannot write: a RemoteOllama outside it is refused as Ready=False PolicyViolation with a Warning
Event, before any cloud call; within it, the same resource gets its VM."""

from __future__ import annotations

import json
from typing import Any

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import wait_until

POLICY = {
    "instanceTypes": ["gpua5000.small"],
    "zones": ["at-vie-2"],
    "maxDiskSize": 100,
    "allowedSourceCIDRs": ["10.0.0.0/8"],
}


def ready_condition(world: CloudWorld) -> dict[str, Any] | None:
    conds = ((world.get("remoteollama", "granite") or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), None)


def test_a_spec_outside_the_policy_is_refused_before_any_cloud_call(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.start_operator(REMOTE_OLLAMA_POLICY=json.dumps(POLICY))
        world.apply(credentials_secret())
        world.apply(remote_ollama(instanceType="gpu3.huge", diskSize=51200, allowedSourceCIDRs=["0.0.0.0/0"]))

        def refused() -> dict[str, Any] | None:
            cond = ready_condition(world)
            return (
                cond if cond and cond["status"] == "False" and cond["reason"] == "PolicyViolation" else None
            )

        cond = wait_until(refused, 30, "Ready=False PolicyViolation")
        message = cond["message"]
        assert "REMOTE_OLLAMA_POLICY" in message and "spec.instanceType gpu3.huge" in message
        assert "spec.diskSize 51200" in message and "spec.allowedSourceCIDRs 0.0.0.0/0" in message
        assert world.phase() == "Failed"
        out = world.kube.kubectl("get", "events", "-n", world.namespace, "-o", "json")
        events = json.loads(out.stdout).get("items", [])
        assert any(e.get("reason") == "PolicyViolation" and e.get("type") == "Warning" for e in events)
        assert world.sim.sim.calls == [], "a refused spec reached the cloud"

        world.apply(remote_ollama(allowedSourceCIDRs=["10.1.0.0/16"]))  # within the policy
        wait_until(lambda: world.calls("create-instance") == 1, 90, "the VM created within the policy")
        wait_until(
            lambda: (ready_condition(world) or {}).get("reason") != "PolicyViolation", 30, "refusal lifted"
        )
