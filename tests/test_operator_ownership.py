"""Children are the resource's only when their ownerReferences say so: a taken name is reported,
never patched or deleted. Each resource gets a NetworkPolicy admitting its own namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, wait_until

FOREIGN_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "granite", "labels": {"team": "b"}},  # the test's namespace
    "spec": {"selector": {"app": "their-ollama"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), {})


def test_a_taken_name_is_reported_and_left_untouched(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(yaml.safe_dump(FOREIGN_SERVICE))
        before = world.get("service", "granite")
        assert before is not None
        world.apply(credentials_secret())
        world.apply(remote_ollama())
        cond = wait_until(
            lambda: (
                (c := ready_condition(world.get("remoteollama", "granite"))).get("reason") == "NameConflict"
                and c
            ),
            30,
            "Ready=False NameConflict",
        )
        assert cond["status"] == "False" and f"Service {kube.namespace}/granite" in cond["message"]
        after = world.get("service", "granite")
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["spec"]["selector"] == {"app": "their-ollama"}
        assert "ownerReferences" not in after["metadata"]
        assert world.get("deployment", "granite") is None, "half a set of children was created"
        assert world.instances() == [], "a VM for a resource that cannot be served"

        def warned() -> list[Any]:
            events = json.loads(kube.kubectl("get", "events", "-o", "json").stdout)["items"]
            return [e for e in events if e.get("reason") == "NameConflict" and e.get("type") == "Warning"]

        assert (
            f"Service {kube.namespace}/granite"
            in wait_until(warned, LIFECYCLE, "Warning Event")[0]["message"]
        )

        kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_until(lambda: world.get("remoteollama", "granite") is None, 30, "resource gone")
        still = world.get("service", "granite")
        assert still is not None and still["metadata"]["uid"] == before["metadata"]["uid"]


def test_network_policy_admits_the_own_namespace_and_follows_the_spec(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama())
        policy = wait_until(lambda: world.get("networkpolicy", "granite"), 30, "NetworkPolicy granite")
        deployment = world.get("deployment", "granite")
        assert deployment is not None
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert selector.items() <= pod_labels.items(), "the policy selects the proxy pods"
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        assert rule["from"] == [{"podSelector": {}}]  # this namespace only
        assert rule["ports"] == [{"port": 11434, "protocol": "TCP"}]
        uid = world.get("remoteollama", "granite")["metadata"]["uid"]  # type: ignore[index]
        assert policy["metadata"]["ownerReferences"][0]["uid"] == uid

        peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}
        world.apply(remote_ollama(networkPolicy={"allowFrom": [peer]}))
        wait_until(
            lambda: (
                (world.get("networkpolicy", "granite") or {})
                .get("spec", {})
                .get("ingress", [{}])[0]
                .get("from")
                == [{"podSelector": {}}, peer]
            ),
            30,
            "allowFrom widens the policy",
        )
        world.apply(remote_ollama(networkPolicy={"enabled": False}))
        wait_until(lambda: world.get("networkpolicy", "granite") is None, 30, "policy removed when disabled")
