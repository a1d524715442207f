"""The Helm chart, rendered by Helm's own engine (helm-python-sdk) and checked as a cluster would.

Every rendered object must pass Kubernetes' published schema (kubernetes-validate, strict: unknown
fields are errors), every RemoteOllama the CRD's own schema, and the chart must grant the operator
no more than it documents.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_world import (
    ALL_FEATURES,
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    REPOSITORY,
    ROOT,
    STANDARD_LABELS,
    by_kind,
    one,
    render,
    validate_k8s,
)

from remote_ollama.core import cost
from remote_ollama.spec.policy import Policy, policy_from_data


@pytest.fixture(scope="module")
def default_install() -> tuple[list[dict[str, Any]], str]:
    return render()


@pytest.fixture(scope="module")
def full_install() -> tuple[list[dict[str, Any]], str]:
    return render(ALL_FEATURES)


# --- lint and metadata -------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, ALL_FEATURES], ids=["defaults", "all-features"])
def test_helm_lint_strict_is_clean(values: dict[str, Any] | None) -> None:
    values = values or {"image": {"repository": REPOSITORY}}
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == [] and report["messages"] == [], json.dumps(report, indent=1)


def test_chart_metadata_follows_helm_conventions_and_the_package_version() -> None:
    package_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == package_version
    assert meta["version"] == package_version


def test_chart_crds_are_the_projects_crds() -> None:
    # the RemoteOllama CRD's three copies are generated: tests/test_crd_generated.py
    kopf_crds = (ROOT / "manifests" / "02-crd-kopf-peering.yaml").read_bytes()
    assert (CHART / "crds" / "kopf-peering.yaml").read_bytes() == kopf_crds
    with helm.Chart.load(CHART) as chart:
        loaded = [doc for crd in chart.crds for doc in yaml.safe_load_all(crd["data"]) if doc]
    assert {c["metadata"]["name"] for c in loaded} == {
        "remoteollamas.remoteollama.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    for crd in loaded:
        validate_k8s(crd)


def test_every_value_in_values_yaml_is_commented() -> None:
    """Each value has a comment right above it, or sits in a block whose key has one."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    uncommented = []
    commented_at: dict[int, bool] = {}  # indentation -> whether the open key there was commented
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][\w.]*):(.*)$", line)
        if not m:
            continue
        indent = len(m.group(1))
        commented_at = {k: v for k, v in commented_at.items() if k < indent}
        previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
        has_comment = previous.strip().startswith("#")
        commented_at[indent] = has_comment
        inherited = any(v for k, v in commented_at.items() if k < indent)
        is_section = m.group(3).strip() == ""
        if not (has_comment or inherited or is_section):
            uncommented.append(line)
    assert uncommented == []


# --- rendered objects ----------------------------------------------------------------------------


def test_default_install_is_the_operator_and_nothing_else(
    default_install: tuple[list[dict[str, Any]], str],
) -> None:
    objects, _ = default_install
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("ClusterRole", "remote-ollama"),
        ("ClusterRoleBinding", "remote-ollama"),
        ("ConfigMap", "remote-ollama-policy"),  # the spend policy (empty: anything goes)
        ("Deployment", "remote-ollama"),
        ("Role", "remote-ollama"),  # the policy and the namespaces' spend meters, in its own namespace
        ("RoleBinding", "remote-ollama"),
        ("ServiceAccount", "remote-ollama"),
        # the operator may write only its children; the proxies only their activity annotations
        ("ValidatingAdmissionPolicy", "remote-ollama-operator-children-only"),
        ("ValidatingAdmissionPolicy", "remote-ollama-proxy-activity-only"),
        ("ValidatingAdmissionPolicy", "remote-ollama-spend-policy"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-operator-children-only"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-proxy-activity-only"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-spend-policy"),
    ]


@pytest.mark.parametrize("install", ["default_install", "full_install"])
def test_every_rendered_object_is_valid_and_labelled(install: str, request: pytest.FixtureRequest) -> None:
    objects, _ = request.getfixturevalue(install)
    for obj in objects:
        validate_k8s(obj)
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in (*STANDARD_LABELS, "helm.sh/chart") if k not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "remote-ollama-0.1.0"


def test_operator_deployment_runs_the_contracted_command(
    default_install: tuple[list[dict[str, Any]], str],
) -> None:
    objects, _ = default_install
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["operator"]
    assert "command" not in container  # the image's ENTRYPOINT is remote-ollama
    assert container["image"] == "ghcr.io/remote-ollama/remote-ollama:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["REMOTE_OLLAMA_PROXY_IMAGE"]["value"] == container["image"]
    assert env["REMOTE_OLLAMA_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "EXOSCALE_API_ENDPOINT" not in env
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    assert ports["metrics"] == 9090 and env["REMOTE_OLLAMA_METRICS_PORT"]["value"] == "9090"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_prices_reach_the_operator_as_json(default_install: tuple[list[dict[str, Any]], str]) -> None:
    objects, _ = default_install
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    prices = json.loads(env["REMOTE_OLLAMA_PRICES"])
    # the chart's default is the product's one price table (remote_ollama/core/cost.py), not a copy of it
    assert prices == {"currency": cost.DEFAULT_CURRENCY, "perHour": cost.DEFAULT_PER_HOUR}


def test_the_spend_policy_is_one_configmap_that_admission_and_the_operator_read(
    default_install: tuple[list[dict[str, Any]], str], full_install: tuple[list[dict[str, Any]], str]
) -> None:
    def env(objects: list[dict[str, Any]]) -> dict[str, Any]:
        (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    for objects, _ in (default_install, full_install):
        (params,) = [o for o in objects if o["kind"] == "ConfigMap"]
        name, namespace = params["metadata"]["name"], params["metadata"]["namespace"]
        assert env(objects)["REMOTE_OLLAMA_POLICY_CONFIGMAP"] == name and "REMOTE_OLLAMA_POLICY" not in env(
            objects
        )
        (binding,) = [
            o
            for o in by_kind(objects, "ValidatingAdmissionPolicyBinding")
            if "spend" in o["metadata"]["name"]
        ]
        assert binding["spec"]["paramRef"] == {
            "name": name,
            "namespace": namespace,
            "parameterNotFoundAction": "Deny",
        }
    assert policy_from_data(one(default_install[0], "ConfigMap")["data"], "p") == Policy()
    policy = policy_from_data(one(full_install[0], "ConfigMap")["data"], "p")  # what the operator reads
    assert policy.instance_types == ("gpua5000.small", "gpu3080ti.*") and policy.zones == ("at-vie-2",)
    assert policy.max_disk_size == 200 and [str(n) for n in policy.source_cidrs] == ["10.0.0.0/8"]
    assert policy.namespace_monthly_spend == 250.5


@pytest.mark.parametrize("install", ["default_install", "full_install"])
def test_operator_runs_locked_down(install: str, request: pytest.FixtureRequest) -> None:
    objects, _ = request.getfixturevalue(install)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not sc.get("privileged")
        assert container["resources"]["limits"]["memory"]
        assert container["resources"]["requests"]["cpu"]


def test_every_optional_feature_renders(full_install: tuple[list[dict[str, Any]], str]) -> None:
    objects, notes = full_install
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "ghcr.io/remote-ollama/remote-ollama:0.1.0-rc1"
    assert env["REMOTE_OLLAMA_PROXY_IMAGE"] == "registry.example.com/remote-ollama-proxy:0.1.0"
    assert env["EXOSCALE_API_ENDPOINT"] == "https://api-ch-gva-2.exoscale.com/v2"
    assert env["LOG_FORMAT"] == "json"
    assert container["args"] == ["operator", "--liveness=http://0.0.0.0:8081/healthz", "--namespace=ai"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["health"] == 8081
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"

    secret = one(objects, "Secret")
    assert secret["metadata"] == secret["metadata"] | {"name": "exoscale-credentials", "namespace": "ai"}
    assert base64.b64decode(secret["data"]["api-key"]).decode() == "EXOtestkey"
    assert base64.b64decode(secret["data"]["api-secret"]).decode() == "s3cret"

    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert one(objects, "PodMonitor")["spec"]["namespaceSelector"] == {"any": True}

    rols = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in by_kind(objects, "RemoteOllama")}
    assert rols == {("ai", "granite"), (NAMESPACE, "always-on")}
    assert "http://granite.ai.svc:11434" in notes


def test_pod_disruption_budget_only_with_several_replicas() -> None:
    for replicas, expected in ((1, 0), (2, 1), (3, 1)):
        objects, _ = render({"replicaCount": replicas})
        pdbs = by_kind(objects, "PodDisruptionBudget")
        assert len(pdbs) == expected, replicas
        if pdbs:
            pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
            assert pdbs[0]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
            assert pdbs[0]["spec"]["minAvailable"] == 1


def test_network_policies_confine_operator_and_proxies(
    full_install: tuple[list[dict[str, Any]], str],
) -> None:
    objects, _ = full_install
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p for p in by_kind(objects, "NetworkPolicy")
    }
    # Proxies: in the listed namespaces and wherever the chart creates a RemoteOllama.
    assert set(policies) == {
        (NAMESPACE, "remote-ollama-operator"),
        ("ai", "remote-ollama-proxies"),
        ("team-a", "remote-ollama-proxies"),
        (NAMESPACE, "remote-ollama-proxies"),
    }
    proxy = policies[("ai", "remote-ollama-proxies")]["spec"]
    assert proxy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "remote-ollama",
        "app.kubernetes.io/component": "proxy",
    }
    assert proxy["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"ollama-client": "true"}}}],
            "ports": [{"port": 11434, "protocol": "TCP"}],
        }
    ]
    egress_ports = {p["port"] for rule in proxy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 443, 6443, 11435}  # DNS, API server, the VMs; not the Exoscale API
    operator = policies[(NAMESPACE, "remote-ollama-operator")]["spec"]
    assert operator["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for p in operator["ingress"][0]["ports"]] == [9090]
    vm_rule = next(r for r in operator["egress"] if r["ports"] == [{"port": 11435, "protocol": "TCP"}])
    assert vm_rule["to"] == [{"ipBlock": {"cidr": "194.182.0.0/16"}}]


def test_network_policy_without_metrics_clients_denies_all_ingress() -> None:
    objects, _ = render({"networkPolicy": {"enabled": True}})
    (policy,) = by_kind(objects, "NetworkPolicy")  # no proxy namespace named: operator only
    assert policy["spec"]["ingress"] == []
    validate_k8s(policy)


def test_notes_tell_what_to_apply_next(default_install: tuple[list[dict[str, Any]], str]) -> None:
    _, notes = default_install
    assert "create secret generic exoscale-credentials" in notes
    assert "kind: RemoteOllama" in notes
    assert "kubectl get rol -A -w" in notes
    assert ".svc:11434" in notes


# --- values.schema.json --------------------------------------------------------------------------

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"replicaCount": 0}, "replicaCount"),
    ({"replicaCount": "two"}, "replicaCount"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"imagePullPolicy": "Always"}, "imagePullPolicy"),  # a typo of image.pullPolicy
    ({"credentials": {"create": True}}, "apiKey"),
    ({"credentials": {"create": True, "apiKey": "key", "apiSecret": "x"}}, "apiKey"),
    ({"prices": {"currency": "EUR", "perHour": {"gpua5000.small": -1}}}, "perHour"),
    ({"prices": {"currency": "EUR", "perHour": {"a5000 small": 1.0}}}, "a5000 small"),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
    ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, "add"),
    ({"networkPolicy": {"vmCIDRs": ["everywhere"]}}, "vmCIDRs"),
    ({"serviceMonitor": {"interval": "soon"}}, "interval"),
    ({"remoteOllamas": [{"name": "granite"}]}, "spec"),
    ({"remoteOllamas": [{"name": "Granite_1", "spec": {"credentialsSecretRef": {"name": "c"}}}]}, "name"),
    ({"exoscale": {"apiEndpoint": "ftp://example.com"}}, "apiEndpoint"),
]


@pytest.mark.parametrize(("values", "key"), BAD_VALUES, ids=[k for _, k in BAD_VALUES])
def test_schema_rejects_bad_values_with_a_readable_message(values: dict[str, Any], key: str) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as excinfo:
            chart.validate_schema(chart.merge_values(values))
        assert key in str(excinfo.value)
        with pytest.raises(helm.HelmError):  # an install with these values fails before anything is applied
            chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def test_schema_accepts_every_documented_feature() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(ALL_FEATURES))
        chart.validate_schema(chart.values)


def test_an_image_left_unset_fails_the_install_early_saying_what_to_do() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as excinfo:
        chart.render(values={}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    message = str(excinfo.value)
    assert "image.repository is not set" in message and "--set image.repository=" in message
