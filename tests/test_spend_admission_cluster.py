"""The spend policy at admission, on the real kube-apiserver with the chart installed by Helm: the
ValidatingAdmissionPolicy `remote-ollama-spend-policy` takes the ConfigMap `remote-ollama-policy`
in the operator's namespace as its parameters (the same object the operator reads) and refuses a
RemoteOllama outside it at `kubectl apply`, naming the policy and the field; a tenant with admin
rights in its own namespace can neither change those parameters nor bring its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cluster.fixtures import KubeNamespace
from waiting import wait_until

RELEASE_NS, PARAMS = "remote-ollama", "remote-ollama-policy"
POLICY = {
    "instanceTypes": "gpua5000.small, gpu3080ti.*",
    "zones": "at-vie-2,ch-gva-2",
    "maxDiskSize": "200",
    "allowedSourceCIDRs": "10.0.0.0/8,2001:db8::/32",
}


def resource(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": name},
        "spec": {"credentialsSecretRef": {"name": "exoscale"}, "allowedSourceCIDRs": ["10.1.0.0/16"], **spec},
    }
    return yaml.safe_dump(body)


def set_policy(kube: KubeNamespace, data: dict[str, str]) -> None:
    body = json.dumps({"data": data})
    kube.kubectl("patch", "configmap", PARAMS, "-n", RELEASE_NS, "--type=merge", "-p", body, check=True)


@pytest.fixture
def policy(kube: KubeNamespace) -> Iterator[KubeNamespace]:
    """The release's policy set for this test, and emptied afterwards (the release is shared)."""
    set_policy(kube, POLICY)
    try:
        yield kube
    finally:
        kube.kubectl(
            "patch", "configmap", PARAMS, "-n", RELEASE_NS, "--type=json",
            "-p", '[{"op": "replace", "path": "/data", "value": {}}]', check=True,
        )  # fmt: skip


def apply(kube: KubeNamespace, manifest: str, kubeconfig: Any = None) -> tuple[int, str]:
    out = kube.kubectl("apply", "-f", "-", input=manifest, kubeconfig=kubeconfig)
    return out.returncode, out.stderr


def test_a_spec_outside_the_policy_is_refused_at_apply_naming_the_policy_and_the_field(
    policy: KubeNamespace,
) -> None:
    kube = policy

    def refused() -> str | None:  # the new parameters are seen within moments
        code, err = apply(kube, resource("huge", instanceType="gpu3.huge"))
        return err if code != 0 else None

    message = wait_until(refused, 30, "gpu3.huge refused at admission")
    assert "ValidatingAdmissionPolicy 'remote-ollama-spend-policy'" in message
    assert (
        "platform policy remote-ollama/remote-ollama-policy: spec.instanceType gpu3.huge is not allowed "
        "(allowed: gpua5000.small, gpu3080ti.*)" in message
    ), message
    for spec, words in (
        ({"zone": "de-fra-1"}, "spec.zone de-fra-1 is not allowed (allowed: at-vie-2, ch-gva-2)"),
        (
            {"placements": [{"zone": "ch-gva-2", "instanceType": "gpu2.large"}]},
            "spec.instanceType gpu2.large",
        ),
        ({"placements": [{"zone": "hr-zag-1"}]}, "spec.zone hr-zag-1 is not allowed"),
        ({"diskSize": 51200}, "spec.diskSize 51200 is above the maximum of 200 GiB"),
        (
            {"allowedSourceCIDRs": ["10.2.0.0/16", "0.0.0.0/0", "2001:db9::/32"]},
            "spec.allowedSourceCIDRs 0.0.0.0/0, 2001:db9::/32 is wider than allowed "
            "(within: 10.0.0.0/8, 2001:db8::/32)",
        ),
        ({"allowedSourceCIDRs": ["10.1.2.3/4"]}, "spec.allowedSourceCIDRs 10.1.2.3/4 is wider"),
    ):
        code, err = apply(kube, resource("bad", **spec))
        assert code != 0 and "remote-ollama-spend-policy" in err and words in err, (spec, err)
    assert not kube.kubectl("get", "remoteollamas", "-o", "name").stdout.strip()  # nothing was stored

    within = resource(
        "granite",
        instanceType="gpu3080ti.large",  # the family wildcard
        diskSize=200,
        allowedSourceCIDRs=["10.1.0.0/16", "2001:db8:1::/48"],
        placements=[{"zone": "ch-gva-2"}],
    )
    assert apply(kube, within) == (0, "")
    # a spec change is checked too; a change outside the spec is not
    code, err = apply(kube, within.replace("diskSize: 200", "diskSize: 201"))
    assert code != 0 and "spec.diskSize 201 is above the maximum of 200 GiB" in err
    set_policy(kube, {"maxDiskSize": "100"})  # tightened after the resource was admitted

    def annotated() -> bool:  # the admitted resource keeps working: activity annotations, finalizers
        out = kube.kubectl("annotate", "rol", "granite", "example.com/note=x", "--overwrite")
        return out.returncode == 0

    assert wait_until(annotated, 30, "an annotation on the admitted resource")
    code, err = apply(kube, within.replace("gpu3080ti.large", "gpu3080ti.small"))
    assert code != 0 and "spec.diskSize 200 is above the maximum of 100 GiB" in err


def test_a_tenant_cannot_change_the_policy_nor_bring_its_own(policy: KubeNamespace) -> None:
    kube, ns = policy, policy.namespace
    kube.kubectl("create", "serviceaccount", "tenant", check=True)
    # namespace-admin as the issue found it: every verb on every resource of its own namespace
    kube.kubectl("create", "role", "everything", "--verb=*", "--resource=*.*", check=True)
    kube.kubectl(
        "create", "rolebinding", "tenant-admin", "--role=everything", f"--serviceaccount={ns}:tenant",
        check=True,
    )  # fmt: skip
    tenant = kube.kubeconfig_for("tenant")
    assert apply(kube, resource("mine"), tenant)[0] == 0  # it may make RemoteOllamas within the policy
    for attempt in (
        ("patch", "configmap", PARAMS, "-n", RELEASE_NS, "--type=merge", "-p", '{"data": {"zones": ""}}'),
        ("delete", "configmap", PARAMS, "-n", RELEASE_NS),
        ("get", "configmap", PARAMS, "-n", RELEASE_NS),
    ):
        out = kube.kubectl(*attempt, kubeconfig=tenant)
        assert out.returncode != 0 and "Forbidden" in out.stderr, (attempt, out.stderr)
    # a ConfigMap of the same name in the tenant's namespace is not the policy's parameters
    own = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PARAMS}, "data": {}}
    assert apply(kube, yaml.safe_dump(own), tenant)[0] == 0
    code, err = apply(kube, resource("huge", instanceType="gpu3.huge"), tenant)
    assert code != 0 and "spec.instanceType gpu3.huge is not allowed" in err
    data = json.loads(kube.kubectl("get", "configmap", PARAMS, "-n", RELEASE_NS, "-o", "json").stdout)["data"]
    assert data == POLICY
