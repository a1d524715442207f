"""The chart grants the operator no more than it documents: exactly the listed rules, no wildcards
or escalation paths, and for each proxy only what the operator itself holds."""

from __future__ import annotations

from typing import Any

import pytest
from chart_world import CHART, NAMESPACE, one, rbac_allows, render, rules_of

from remote_ollama.kube.operator import children


@pytest.fixture(scope="module")
def default_install() -> tuple[list[dict[str, Any]], str]:
    return render()


# --- RBAC ----------------------------------------------------------------------------------------

# The documented grants (see the comments in templates/rbac.yaml): exactly these, nothing more.
EXPECTED_GRANTS = {
    ("remoteollama.dev", "remoteollamas"): {"get", "list", "watch", "patch"},
    ("remoteollama.dev", "remoteollamas/status"): {"patch"},
    # get: a child is touched only if its ownerReferences carry the resource's uid
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "patch", "delete"},
    ("", "secrets"): {"get", "create", "patch", "delete"},
    ("", "serviceaccounts"): {"get", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "roles"): {"get", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"get", "create", "patch", "delete"},
    ("", "events"): {"create"},
    ("policy", "poddisruptionbudgets"): {"get", "create", "patch", "delete"},
    ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "namespaces"): {"get"},
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch", "create"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}


def test_rbac_grants_exactly_what_is_documented(default_install: tuple[list[dict[str, Any]], str]) -> None:
    objects, _ = default_install
    granted: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb, _names in rules_of(objects):
        granted.setdefault((group, resource), set()).add(verb)
    assert granted == EXPECTED_GRANTS


def test_rbac_has_no_wildcards_or_escalation_paths(default_install: tuple[list[dict[str, Any]], str]) -> None:
    objects, _ = default_install
    for group, resource, verb, _names in rules_of(objects):
        assert "*" not in (group, resource, verb)
        assert verb not in {"escalate", "bind", "impersonate", "deletecollection"}
        assert resource not in {"clusterroles", "clusterrolebindings", "pods/exec", "nodes"}
    rule_names = {(g, r): names for g, r, _v, names in rules_of(objects)}
    assert rule_names[("", "namespaces")] == ("kube-system",)  # reads one namespace's uid only
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(objects, "ClusterRole")["metadata"]["name"],
    }
    assert binding["roleRef"]["name"] not in {"cluster-admin", "admin", "edit"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "remote-ollama", "namespace": NAMESPACE}
    ]


def test_operator_holds_what_it_grants_to_each_proxy(
    default_install: tuple[list[dict[str, Any]], str],
) -> None:
    """RBAC lets the operator create the proxy's Role only if it holds every permission in it."""
    objects, _ = default_install
    body = {"metadata": {"name": "granite", "namespace": "ai", "uid": "u-1"}}
    for rule in children.proxy_role(body)["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames", [None]):
                        assert rbac_allows(objects, group, resource, verb, name), (
                            group,
                            resource,
                            verb,
                            name,
                        )


def test_rbac_secrets_comment_explains_the_cluster_wide_grant() -> None:
    text = (CHART / "templates" / "rbac.yaml").read_text()
    assert "credentialsSecretRef" in text and "name pattern" in text
