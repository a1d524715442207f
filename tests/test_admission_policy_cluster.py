"""The proxy's admission policy on the real kube-apiserver (the chart installed by Helm): a
resource's proxy ServiceAccount, with the Role the operator gives it, may patch the activity
annotations and nothing else; the operator and other users are not affected."""

from __future__ import annotations

import json
from typing import Any

import yaml
from cluster.fixtures import KubeNamespace
from waiting import LIFECYCLE, wait_until

from remote_ollama.kube.operator import children


def apply(kube: KubeNamespace, obj: dict[str, Any]) -> None:
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=True)


def patch(kube: KubeNamespace, body: dict[str, Any], kubeconfig: Any) -> tuple[int, str]:
    out = kube.kubectl(
        "patch", "remoteollama", "granite", "--type=merge", "-p", json.dumps(body), kubeconfig=kubeconfig
    )
    return out.returncode, out.stderr


def test_the_proxy_may_patch_only_its_activity_annotations(kube: KubeNamespace) -> None:
    ns = kube.namespace
    resource = {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": "granite", "namespace": ns},
        "spec": {"credentialsSecretRef": {"name": "exoscale"}, "budget": {"maxMonthlySpend": 100}},
    }
    apply(kube, resource)
    created = json.loads(kube.kubectl("get", "remoteollama", "granite", "-o", "json", check=True).stdout)
    for child in (
        children.proxy_service_account(created),
        children.proxy_role(created),
        children.proxy_role_binding(created),
    ):
        apply(kube, child)
    proxy = kube.kubeconfig_for("granite-proxy")
    stamp = {"metadata": {"annotations": {"remoteollama.dev/last-activity": "2026-12-02T10:00:00.000Z"}}}
    assert patch(kube, stamp, proxy)[0] == 0

    # the binding takes effect within moments of the install; from then on a spec patch is denied
    def denied() -> str | None:
        code, err = patch(kube, {"spec": {"budget": {"maxMonthlySpend": 100000}}}, proxy)
        return err if code != 0 else None

    message = wait_until(denied, LIFECYCLE, "the proxy's spec patch denied")
    assert "ValidatingAdmissionPolicy" in message and "not the spec" in message
    for forbidden in (
        {"metadata": {"annotations": {"remoteollama.dev/sleep-requested": "2026-12-02T10:00:00Z"}}},
        {"metadata": {"labels": {"team": "b"}}},
        {"metadata": {"finalizers": ["example.com/keep-forever"]}},
    ):
        code, err = patch(kube, forbidden, proxy)
        assert code != 0 and "denied" in err, forbidden
    for allowed in (
        {"metadata": {"annotations": {"remoteollama.dev/wake-requested": "2026-12-02T10:00:01.000Z"}}},
        {"metadata": {"annotations": {"remoteollama.dev/in-flight": "2"}}},
    ):
        assert patch(kube, allowed, proxy)[0] == 0, allowed
    spec = json.loads(kube.kubectl("get", "remoteollama", "granite", "-o", "json", check=True).stdout)["spec"]
    assert spec["budget"] == {"maxMonthlySpend": 100}
    # an administrator (and the operator) is not affected
    assert patch(kube, {"spec": {"budget": {"maxMonthlySpend": 200}}}, None)[0] == 0
