"""The operator's admission policy on the real kube-apiserver (the chart installed by Helm): with its
own ServiceAccount's token, the operator may create, patch and delete its children and nothing else,
although RBAC alone would let it write such objects in every namespace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.fixtures import KubeNamespace
from waiting import wait_until

from remote_ollama.kube.operator import children
from remote_ollama.spec.names import secret_name

ADMIN_MADE = {
    # kind, name, body: what a tenant (or kube-system) has that is not the operator's
    "deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1"}]},
            },
        },
    },
    "role": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": []},
    "rolebinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "team"},
        "subjects": [{"kind": "User", "name": "alice@example.com"}],
    },
    "secret": {"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "hunter2"}},
    "service": {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}},
    # e.g. a controller's leader election: the operator deletes only its proxies' Leases
    "lease": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "x"}},
    "poddisruptionbudget": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    },
}


def create(kube: KubeNamespace, obj: dict[str, Any], as_: Path | None = None) -> tuple[int, str]:
    out = kube.kubectl("create", "-f", "-", input=yaml.safe_dump(obj), kubeconfig=as_)
    return out.returncode, out.stderr


@pytest.fixture
def operator(kube: KubeNamespace) -> Path:
    """The operator's kubeconfig, once the policy is in effect. RBAC allows the operator's writes; the
    policy (installed with the chart) takes effect within moments: a server-side dry run of deleting
    a tenant's Secret passes admission without deleting anything."""
    assert create(kube, {**ADMIN_MADE["secret"], "metadata": {"name": "probe"}})[0] == 0
    # the release's ServiceAccount token, in this test's namespace
    operator = kube.kubeconfig_for(kube.release.serviceaccount, kube.release.namespace)

    def refused() -> str | None:
        out = kube.kubectl("delete", "secret", "probe", "--dry-run=server", kubeconfig=operator)
        return out.stderr if out.returncode != 0 else None

    message = wait_until(refused, 20, "the operator's delete of a tenant's Secret refused")
    assert "ValidatingAdmissionPolicy" in message and "only its children" in message
    return operator


def resource(kube: KubeNamespace) -> dict[str, Any]:
    body = {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": "granite", "namespace": kube.namespace},
        "spec": {"credentialsSecretRef": {"name": "exoscale"}},
    }
    assert create(kube, body)[0] == 0
    got: dict[str, Any] = json.loads(kube.kubectl("get", "remoteollama", "granite", "-o", "json").stdout)
    return got


def replicated(body: dict[str, Any]) -> dict[str, Any]:
    """The resource with spec.replicas.max 2: its proxy runs two pods behind a disruption budget."""
    return {**body, "spec": {**body["spec"], "replicas": {"max": 2}}}


def test_the_operator_writes_only_its_children(kube: KubeNamespace, operator: Path) -> None:
    for kind, body in ADMIN_MADE.items():
        assert create(kube, {**body, "metadata": {"name": "team", "namespace": kube.namespace}})[0] == 0, kind
    stamp = json.dumps({"metadata": {"annotations": {"example.com/touched": "yes"}}})
    child_label = json.dumps({"metadata": {"labels": {children.MANAGED_BY_LABEL: children.MANAGED_BY_VALUE}}})
    for kind in ADMIN_MADE:
        for patch in (stamp, child_label):  # labelling it a child is a patch of a non-child too
            out = kube.kubectl("patch", kind, "team", "--type=merge", "-p", patch, kubeconfig=operator)
            assert out.returncode != 0 and "only its children" in out.stderr, (kind, out.stderr)
        out = kube.kubectl("delete", kind, "team", "--wait=false", kubeconfig=operator)
        assert out.returncode != 0 and "only its children" in out.stderr, (kind, out.stderr)
        got = json.loads(kube.kubectl("get", kind, "team", "-o", "json", check=True).stdout)
        assert "example.com/touched" not in (got["metadata"].get("annotations") or {}), kind
        # nor can it create one without the child mark
        code, err = create(kube, {**ADMIN_MADE[kind], "metadata": {"name": "new"}}, operator)
        assert code != 0 and "only its children" in err, (kind, err)


def test_the_operator_still_manages_its_children(kube: KubeNamespace, operator: Path) -> None:
    body = resource(kube)
    made = [
        children.proxy_service_account(body),
        children.proxy_role(body),
        children.proxy_role_binding(body),
        children.deployment(body, "registry.example.com/remote-ollama:0.1.0"),
        children.service(body),
        children.network_policy(body) or {},
        children.vm_secret(body, {"ca.crt": "x"}, secret_name("granite")),
        children.disruption_budget(replicated(body)) or {},
    ]
    for obj in made:
        code, err = create(kube, obj, operator)
        assert code == 0, (obj["kind"], err)
    stamp = json.dumps({"metadata": {"annotations": {"example.com/repaired": "yes"}}})
    for obj in made:
        kind, name = obj["kind"].lower(), obj["metadata"]["name"]
        out = kube.kubectl("patch", kind, name, "--type=merge", "-p", stamp, kubeconfig=operator)
        assert out.returncode == 0, (kind, out.stderr)
    # a tenant who strips the label does not lock out drift repair (its RemoteOllama still owns it)
    kube.kubectl("label", "service", "granite", f"{children.MANAGED_BY_LABEL}-", check=True)
    again = kube.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(children.service(body)), kubeconfig=operator
    )
    assert again.returncode == 0, again.stderr
    for obj in made:
        kind, name = obj["kind"].lower(), obj["metadata"]["name"]
        out = kube.kubectl("delete", kind, name, "--wait=false", kubeconfig=operator)
        assert out.returncode == 0, (kind, out.stderr)


def test_a_child_cannot_be_shaped_into_an_escalation(kube: KubeNamespace, operator: Path) -> None:
    """Marked as a child, an object still cannot bind another subject, grant more, run as another
    ServiceAccount, receive another Service's traffic, isolate other pods or expose the proxy."""
    body = resource(kube)
    binding = children.proxy_role_binding(body)
    binding["subjects"][0]["namespace"] = "kube-system"  # its Secrets' reader elsewhere
    assert create(kube, children.proxy_role(body))[0] == 0  # RBAC checks a bound Role exists
    role = children.proxy_role(body)
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})  # any name
    deployment = children.deployment(body, "registry.example.com/remote-ollama:0.1.0")
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    impostor = children.deployment(body, "registry.example.com/remote-ollama:0.1.0")
    impostor["spec"]["template"]["metadata"]["labels"]["app"] = "web"  # the team's Service `web` selects it
    policy = children.network_policy(body)
    assert policy is not None
    policy["spec"]["podSelector"] = {}  # every pod of the namespace isolated
    service = children.service(body)
    service["spec"]["type"] = "LoadBalancer"
    budget = children.disruption_budget(replicated(body)) or {}
    budget["spec"]["selector"] = {"matchLabels": {"app": "web"}}  # the team's pods kept from eviction
    leases = children.proxy_role(body)
    leases["rules"][-1]["verbs"].append("delete")  # another proxy's load signal

    for obj, why in (
        (binding, "RoleBinding binds only"),
        (role, "Role grants only"),
        (deployment, "ServiceAccount"),
        (impostor, "labels its pods only as its proxy's"),
        (policy, "selects only its proxy's pods"),
        (service, "ClusterIP"),
        (budget, "PodDisruptionBudget selects only"),
        (leases, "Role grants only"),
    ):
        code, message = create(kube, obj, operator)
        assert code != 0 and why in message, (obj["kind"], message)


def test_secret_reads_stay_by_name_only(kube: KubeNamespace, operator: Path) -> None:
    """The residual the README states: `get` on a Secret whose name is known, never list or watch."""
    assert create(kube, {**ADMIN_MADE["secret"], "metadata": {"name": "team"}})[0] == 0
    assert kube.kubectl("get", "secret", "team", kubeconfig=operator).returncode == 0
    listed = kube.kubectl("get", "secrets", kubeconfig=operator)
    assert listed.returncode != 0 and "forbidden" in listed.stderr.lower()
