"""The replicas' ClusterKopfPeering, created by the operator itself when it is missing.

`kubectl apply -f manifests/` cannot create a custom object in the same pass as its CRD: kubectl
maps every object to a resource before applying any, and on a fresh cluster the peering CRD is not
served yet ("no matches for kind ClusterKopfPeering"). So no install file holds the object; the
first replica that starts with peering creates it (kopf's keep-alives only patch an existing one).
"""

from __future__ import annotations

import logging

from remote_ollama.kube.api import KubeAPI, KubeError, path_for

PEERING = "remote-ollama"
API_VERSION = "kopf.dev/v1"
log = logging.getLogger("remote_ollama.kube.operator")


async def ensure_peering(api: KubeAPI, name: str = PEERING) -> bool:
    """Create the ClusterKopfPeering `name` unless it exists; True when this call created it."""
    if await api.get(path_for(API_VERSION, "clusterkopfpeerings", name=name)) is not None:
        return False
    body = {
        "apiVersion": API_VERSION,
        "kind": "ClusterKopfPeering",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "remote-ollama"}},
    }
    try:
        await api.create(path_for(API_VERSION, "clusterkopfpeerings"), body)
    except KubeError as exc:
        if exc.status != 409:  # another replica was first
            raise
        return False
    log.info("created the ClusterKopfPeering %s for the replicas", name)
    return True
