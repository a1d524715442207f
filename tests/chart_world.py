"""The Helm chart's test world: the values a user enabling everything would write, rendering by
Helm's own engine, and the checks of rendered objects (Kubernetes' schema, the CRD's, RBAC)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml
from crd_schema import validate_remoteollama

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "remote-ollama"
KUBE_VERSION = "1.34"  # a current release; kubernetes-validate ships its published schemas
RELEASE, NAMESPACE = "remote-ollama", "remote-ollama"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)
# Kinds not in Kubernetes' own schema: checked here by their CRD (ours) or by shape (others').
CUSTOM_KINDS = {"RemoteOllama", "ClusterKopfPeering", "ServiceMonitor", "PodMonitor"}

# The image a user built and pushed (README); the chart has no default it could pull.
REPOSITORY = "ghcr.io/remote-ollama/remote-ollama"
# Every optional feature on, as a user enabling everything would write it.
ALL_FEATURES: dict[str, Any] = {
    "replicaCount": 2,
    "image": {"repository": REPOSITORY, "tag": "0.1.0-rc1"},
    "proxyImage": "registry.example.com/remote-ollama-proxy:0.1.0",
    "imagePullSecrets": [{"name": "regcred"}],
    "serviceAccount": {"annotations": {"example.com/owner": "platform"}},
    "exoscale": {"apiEndpoint": "https://api-ch-gva-2.exoscale.com/v2"},
    "credentials": {"create": True, "namespace": "ai", "apiKey": "EXOtestkey", "apiSecret": "s3cret"},
    "operator": {
        "extraArgs": ["--namespace=ai"],
        "healthPort": 8081,
        "extraEnv": [{"name": "LOG_FORMAT", "value": "json"}],
    },
    "policy": {
        "instanceTypes": ["gpua5000.small", "gpu3080ti.*"],
        "zones": ["at-vie-2"],
        "maxDiskSize": 200,
        "allowedSourceCIDRs": ["10.0.0.0/8"],
        "namespaceMonthlySpend": 250.5,
    },
    "podLabels": {"team": "ml"},
    "podAnnotations": {"example.com/note": "hi"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
                    },
                }
            ]
        }
    },
    "priorityClassName": "system-cluster-critical",
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {
        "enabled": True,
        "proxyNamespaces": ["team-a"],
        "proxyClients": [{"namespaceSelector": {"matchLabels": {"ollama-client": "true"}}}],
        "metricsClients": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "apiServerCIDRs": ["10.96.0.1/32", "172.18.0.0/16"],
        "vmCIDRs": ["194.182.0.0/16"],
    },
    "remoteOllamas": [
        {
            "name": "granite",
            "namespace": "ai",
            "spec": {
                "credentialsSecretRef": {"name": "exoscale-credentials"},
                "instanceType": "gpua5000.small",
                "models": ["granite3.1-dense:8b"],
                "idle": {"stopAfter": "30m", "destroyAfter": "24h"},
            },
        },
        {
            "name": "always-on",
            "spec": {"credentialsSecretRef": {"name": "exoscale-credentials"}, "idle": {}},
        },
    ],
}


def render(values: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str]:
    """(objects, NOTES.txt) of an install of the chart with `values` (and the image's repository)."""
    values = {"image": {"repository": REPOSITORY}, **(values or {})}
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    notes = ""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects, notes


def validate_k8s(obj: dict[str, Any]) -> None:
    """Raise unless `obj` is valid for the API server (built-in kinds) or its CRD (ours)."""
    kind = obj["kind"]
    if kind == "RemoteOllama":
        validate_remoteollama(obj)
    elif kind == "ClusterKopfPeering":
        assert obj["apiVersion"] == "kopf.dev/v1"
        assert set(obj) <= {"apiVersion", "kind", "metadata", "status"}, obj
    elif kind in ("ServiceMonitor", "PodMonitor"):
        check_prometheus_monitor(obj)
    else:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def check_prometheus_monitor(obj: dict[str, Any]) -> None:
    """The Prometheus Operator's schema is not available offline: check the fields we rely on."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    spec = obj["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "podMetricsEndpoints"}, spec
    assert spec["selector"]["matchLabels"], "an empty selector would scrape everything"
    endpoints = spec.get("endpoints") or spec["podMetricsEndpoints"]
    for endpoint in endpoints:
        assert set(endpoint) <= {"port", "targetPort", "path", "interval"}, endpoint
        assert endpoint["path"] == "/metrics"
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint["interval"])


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(objects, kind)
    return found


def rules_of(objects: list[dict[str, Any]]) -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    """(apiGroup, resource, verb, resourceNames) for every grant of the ClusterRole."""
    for rule in one(objects, "ClusterRole")["rules"]:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule["verbs"]:
                    yield group, resource, verb, tuple(rule.get("resourceNames", ()))


def rbac_allows(
    objects: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None
) -> bool:
    """Whether the rendered ClusterRole lets the operator do `verb` on `group/resource` (named `name`)."""
    return any(
        (g, r, v) == (group, resource, verb) and (not names or name in names)
        for g, r, v, names in rules_of(objects)
    )
