"""The operator-mode proxy follows each replica of a replicated endpoint (issue 19): from
status.replicas, every Ready one with an https endpoint and its own Secret's pinned certificate
(`<name>-remote-ollama[-<index>]`, which the proxy's Role names) becomes an upstream."""

from __future__ import annotations

import base64
import logging

from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.proxy.replicated import ReplicaResolver
from remote_ollama.spec.names import VM_TLS_SERVER_NAME, replica_secret_suffix, secret_name
from remote_ollama.spec.vocabulary import Phase
from remote_ollama.vm.pki import VMCredentials

from .api import JSON, KubeAPI, KubeError, path_for

log = logging.getLogger("remote_ollama.proxy")


async def pinned_credentials(api: KubeAPI, namespace: str, name: str) -> VMCredentials | None:
    """The proxy's half of a VM's credentials from Secret `name`, once the operator pinned the VM's
    certificate (None before: the VM is not to be trusted yet)."""
    secret = await api.get(path_for("v1", "secrets", namespace, name))
    if secret is None:
        return None
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    try:
        creds = VMCredentials.from_secret_data(data, proxy=True)
    except KeyError:
        return None
    return creds if creds.pinned else None


class MemberFollower:
    def __init__(self, api: KubeAPI, namespace: str, name: str, resolver: ReplicaResolver) -> None:
        self.api, self.namespace, self.name, self.resolver = api, namespace, name, resolver
        # per index: the (endpoint, credentials) an upstream was built for, and the upstream (the
        # same SSLContext while they stay: the proxy keys its connection pool on it)
        self._built: dict[int, tuple[tuple[str, VMCredentials], Upstream]] = {}

    async def upstream(self, index: int, endpoint: str) -> Upstream | None:
        """Replica `index`'s VM with its pinned certificate; None until the operator pinned it."""
        name = secret_name(self.name) + replica_secret_suffix(index)
        try:
            creds = await pinned_credentials(self.api, self.namespace, name)
        except (KubeError, OSError) as exc:
            log.warning("reading replica %d's Secret: %s", index, exc)
            built = self._built.get(index)
            return built[1] if built and built[0][0] == endpoint else None
        if creds is None:
            return None
        key = (endpoint, creds)
        built = self._built.get(index)
        if built is None or built[0] != key:
            built = (key, Upstream(endpoint, creds.client_context(), creds.api_key, VM_TLS_SERVER_NAME))
            self._built[index] = built
        return built[1]

    async def apply(self, status: JSON) -> None:
        """The Ready replicas from status; with none Ready the resource's phase says why (held)."""
        ready: dict[int, Upstream] = {}
        for item in status.get("replicas") or []:
            if not isinstance(item, dict) or not isinstance(item.get("index"), int):
                continue
            endpoint = str(item.get("endpoint") or "")
            if item.get("phase") != Phase.READY or not endpoint.startswith("https://"):
                continue  # the VM credential never goes over plain HTTP
            upstream = await self.upstream(item["index"], endpoint)
            if upstream is not None:
                ready[item["index"]] = upstream
        desired = status.get("desiredReplicas")
        self.resolver.set_members(ready, desired if isinstance(desired, int) else len(ready))
        if not ready:
            exists = any(isinstance(i, dict) and i.get("instanceID") for i in status.get("replicas") or [])
            phase = str(status.get("phase") or "Pending")
            self.resolver.base.set_down(
                Phase.STARTING if phase == Phase.READY else phase,
                instance=exists,
                detail=str(status.get("message") or "")[:300],
            )


def replica_counts(resolver: ReplicaResolver) -> tuple[dict[int, int], int]:
    """What the proxy's Lease carries: in flight per replica, held."""
    return resolver.in_flight(), resolver.waiting
