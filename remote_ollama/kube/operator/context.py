"""Process-wide operator state: the API client, the cluster id, one context per resource, orphans.

Orphan clean-up (orphans.py) deletes only what this cluster's resources left whose owner uid no
longer exists, after a grace period: clusters and standalone users may share one Exoscale account.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kopf

from remote_ollama import __version__
from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.cloud.port import Cloud
from remote_ollama.core.replicas import ScaleMemory
from remote_ollama.engine.credentials import CredentialStore
from remote_ollama.engine.metrics import LifecycleMetrics, ReplicaMetrics
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.engine.target import Target, instance_name
from remote_ollama.kube.api import KubeAPI, KubeError, path_for
from remote_ollama.kube.operator.events import event
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import (
    GROUP,
    PLURAL,
    VERSION,
    legacy_security_group_name,
    replica_secret_suffix,
    secret_name,
    security_group_name,
    vm_secret_name,
)
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import Reason
from remote_ollama.vm.pki import KEY_KEY, VMCredentials

from . import children
from .freshest import Freshest
from .orphans import OrphanSweep
from .ownership import NameConflict, apply_owned, owned_by

log = logging.getLogger("remote_ollama.kube.operator")


ORPHAN_GRACE = 600.0  # seconds an unowned instance must stay unowned before it is deleted
ORPHAN_EVERY = 600.0


class SecretStore:
    """The resource's two Secrets, owned by it: `<name>-remote-ollama-vm`, the operator's (every VM
    credential, the server key of a VM made before enrolment, and the record of its instance), and
    `<name>-remote-ollama`, the proxy's (the CA, the client certificate and key, the VM's pinned
    certificate, the API key: what the proxy uses). A Secret from before the split (everything in
    `<name>-remote-ollama`) is read until the next write. The map under a `CredentialStore`."""

    def __init__(self, api: KubeAPI, body: dict[str, Any], replica: int = 0):
        self.api = api
        self.body = body
        meta = body["metadata"]
        self.namespace, self.uid = meta["namespace"], meta["uid"]
        suffix = replica_secret_suffix(replica)  # replica i > 0 of a replicated endpoint: its own pair
        self.own, self.proxy = vm_secret_name(meta["name"]) + suffix, secret_name(meta["name"]) + suffix
        self._cached: dict[str, str] | None = None

    async def _read(self, name: str) -> dict[str, str] | None:
        secret = await self.api.get(path_for("v1", "secrets", self.namespace, name))
        if secret is None:
            return None
        if not owned_by(secret, self.uid):  # never trust another's keys
            raise NameConflict("Secret", self.namespace, name)
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    async def read(self) -> dict[str, str] | None:
        if self._cached is None:
            data = await self._read(self.own)
            if data is None:  # before the split, the proxy's Secret held everything
                legacy = await self._read(self.proxy)
                data = legacy if legacy and legacy.get(KEY_KEY) else None
            self._cached = data
        return self._cached

    async def write(self, data: dict[str, str]) -> None:
        await self._apply(self.own, data)
        await self._apply(self.proxy, VMCredentials.from_secret_data(data).proxy_data())
        self._cached = data

    async def _apply(self, name: str, data: dict[str, str]) -> None:
        collection = path_for("v1", "secrets", self.namespace)
        body = children.vm_secret(self.body, data, name)
        existing = await self.api.get(path_for("v1", "secrets", self.namespace, name))
        # a merge patch keeps keys it does not name: those we no longer write are removed by name
        body["data"].update({k: None for k in (existing or {}).get("data") or {} if k not in data})
        await apply_owned(self.api, collection, body, self.uid, existing)


def credential_store(body: dict[str, Any], replica: int = 0) -> CredentialStore:
    """Replica `replica`'s credentials and instance record (0: the one VM's), in its Secret pair."""
    return CredentialStore(SecretStore(OPERATOR.api, body, replica))


# Closings of replaced reconcilers still running (a task needs a reference until it ends).
_closing: set[asyncio.Future[None]] = set()


def retire(reconciler: Reconciler) -> None:
    """Close a replaced reconciler's VM session in the background."""
    retired = asyncio.ensure_future(reconciler.close())
    _closing.add(retired)
    retired.add_done_callback(_closing.discard)


@dataclass
class ResourceContext:
    uid: str
    namespace: str
    name: str
    body: dict[str, Any]
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    seen: tuple[Any, ...] | None = None
    children_at: float = -1e9
    children_generation: Any = None
    access_generation: Any = None  # the generation whose allowedSourceCIDRs the security group has
    blocked_rounds: int = 0
    warned_annotations: set[str] = field(default_factory=set)
    warned_placements: set[str] = field(default_factory=set)  # recorded_placement.py: once each
    moves_waiting: dict[int, float] = field(default_factory=dict)  # dropped_zone.py: loop time, per replica
    # a replicated endpoint (replica_set.py): one reconciler per replica index (in its zone), the
    # scaler's memory (and whether it was read back from status.scaler yet), and the proxies' Lease
    # counts last seen (a renewal that changes nothing does not kick)
    members: dict[int, Reconciler] = field(default_factory=dict)
    scale_memory: ScaleMemory = field(default_factory=ScaleMemory)
    scale_restored: bool = False
    # replica indices whose VM the cloud and the replica's own Secret say exists (found_replicas.py),
    # and the (generation, cloud) they were last looked for with
    replicas_found: set[int] = field(default_factory=set)
    replicas_scanned: tuple[Any, int] | None = None
    signal_seen: dict[str, Any] = field(default_factory=dict)
    member_failures: dict[int, tuple[int, float]] = field(default_factory=dict)  # failures, retry at
    member_errors: dict[int, str] = field(default_factory=dict)  # the last one said (one Event each)
    # a refusal retrying cannot fix (a quota), per replica, with the wake-requested value of the
    # round that met it: a newer wake request has it asked again before its backoff ends
    member_refused: dict[int, tuple[CloudError, str | None]] = field(default_factory=dict)
    fresh: Freshest = field(default_factory=Freshest)  # our last status patch, until the watch has it
    # the wake-requested value the current round began with: every status patch answers it
    # (status.wakeRequestAnswered), so a proxy knows its wake request was looked at
    wake_answered: str | None = None
    _reconciler: Reconciler | None = None
    _cloud: Cloud | None = None

    @property
    def status_path(self) -> str:
        return path_for(f"{GROUP}/{VERSION}", PLURAL, self.namespace, self.name, "status")

    async def patch_status(self, patch: dict[str, Any]) -> None:
        if self.wake_answered is not None:
            patch = {**patch, "wakeRequestAnswered": self.wake_answered}
        self.fresh.wrote(await OPERATOR.api.merge_patch(self.status_path, {"status": patch}))

    async def cloud_in(self, spec: Spec, zone: str) -> Cloud | None:
        """The client for this resource's credentials in another zone (a spec.placements zone
        whose model volume goes with the resource); None when the credentials are unreadable."""
        return (await self.cloud_for(spec, zone))[1]

    async def cloud_for(self, spec: Spec, zone: str | None = None) -> tuple[str | None, Cloud | None]:
        """The cloud client for this resource's credentials, or the reason there is none."""
        try:
            path = path_for("v1", "secrets", self.namespace, spec.credentials_secret)
        except ValueError:
            return f"credentials Secret name {spec.credentials_secret!r} is not a valid name", None
        secret = await OPERATOR.api.get(path)
        if secret is None:
            return f"credentials Secret {spec.credentials_secret!r} not found in {self.namespace}", None
        data = secret.get("data") or {}
        missing = [k for k in ("api-key", "api-secret") if not data.get(k)]
        if missing:
            return f"credentials Secret {spec.credentials_secret!r} has no {' or '.join(missing)}", None
        key = base64.b64decode(data["api-key"]).decode().strip()
        secret_value = base64.b64decode(data["api-secret"]).decode().strip()
        return None, OPERATOR.cloud(key, secret_value, zone or spec.zone)

    def reconciler(self, cloud: Cloud) -> Reconciler:
        if self._reconciler is None or self._cloud is not cloud:
            if self._reconciler is not None:  # other credentials: the old one's session is closed
                retire(self._reconciler)
            self._cloud = cloud
            target = Target(
                owner_uid=self.uid,
                cluster=OPERATOR.cluster_id,
                name=instance_name(self.namespace, self.name),
                security_group=security_group_name(OPERATOR.cluster_id, self.uid),
                legacy_security_group=legacy_security_group_name(self.namespace, self.name),
                mark_group=True,
            )
            self._reconciler = Reconciler(cloud, target, credential_store(self.body))
        return self._reconciler

    async def close(self) -> None:
        if self._reconciler is not None:
            await self._reconciler.close()
            self._reconciler = None
        for member in self.members.values():
            await member.close()
        self.members.clear()

    def had_instance(self, body: dict[str, Any]) -> bool:
        return bool(((body.get("status") or {}).get("lifecycle") or {}).get("instance_id"))


class Operator:
    def __init__(self) -> None:
        self._api: KubeAPI | None = None
        self.proxy_image = os.environ.get("REMOTE_OLLAMA_PROXY_IMAGE", f"remote-ollama:{__version__}")
        self.endpoint = os.environ.get("EXOSCALE_API_ENDPOINT") or None
        self.cluster_id = os.environ.get("REMOTE_OLLAMA_CLUSTER_ID", "")
        self.contexts: dict[str, ResourceContext] = {}
        self._clouds: dict[tuple[str, str, str], AsyncExoscaleCloud] = {}
        self.orphans = OrphanSweep(self.cluster_id, ORPHAN_GRACE)
        self._last_sweep: dict[tuple[str, str], float] = {}
        # every account and zone seen, with a resource to report on: swept even when no round runs
        self._sweep_targets: dict[tuple[str, str], tuple[Cloud, kopf.Body]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.metrics = LifecycleMetrics()
        # remote_ollama_replicas{namespace,name,state}, remote_ollama_desired_replicas (max > 1)
        self.replica_metrics = ReplicaMetrics(self.metrics.registry, per=("namespace", "name"))
        # what "now" is for the lifecycle and cost (tests replace it to simulate days and months)
        self.clock: Callable[[], datetime] = utcnow
        self.cloud_options: dict[str, Any] = {}
        self.orphan_grace = float(os.environ.get("REMOTE_OLLAMA_ORPHAN_GRACE", ORPHAN_GRACE))
        self.orphan_every = float(os.environ.get("REMOTE_OLLAMA_ORPHAN_INTERVAL", ORPHAN_EVERY))

    @property
    def api(self) -> KubeAPI:
        if self._api is None:
            self._api = KubeAPI.from_environment()
        return self._api

    async def start(self) -> None:
        """Fresh per-run state (kopf may run several times in one process, e.g. in tests)."""
        self._api = None
        self.contexts.clear()
        self._clouds.clear()
        self.orphans.seen.clear()
        self._last_sweep.clear()
        self._sweep_targets.clear()
        self.proxy_image = os.environ.get("REMOTE_OLLAMA_PROXY_IMAGE", self.proxy_image)
        self.endpoint = os.environ.get("EXOSCALE_API_ENDPOINT") or None
        self.cluster_id = os.environ.get("REMOTE_OLLAMA_CLUSTER_ID", "")
        self.orphan_grace = float(os.environ.get("REMOTE_OLLAMA_ORPHAN_GRACE", ORPHAN_GRACE))
        self.orphan_every = float(os.environ.get("REMOTE_OLLAMA_ORPHAN_INTERVAL", ORPHAN_EVERY))
        if not self.cluster_id:
            ns = await self.api.get(path_for("v1", "namespaces", name="kube-system"))
            if ns is None or not ns.get("metadata", {}).get("uid"):
                raise kopf.PermanentError("cannot read the kube-system namespace uid (the cluster id)")
            self.cluster_id = ns["metadata"]["uid"]
        log.info("remote-ollama operator %s, cluster id %s", __version__, self.cluster_id)

    async def _sweep_forever(self) -> None:
        """Orphans are found on their own clock: resources at rest may not reconcile for minutes."""
        while True:
            await asyncio.sleep(max(0.5, min(self.orphan_every, self.orphan_grace or self.orphan_every)))
            for cloud, body in list(self._sweep_targets.values()):
                try:
                    await self.maybe_sweep_orphans(cloud, body)
                except (CloudError, KubeError, OSError) as exc:
                    log.warning("orphan sweep in %s: %s", cloud.zone, exc)
                except Exception:
                    log.exception("orphan sweep in %s", cloud.zone)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for ctx in self.contexts.values():
            await ctx.close()
        if self._api is not None:
            await self._api.close()
            self._api = None

    def context(self, body: kopf.Body) -> ResourceContext:
        uid = body.metadata.uid
        ctx = self.contexts.get(uid)
        if ctx is None:
            ctx = self.contexts[uid] = ResourceContext(
                uid,
                str(body.metadata.namespace),
                str(body.metadata.name),
                {
                    "apiVersion": body.get("apiVersion"),
                    "kind": body.get("kind"),
                    "metadata": {
                        "name": body.metadata.name,
                        "namespace": body.metadata.namespace,
                        "uid": uid,
                    },
                },
            )
        return ctx

    def kick_namespace(self, namespace: str) -> None:
        """A round now for every resource of `namespace` (its spend cap was just reached)."""
        for ctx in self.contexts.values():
            if ctx.namespace == namespace:
                ctx.kick.set()

    async def forget(self, uid: str) -> None:
        """The resource is gone: drop its context and close its VM client's HTTP session."""
        ctx = self.contexts.pop(uid, None)
        if ctx is not None:
            self.replica_metrics.forget(ctx.namespace, ctx.name)
            await ctx.close()

    def cloud(self, key: str, secret: str, zone: str) -> AsyncExoscaleCloud:
        ident = (key, zone, str(hash(secret)))
        if ident not in self._clouds:
            self._clouds[ident] = AsyncExoscaleCloud.connect(
                key, secret, zone, endpoint=self.endpoint, **self.cloud_options
            )
        return self._clouds[ident]

    async def maybe_sweep_orphans(self, cloud: Cloud, body: kopf.Body) -> None:
        """At most every ORPHAN_EVERY per account and zone: delete what our cluster's deleted
        resources left (orphans.py)."""
        loop = asyncio.get_running_loop()
        key = (str(id(cloud)), cloud.zone)
        self._sweep_targets[key] = (cloud, body)
        if self._sweeper is None or self._sweeper.done():
            # started from a handler, so the task inherits kopf's context (events can be posted)
            self._sweeper = asyncio.create_task(self._sweep_forever())
        if loop.time() - self._last_sweep.get(key, -1e9) < self.orphan_every:
            return
        self._last_sweep[key] = loop.time()
        self.orphans.cluster_id, self.orphans.grace = self.cluster_id, self.orphan_grace
        await self.orphans.sweep(
            cloud, self._owners, lambda message: event(body, Reason.ORPHAN_DELETED, message), loop.time()
        )

    async def _owners(self) -> set[str] | None:
        """The uids of every RemoteOllama of the cluster (None: unreadable)."""
        try:
            listing = await self.api.request("GET", path_for(f"{GROUP}/{VERSION}", PLURAL))
        except KubeError:
            return None
        return {str((i.get("metadata") or {}).get("uid")) for i in listing.get("items", [])}


OPERATOR = Operator()
