"""End to end on a real kube-apiserver: kubectl apply -> Ready VM -> proxy from the Deployment (with its
ServiceAccount token) -> idle stop -> wake -> delete with the finalizer; children removed by the real
garbage collector."""

from __future__ import annotations

import base64
from typing import Any

import ollama
import pytest
from chart_world import render, rules_of
from cluster.fixtures import KubeNamespace
from operator_world import SECRET, credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, wait_until

# Grants this run does not exercise, and why they exist (everything else must be used here).
JUSTIFIED_UNUSED = {
    # held only so the operator may grant them to each proxy's Role (RBAC escalation rule)
    ("remoteollama.dev", "remoteollamas", "get"),
    # drift repair re-applies children by merge patch (tests/test_operator_drift.py)
    ("apps", "deployments", "patch"),
    ("", "services", "patch"),
    ("", "secrets", "patch"),
    ("", "serviceaccounts", "patch"),
    ("rbac.authorization.k8s.io", "roles", "patch"),
    ("rbac.authorization.k8s.io", "rolebindings", "patch"),
    ("networking.k8s.io", "networkpolicies", "patch"),
    # held only so the operator may grant them to each proxy's Role: the proxies keep their load
    # signal Leases (the operator lists and watches them); used with spec.replicas.max > 1
    # (tests/test_operator_replicas.py), as is the proxies' PodDisruptionBudget
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "patch"),
    ("coordination.k8s.io", "leases", "delete"),  # a dead proxy's Lease, 10 minutes on
    ("policy", "poddisruptionbudgets", "create"),
    ("policy", "poddisruptionbudgets", "patch"),
    ("policy", "poddisruptionbudgets", "delete"),
    # Events: kopf posts them from a logging handler, which pytest's log capture can starve in this
    # in-process run; tests/test_operator_bad_input.py sees them from the operator as a process
    ("", "events", "create"),
    # peering between replicas; this run is --standalone (tests/test_operator_peering.py)
    ("kopf.dev", "clusterkopfpeerings", "get"),
    ("kopf.dev", "clusterkopfpeerings", "list"),
    ("kopf.dev", "clusterkopfpeerings", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "patch"),
    ("kopf.dev", "clusterkopfpeerings", "create"),
}


def calls_of(audit: list[dict[str, Any]], user: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) of every audited request by `user`."""
    return {
        (
            ref.get("apiGroup", ""),
            "/".join(filter(None, (ref["resource"], ref.get("subresource")))),
            e["verb"],
        )
        for e in audit
        if e["user"]["username"] == user
        for ref in [e["objectRef"]]
    }


def test_apply_ready_serve_idle_wake_delete(kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    audit_start = len(kube.plane.audit())
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama())
        obj = world.wait_phase("Ready")
        status = obj["status"]
        assert status["endpoint"].startswith("https://127.")
        assert status["serviceURL"] == f"http://granite.{kube.namespace}.svc:11434"
        conds = {c["type"]: c for c in status["conditions"]}
        assert all(
            conds[t]["status"] == "True"
            for t in ("Ready", "InstanceRunning", "OllamaReady", "ModelsReady", "CredentialsValid")
        ), conds
        assert len(world.instances()) == 1
        for kind in ("deployment", "service", "secret"):
            name = "granite-remote-ollama" if kind == "secret" else "granite"
            child: dict[str, Any] | None = world.get(kind, name)
            assert child is not None, kind
            assert child["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]

        table = kube.kubectl("get", "rol").stdout
        header = table.splitlines()[0].split()
        assert header[:7] == ["NAME", "PHASE", "TYPE", "ZONE", "REPLICAS", "IP", "LAST-ACTIVITY"], table
        assert table.splitlines()[1].split()[4] == "1/1", table  # ready/desired

        # no secret value in status or annotations (Events: tests/test_operator_bad_input.py, where
        # the operator runs as its own process and posts them)
        # the proxy's client key (mutual TLS; no bearer secret exists): a line of its PEM body
        vm_key = (
            base64.b64decode(world.get("secret", "granite-remote-ollama")["data"]["client.key"])
            .decode()
            .splitlines()[1]
        )
        visible = kube.kubectl("get", "rol", "-A", "-o", "json").stdout
        assert '"endpoint": "https://' in visible  # the status is there, and was searched
        for secret in (vm_key, SECRET):
            assert secret not in visible

        url = world.start_proxy()
        client = ollama.Client(host=url)
        chunks = list(client.generate(model="granite3.1-dense:8b", prompt="hi", stream=True))
        assert len(chunks) > 1 and chunks[-1].done
        assert "".join(c.response for c in chunks).strip()

        # no traffic for stopAfter -> the VM is stopped, not destroyed
        world.wait_phase("Stopped")
        wait_until(lambda: [i.state for i in world.instances()] == ["stopped"], LIFECYCLE, "instance stopped")
        first_id = world.instances()[0].id

        # a request wakes it: held by the proxy, answered once Ready, same instance
        reply = client.generate(model="granite3.1-dense:8b", prompt="again", stream=False)
        assert reply.done and reply.response
        assert [i.id for i in world.instances()] == [first_id]
        obj = world.wait_phase("Ready")
        assert obj["status"]["lastWake"]["seconds"] > 0

        # the proxy goes first: once deletion begins the operator removes its Role, and a last
        # activity write would be refused by design (403), hiding a real refusal among them
        world.stop_procs()
        kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_until(lambda: world.get("remoteollama", "granite") is None, 30, "resource gone")
        assert world.instances() == []
        assert world.security_groups() == []
        assert world.get("secret", "granite-remote-ollama") is None

        # Least privilege, proven on what really happened: the API server enforced the chart's
        # ClusterRole (operator) and the Role the operator gave the proxy; its audit log shows no
        # refusal, and every grant of the ClusterRole was used (or is justified above).
        audit = [e for e in kube.plane.audit()[audit_start:] if e.get("objectRef")]
        release = kube.release
        operator_user = f"system:serviceaccount:{release.namespace}:{release.serviceaccount}"
        proxy_user = f"system:serviceaccount:{kube.namespace}:{obj['metadata']['name']}-proxy"
        refused = [
            (e["requestReceivedTimestamp"], e["user"]["username"], e["verb"], e["requestURI"])
            for e in audit
            if e["user"]["username"] in (operator_user, proxy_user) and e["responseStatus"]["code"] == 403
        ]
        assert refused == [], f"the API server refused: {refused}"
        operator_calls = calls_of(audit, operator_user)
        assert operator_calls, "the audit log saw no operator request"
        objects, _ = render()
        unused = {(g, r, v) for g, r, v, _ in rules_of(objects)} - operator_calls
        assert unused <= JUSTIFIED_UNUSED, (
            f"granted but never used in this run: {sorted(unused - JUSTIFIED_UNUSED)}"
        )
        assert any(e["user"]["username"] == proxy_user for e in audit), "the audit log saw no proxy request"
