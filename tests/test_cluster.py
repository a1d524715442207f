"""The test control plane itself: a real kube-apiserver with RBAC on, tokens from TokenRequest, Helm."""

from __future__ import annotations

import json

from cluster.fixtures import KubeNamespace, OperatorRelease


def test_rbac_is_enforced_and_service_account_tokens_work(k8s: KubeNamespace) -> None:
    k8s.kubectl("create", "serviceaccount", "nobody", check=True)
    as_nobody = k8s.kubeconfig_for("nobody")
    whoami = json.loads(k8s.kubectl("auth", "whoami", "-o", "json", kubeconfig=as_nobody, check=True).stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{k8s.namespace}:nobody"
    denied = k8s.kubectl("get", "secrets", kubeconfig=as_nobody)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr, denied.stderr


def test_helm_installs_the_chart_for_real(k8s: KubeNamespace, operator_release: OperatorRelease) -> None:
    assert "STATUS: deployed" in operator_release.helm_status
    crds = k8s.kubectl("get", "crd", "-o", "name", check=True).stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/remoteollamas.remoteollama.dev" in crds
    ns = operator_release.namespace
    dep = json.loads(
        k8s.kubectl("get", "deployment", "remote-ollama", "-n", ns, "-o", "json", check=True).stdout
    )
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == operator_release.serviceaccount
    # the operator's identity may read RemoteOllamas cluster-wide and nothing it was not granted
    can = k8s.kubectl("auth", "can-i", "watch", "remoteollamas.remoteollama.dev", "-A",
                      kubeconfig=operator_release.kubeconfig)  # fmt: skip
    assert can.stdout.strip() == "yes", can.stderr
    cannot = k8s.kubectl("auth", "can-i", "delete", "nodes", kubeconfig=operator_release.kubeconfig)
    assert cannot.stdout.strip() == "no"
