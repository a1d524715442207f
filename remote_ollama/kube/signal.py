"""The load signal of a replicated endpoint: one coordination.k8s.io Lease per proxy pod (issue 19).

Each proxy pod keeps `<resource>-proxy-<pod>` renewed every RENEW seconds (and at once when a
request is held) with its requests in flight per replica and its held requests; the operator sums
the Leases of the resource that are still live. A dead proxy's count expires with its Lease
(renewTime + leaseDurationSeconds), so no accounting is left behind by a crash.

Why a Lease and not annotations on the resource: two proxies writing one object conflict, and each
write would wake every handler of the resource; why not the proxies' /metrics: the operator would
need network reach into every tenant namespace. What is trusted: the operator reads only Leases in
the resource's own namespace carrying its instance label, named `<resource>-proxy-…`, not expired,
with counts capped. RBAC cannot restrict `create` by name, so any proxy of the namespace could
write a neighbour's Lease: the worst it does is scale that neighbour up to the `spec.replicas.max`
and budget the neighbour set, within one namespace (one tenant); no Lease of another namespace is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from remote_ollama.proxy.runloop import wait_at_most
from remote_ollama.spec.names import (
    ANN_SIGNAL_HELD,
    ANN_SIGNAL_IN_FLIGHT,
    ANN_SIGNAL_LAST_ACTIVITY,
    SIGNAL_COMPONENT,
    signal_lease_name,
)
from remote_ollama.spec.schedule import utcnow

from .api import JSON, KubeAPI, KubeError, path_for
from .operator.children import COMPONENT_LABEL, labels
from .operator.status import parse_time

log = logging.getLogger("remote_ollama.proxy")

LEASES = "coordination.k8s.io/v1"
RENEW = 2.0  # seconds between renewals of a proxy's Lease
DURATION = 10  # leaseDurationSeconds: a proxy silent this long no longer counts
FORGET_AFTER = 600.0  # seconds after its last renewal a dead proxy's Lease is deleted
MIN_GAP = 0.1  # a change is written at once, but at most this often
MAX_COUNT = 100_000  # a count above this is not believed (capped)
MAX_REPLICAS = 64  # indices at or above are ignored (the CRD's bound)


@dataclass(frozen=True)
class Signal:
    """The load across the live proxies: requests in flight per replica, held, last use per replica."""

    in_flight: dict[int, int] = field(default_factory=dict)
    held: int = 0
    last_activity: dict[int, datetime] = field(default_factory=dict)
    proxies: int = 0


def lease_owner(body: JSON) -> JSON:
    """The resource as the Lease's owner (garbage collected with it): not a controller reference and
    without blockOwnerDeletion, which would need the proxy to be allowed to set the resource's finalizers."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }


def signal_labels(resource: str) -> dict[str, str]:
    return {**labels(resource), COMPONENT_LABEL: SIGNAL_COMPONENT}


def selector(resource: str) -> str:
    return ",".join(f"{k}={v}" for k, v in signal_labels(resource).items())


def micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _count(raw: Any) -> int:
    return min(raw, MAX_COUNT) if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else 0


def _index_map(raw: Any) -> dict[int, Any]:
    """{"<index>": value} from an annotation's JSON; anything malformed is nothing."""
    try:
        doc = json.loads(raw) if isinstance(raw, str) and len(raw) <= 16_384 else {}
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {int(k): v for k, v in doc.items() if isinstance(k, str) and k.isdigit() and int(k) < MAX_REPLICAS}


def signal_from(leases: Iterable[JSON], resource: str, now: datetime) -> Signal:
    """Sum the live Leases of `resource` (pure)."""
    in_flight: dict[int, int] = {}
    last: dict[int, datetime] = {}
    held = proxies = 0
    for lease in leases:
        meta = lease.get("metadata") or {}
        spec = lease.get("spec") or {}
        if not str(meta.get("name", "")).startswith(f"{resource}-proxy-"):
            continue
        if any((meta.get("labels") or {}).get(k) != v for k, v in signal_labels(resource).items()):
            continue
        renewed = parse_time(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds")
        if renewed is None or not isinstance(duration, int) or duration <= 0:
            continue
        if renewed + timedelta(seconds=min(duration, 300)) < now:
            continue  # its proxy is gone: its requests died with it
        ann = meta.get("annotations") or {}
        proxies += 1
        for index, n in _index_map(ann.get(ANN_SIGNAL_IN_FLIGHT)).items():
            in_flight[index] = min(MAX_COUNT, in_flight.get(index, 0) + _count(n))
        raw_held = str(ann.get(ANN_SIGNAL_HELD, ""))[:9]
        held = min(MAX_COUNT, held + (_count(int(raw_held)) if raw_held.isdigit() else 0))
        for index, stamp in _index_map(ann.get(ANN_SIGNAL_LAST_ACTIVITY)).items():
            at = parse_time(stamp)
            if (
                at is not None
                and at <= now + timedelta(seconds=60)
                and (index not in last or at > last[index])
            ):
                last[index] = min(at, now)
    return Signal({i: n for i, n in in_flight.items() if n}, held, last, proxies)


async def read_signal(api: KubeAPI, namespace: str, resource: str, now: datetime) -> Signal:
    """The operator's read: the resource's Leases in its namespace, by label. Leases of proxy pods
    gone for FORGET_AFTER are deleted (each pod ever run would leave one behind)."""
    listing = await api.request(
        "GET", path_for(LEASES, "leases", namespace), query={"labelSelector": selector(resource)}
    )
    items = listing.get("items") or []
    for lease in items:
        renewed = parse_time((lease.get("spec") or {}).get("renewTime"))
        meta = lease.get("metadata") or {}
        if renewed is not None and (now - renewed).total_seconds() > FORGET_AFTER:
            body = {"preconditions": {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}}
            with contextlib.suppress(KubeError):  # renewed or deleted meanwhile: kept, or gone already
                await api.request(
                    "DELETE", path_for(LEASES, "leases", namespace, str(meta.get("name"))), body
                )
    return signal_from(items, resource, now)


Counts = Callable[[], tuple[Mapping[int, int], int]]  # (in flight per replica index, held)


class LeaseWriter:
    """The proxy's side: keeps its Lease renewed with what `counts` says; `kick()` writes now."""

    def __init__(self, api: KubeAPI, namespace: str, resource: str, pod: str, counts: Counts) -> None:
        self.api, self.namespace, self.resource, self.pod = api, namespace, resource, pod
        self.counts = counts
        self.name = signal_lease_name(resource, pod)
        self.path = path_for(LEASES, "leases", namespace, self.name)
        self.last_activity: dict[int, datetime] = {}
        self.owner: JSON | None = None  # the pod, when known: the Lease goes with it
        self._kick = asyncio.Event()
        self._exists = False

    def kick(self) -> None:
        self._kick.set()

    def body(self, now: datetime) -> JSON:
        in_flight, held = self.counts()
        for index, n in in_flight.items():
            if n:
                self.last_activity[index] = now
        meta: JSON = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": signal_labels(self.resource),
            "annotations": {
                ANN_SIGNAL_IN_FLIGHT: json.dumps({str(i): n for i, n in sorted(in_flight.items()) if n}),
                ANN_SIGNAL_HELD: str(max(0, held)),
                ANN_SIGNAL_LAST_ACTIVITY: json.dumps(
                    {str(i): micro_time(at) for i, at in sorted(self.last_activity.items())}
                ),
            },
        }
        if self.owner is not None:
            meta["ownerReferences"] = [self.owner]
        spec = {
            "holderIdentity": self.pod,
            "leaseDurationSeconds": DURATION,
            "renewTime": micro_time(now),
        }
        return {"apiVersion": LEASES, "kind": "Lease", "metadata": meta, "spec": spec}

    async def write(self, now: datetime) -> None:
        body = self.body(now)
        if self._exists:
            try:
                await self.api.merge_patch(self.path, body)
                return
            except KubeError as exc:
                if exc.status != 404:
                    raise
        try:
            await self.api.create(path_for(LEASES, "leases", self.namespace), body)
        except KubeError as exc:
            if exc.status != 409:
                raise
            await self.api.merge_patch(self.path, body)
        self._exists = True

    async def run(self, active: Callable[[], bool], clock: Callable[[], datetime] = utcnow) -> None:
        """Renew while `active()` (a replicated endpoint); a `max: 1` resource's proxy writes none."""
        while True:
            self._kick.clear()
            try:
                if active():
                    await self.write(clock())
            except (KubeError, OSError, TimeoutError) as exc:
                log.warning("writing the load signal Lease %s: %s", self.name, exc)
            await asyncio.sleep(MIN_GAP)
            await wait_at_most(self._kick.wait(), RENEW - MIN_GAP)
