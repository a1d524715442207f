"""Children are touched only when they are provably this resource's: their ownerReferences carry
its uid. A name taken by anything else (a team's own `ollama` Service, another resource's Secret)
is left exactly as it is and reported as a `NameConflict`.
"""

from __future__ import annotations

from typing import Any

from remote_ollama.kube.api import JSON, KubeAPI, KubeError, path_for, segment
from remote_ollama.spec.names import replica_secret_suffix, secret_name, vm_secret_name
from remote_ollama.spec.parse import spec_or_defaults
from remote_ollama.spec.vocabulary import Reason

from . import children

NETWORKING = "networking.k8s.io/v1"
POLICY = "policy/v1"


class NameConflict(KubeError):
    """Ready=False with this reason; the message names the object (kind, namespace/name)."""

    def __init__(self, kind: str, namespace: str, name: str):
        super().__init__(
            409,
            Reason.NAME_CONFLICT,
            f"{kind} {namespace}/{name} already exists and is not owned by this RemoteOllama; "
            "nothing was changed: rename the resource or remove that object",
        )


def owned_by(obj: JSON, uid: str) -> bool:
    refs: list[Any] = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("uid") == uid for r in refs)


def _where(collection: str, body: JSON) -> tuple[str, str, str]:
    meta = body["metadata"]
    return str(body.get("kind", "object")), str(meta.get("namespace", "")), str(meta["name"])


async def check_free(api: KubeAPI, children: list[tuple[str, JSON]], uid: str) -> list[JSON | None]:
    """Raise `NameConflict` for the first child whose name is taken by an object not ours, before
    anything is created (so a conflict leaves no half-made set behind); else what exists of each."""
    found: list[JSON | None] = []
    for collection, body in children:
        existing = await api.get(f"{collection}/{segment(body['metadata']['name'])}")
        if existing is not None and not owned_by(existing, uid):
            raise NameConflict(*_where(collection, body))
        found.append(existing)
    return found


_UNKNOWN: JSON = {}


async def apply_owned(
    api: KubeAPI, collection: str, body: JSON, uid: str, existing: JSON | None = _UNKNOWN
) -> JSON:
    """Create, or merge-patch (drift repair) only an object whose ownerReferences carry `uid`
    (`existing`: what a GET just returned, if the caller has it)."""
    path = f"{collection}/{segment(body['metadata']['name'])}"
    if existing is _UNKNOWN:
        existing = await api.get(path)
    if existing is None:
        try:
            return await api.create(collection, body)
        except KubeError as exc:
            if exc.status != 409:
                raise
            existing = await api.get(path)  # created meanwhile: whose?
    if existing is not None and not owned_by(existing, uid):
        raise NameConflict(*_where(collection, body))
    return await api.merge_patch(path, body)


async def delete_owned(api: KubeAPI, path: str, uid: str) -> bool:
    """Delete only our own object; the uid precondition makes a replaced object safe too."""
    existing = await api.get(path)
    if existing is None or not owned_by(existing, uid):
        return False
    own_uid = (existing.get("metadata") or {}).get("uid")
    try:
        await api.request("DELETE", path, {"preconditions": {"uid": own_uid}} if own_uid else None)
    except KubeError as exc:
        if exc.status in (404, 409):
            return False
        raise
    return True


def _children(raw: JSON, image: str) -> list[tuple[str, JSON]]:
    ns = raw["metadata"]["namespace"]
    rbac = "rbac.authorization.k8s.io/v1"
    out = [
        (path_for("v1", "serviceaccounts", ns), children.proxy_service_account(raw)),
        (path_for(rbac, "roles", ns), children.proxy_role(raw)),
        (path_for(rbac, "rolebindings", ns), children.proxy_role_binding(raw)),
        (path_for("apps/v1", "deployments", ns), children.deployment(raw, image)),
        (path_for("v1", "services", ns), children.service(raw)),
    ]
    policy = children.network_policy(raw)
    if policy is not None:
        out.append((path_for(NETWORKING, "networkpolicies", ns), policy))
    budget = children.disruption_budget(raw)
    if budget is not None:
        out.append((path_for(POLICY, "poddisruptionbudgets", ns), budget))
    return out


async def converge_children(api: KubeAPI, raw: JSON, image: str) -> None:
    """Create or repair every child (all names checked first); drop our NetworkPolicy when disabled."""
    uid = raw["metadata"]["uid"]
    wanted = _children(raw, image)
    found = await check_free(api, wanted, uid)
    for (collection, body), existing in zip(wanted, found, strict=True):
        await apply_owned(api, collection, body, uid, existing)
    ns, name = raw["metadata"]["namespace"], raw["metadata"]["name"]
    if children.network_policy(raw) is None:
        await delete_owned(api, path_for(NETWORKING, "networkpolicies", ns, name), uid)
    if children.disruption_budget(raw) is None:
        await delete_owned(api, path_for(POLICY, "poddisruptionbudgets", ns, f"{name}-proxy"), uid)


async def remove_children(api: KubeAPI, raw: JSON) -> None:
    """On delete: every child that is ours, and nothing that is not (garbage collection would agree)."""
    meta = raw["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    rbac = "rbac.authorization.k8s.io/v1"
    for path in (
        path_for("apps/v1", "deployments", ns, name),
        path_for("v1", "services", ns, name),
        path_for(NETWORKING, "networkpolicies", ns, name),
        path_for(POLICY, "poddisruptionbudgets", ns, f"{name}-proxy"),
        *(
            path_for("v1", "secrets", ns, secret(name) + replica_secret_suffix(i))
            for i in range(spec_or_defaults(raw.get("spec") or {}).replicas.max)
            for secret in (secret_name, vm_secret_name)
        ),
        path_for(rbac, "rolebindings", ns, f"{name}-proxy"),
        path_for(rbac, "roles", ns, f"{name}-proxy"),
        path_for("v1", "serviceaccounts", ns, f"{name}-proxy"),
    ):
        await delete_owned(api, path, uid)
