"""The platform team's spend policy (REMOTE_OLLAMA_POLICY, the chart's `policy`), which tenants
cannot write: a RemoteOllama outside it is refused as Ready=False PolicyViolation with a Warning
Event, before any cloud call; within it, the same resource gets its VM."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # a request (idle: no VM before one)
        world.kube.kubectl("annotate", "rol", "granite", f"remoteollama.dev/wake-requested={now}", check=True)
        wait_until(lambda: world.calls("create-instance") == 1, 90, "the VM created within the policy")
        wait_until(
            lambda: (ready_condition(world) or {}).get("reason") != "PolicyViolation", 30, "refusal lifted"
        )


def test_the_operator_reads_the_policy_configmap_that_admission_reads(kube: KubeNamespace) -> None:
    """Under the chart the policy's one home is the ConfigMap `remote-ollama-policy` in the
    operator's namespace: a resource admitted before the platform team tightened it is refused by
    the operator at its next round, naming that ConfigMap, with no restart and no cloud call."""
    params = ("configmap", "remote-ollama-policy", "-n", "remote-ollama")
    env = {
        "REMOTE_OLLAMA_POLICY_CONFIGMAP": "remote-ollama-policy",
        "REMOTE_OLLAMA_NAMESPACE": "remote-ollama",
    }
    with cloud_world(kube) as world:
        world.start_operator(**env)
        world.apply(remote_ollama(instanceType="gpu3.huge"))  # admitted: no policy yet (and no Secret)
        wait_until(lambda: world.phase() == "Pending", 30, "the resource waiting for its Secret")
        try:
            tighten = '{"data": {"instanceTypes": "gpua5000.small"}}'
            kube.kubectl("patch", *params, "--type=merge", "-p", tighten, check=True)
            world.apply(credentials_secret())
            stamp = "remoteollama.dev/wake-requested=2026-12-02T10:00:00Z"  # a request: a round now
            kube.kubectl("annotate", "rol", "granite", stamp, "--overwrite", check=True)

            def refused() -> dict[str, Any] | None:
                cond = ready_condition(world)
                return cond if cond and cond["reason"] == "PolicyViolation" else None

            message = wait_until(refused, 30, "Ready=False PolicyViolation")["message"]
            assert message == (
                "platform policy remote-ollama/remote-ollama-policy: spec.instanceType gpu3.huge is not "
                "allowed (allowed: gpua5000.small)"
            )
            assert world.sim.sim.calls == []
        finally:
            empty = '[{"op": "replace", "path": "/data", "value": {}}]'
            kube.kubectl("patch", *params, "--type=json", "-p", empty)
