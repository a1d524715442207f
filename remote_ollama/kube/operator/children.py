"""The objects the operator creates per RemoteOllama, as plain dicts (pure: unit-testable).

All carry an ownerReference to the resource (garbage collected with it) and our labels, so drift
is repaired by re-applying the same shape.
"""

from __future__ import annotations

import base64
from typing import Any

from remote_ollama.spec.names import (
    GROUP,
    KIND,
    PLURAL,
    PROXY_PORT,
    VERSION,
    replica_secret_suffix,
    secret_name,
)
from remote_ollama.spec.parse import spec_or_defaults

JSON = dict[str, Any]
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "remote-ollama-operator"


def owner_reference(body: JSON) -> JSON:
    meta = body["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "remote-ollama",
        "app.kubernetes.io/instance": name,
        COMPONENT_LABEL: "proxy",
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
    }


def _meta(body: JSON, name: str) -> JSON:
    return {
        "name": name,
        "namespace": body["metadata"]["namespace"],
        "labels": labels(body["metadata"]["name"]),
        "ownerReferences": [owner_reference(body)],
    }


def proxy_service_account(body: JSON) -> JSON:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(body, proxy_name(body))}


def proxy_name(body: JSON) -> str:
    return f"{body['metadata']['name']}-proxy"


def proxy_role(body: JSON) -> JSON:
    """The proxy may read and annotate its own RemoteOllama, read its own Secrets (one per replica)
    and its client keys Secret (spec.clientAuth), by name, and keep its load-signal Lease: nothing
    else. RBAC cannot restrict `create` by name, and the pod's name is not known here: the Leases
    it may write are those of its own namespace (kube/signal.py says what the operator trusts)."""
    name = body["metadata"]["name"]
    replicas = spec_or_defaults(body.get("spec") or {}).replicas.max
    secrets = [secret_name(name) + replica_secret_suffix(i) for i in range(replicas)]
    client_keys = (((body.get("spec") or {}).get("clientAuth") or {}).get("secretRef") or {}).get("name")
    if isinstance(client_keys, str) and client_keys and client_keys not in secrets:
        secrets.append(client_keys)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(body, proxy_name(body)),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [PLURAL],
                "resourceNames": [name],
                "verbs": ["get", "watch", "patch"],
            },
            # watch with a fieldSelector on metadata.name is authorised as list+watch on that name
            {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [name], "verbs": ["list"]},
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": secrets,
                "verbs": ["get"],
            },
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["create", "get", "patch"],
            },
        ],
    }


def proxy_role_binding(body: JSON) -> JSON:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(body, proxy_name(body)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": proxy_name(body)},
        "subjects": [
            {"kind": "ServiceAccount", "name": proxy_name(body), "namespace": body["metadata"]["namespace"]}
        ],
    }


def vm_secret(body: JSON, data: dict[str, str], name: str) -> JSON:
    """One of the resource's two Secrets (`secret_name`: the proxy's; `vm_secret_name`: the operator's)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(body, name),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def network_policy(body: JSON) -> JSON | None:
    """Ingress to the proxy pods on 11434 from the resource's own namespace (`podSelector: {}`),
    plus spec.networkPolicy.allowFrom; None when spec.networkPolicy.enabled is false."""
    name = body["metadata"]["name"]
    settings = (body.get("spec") or {}).get("networkPolicy") or {}
    if settings.get("enabled", True) is False:
        return None
    peers = [{"podSelector": {}}, *[p for p in settings.get("allowFrom") or [] if isinstance(p, dict)]]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(body, name),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/instance": name, COMPONENT_LABEL: "proxy"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"port": PROXY_PORT, "protocol": "TCP"}]}],
        },
    }


def proxy_replicas(body: JSON) -> int:
    """Two proxy pods for a replicated endpoint (their Leases carry the load signal, and one may go
    while the other serves); one for `max: 1`, whose in-flight annotation one proxy writes."""
    return 2 if spec_or_defaults(body.get("spec") or {}).replicas.max > 1 else 1


def disruption_budget(body: JSON) -> JSON | None:
    """minAvailable 1 over the proxy pods of a replicated endpoint (None: one proxy, no budget)."""
    if proxy_replicas(body) < 2:
        return None
    name = body["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(body, proxy_name(body)),
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": name, COMPONENT_LABEL: "proxy"}},
        },
    }


def service(body: JSON) -> JSON:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(body, name),
        "spec": {
            "selector": {"app.kubernetes.io/instance": name, COMPONENT_LABEL: "proxy"},
            "ports": [{"name": "ollama", "port": PROXY_PORT, "targetPort": "ollama", "protocol": "TCP"}],
        },
    }


def deployment(body: JSON, image: str, *, image_pull_policy: str = "IfNotPresent") -> JSON:
    """The proxy: `remote-ollama proxy --resource NS/NAME`, non-root, read-only root filesystem."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    spec = body.get("spec") or {}
    parsed = spec_or_defaults(spec)  # the proxy reads the same values from the spec itself
    # The hold settings are set here (in seconds) so that a change rolls the proxy, and drift repair keeps them.
    env = [
        {"name": "REMOTE_OLLAMA_HOLD_TIMEOUT", "value": f"{parsed.wake.hold_timeout:g}"},
        {"name": "REMOTE_OLLAMA_MAX_HELD", "value": str(parsed.wake.max_held_requests)},
        {"name": "REMOTE_OLLAMA_ACTIVITY_INTERVAL", "value": f"{parsed.activity_interval:g}"},
        {"name": "REMOTE_OLLAMA_WAKE_PROGRESS", "value": "1" if parsed.wake.progress else "0"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "ollama"}, "periodSeconds": 10}
    container = {
        "name": "proxy",
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "args": ["proxy", "--resource", f"{namespace}/{name}", "--port", str(PROXY_PORT)],
        "env": env,
        "ports": [{"name": "ollama", "containerPort": PROXY_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "ollama"}, "periodSeconds": 5},
        "livenessProbe": probe,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    selector = {"app.kubernetes.io/instance": name, COMPONENT_LABEL: "proxy"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(body, name),
        "spec": {
            "replicas": proxy_replicas(body),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels(name), **selector}},
                "spec": {
                    "serviceAccountName": proxy_name(body),
                    "automountServiceAccountToken": True,
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                },
            },
        },
    }
