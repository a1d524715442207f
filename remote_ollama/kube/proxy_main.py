"""`remote-ollama proxy --resource NS/NAME`: the per-resource proxy in operator mode.

Its `ActivitySink` writes the resource's annotations; its resolver follows the resource's status
(phase, endpoint) through a watch and reads the VM's CA and key from the per-resource Secret,
which its Role lets it read by name only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from remote_ollama.core.backoff import UNREACHABLE_GRACE
from remote_ollama.engine.status_doc import status_document
from remote_ollama.proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import Refusal, Upstream, proxy_settings
from remote_ollama.proxy.local import LocalResolver
from remote_ollama.proxy.polling import PollingCache
from remote_ollama.proxy.replicated import ReplicaResolver
from remote_ollama.proxy.routing import Router
from remote_ollama.spec.names import (
    ANN_IN_FLIGHT,
    ANN_LAST_ACTIVITY,
    ANN_WAKE_REQUESTED,
    GROUP,
    PLURAL,
    VERSION,
    VM_TLS_SERVER_NAME,
    secret_name,
)
from remote_ollama.spec.parse import spec_or_defaults
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import ConditionType, Phase, Reason
from remote_ollama.vm.ollama_release import version_of
from remote_ollama.vm.pki import VMCredentials

from .access import AccessFollower, client_secret_name
from .api import JSON, KubeAPI, KubeError, path_for
from .member_follower import MemberFollower, pinned_credentials, replica_counts
from .signal import LeaseWriter, lease_owner
from .wake_answer import WakeAnswer

log = logging.getLogger("remote_ollama.proxy")


class AnnotationSink:
    """Activity and wake requests as annotations on the RemoteOllama (the operator reacts to them)."""

    def __init__(self, api: KubeAPI, path: str):
        self.api, self.path = api, path

    async def _annotate(self, annotations: dict[str, str]) -> None:
        try:
            await self.api.merge_patch(self.path, {"metadata": {"annotations": annotations}})
        except (KubeError, OSError) as exc:
            log.warning("could not write %s: %s", ", ".join(annotations), exc)

    async def touch(self, at: datetime, in_flight: int = 0) -> None:
        await self._annotate({ANN_LAST_ACTIVITY: _stamp(at), ANN_IN_FLIGHT: str(in_flight)})

    async def request_wake(self, at: datetime) -> None:
        await self._annotate({ANN_WAKE_REQUESTED: _stamp(at)})


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ResourceFollower:
    """Keeps a `LocalResolver` in step with the resource's status and the VM's credentials."""

    def __init__(
        self,
        api: KubeAPI,
        namespace: str,
        name: str,
        resolver: LocalResolver,
        on_spec: Callable[[JSON], None] | None = None,
        cache: PollingCache | None = None,
    ):
        self.api, self.namespace, self.name, self.resolver = api, namespace, name, resolver
        self.on_spec = on_spec
        self.cache = cache
        self.collection = path_for(f"{GROUP}/{VERSION}", PLURAL, namespace)
        self.path = path_for(f"{GROUP}/{VERSION}", PLURAL, namespace, name)
        self._creds_key: tuple[str, VMCredentials] | None = None
        self._upstream: Upstream | None = None
        self.body: JSON | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self._reapply: set[asyncio.Future[None]] = set()  # strong references to the re-applies
        self.spec = spec_or_defaults(None)  # the body's spec, parsed by the one settings model
        self.members: MemberFollower | None = None  # a replicated endpoint's replicas (spec.replicas.max > 1)
        self.answer = WakeAnswer()  # this proxy's newest wake request, until the operator answers it
        self._answer_timer: asyncio.TimerHandle | None = None

    def retiring(self) -> bool:
        """The status lists a replica at or above spec.replicas.max: the operator retires it once
        nothing is in flight to it, which this proxy's Lease says."""
        items = ((self.body or {}).get("status") or {}).get("replicas") or []
        top = self.spec.replicas.max
        return any(
            isinstance(i, dict) and isinstance(i.get("index"), int) and i["index"] >= top for i in items
        )

    async def _upstream_for(self, endpoint: str) -> Upstream | None:
        """The VM's endpoint with the per-resource Secret's pinned VM certificate and client certificate (mutual TLS),
        plus the optional API key; rebuilt only when the endpoint or the Secret changes."""
        creds = await pinned_credentials(self.api, self.namespace, secret_name(self.name))
        if creds is None:  # the operator pins the VM's certificate before it says Ready
            return None
        key = (endpoint, creds)
        if self._upstream is None or self._creds_key != key:
            self._creds_key = key
            self._upstream = Upstream(endpoint, creds.client_context(), creds.api_key, VM_TLS_SERVER_NAME)
        return self._upstream

    async def apply(self, body: JSON) -> None:
        self.body = body
        if self.on_spec is not None:
            self.on_spec(body.get("spec") or {})
        status = body.get("status") or {}
        self.spec = spec_or_defaults(body.get("spec") or {})
        if self.cache is not None:
            self.cache.configure(self.spec.models, version_of(self.spec.ollama.image))
            if isinstance(status.get("ollama"), dict):
                self.cache.learn(status["ollama"])
        phase = str(status.get("phase") or "Pending")
        endpoint = status.get("endpoint")
        self._look_again_at_grace_end(status)
        refusal = refusal_from(status)
        replicated = self.members is not None and self.spec.replicas.max > 1
        if self.members is not None:
            replicas = self.spec.replicas
            self.members.resolver.configure(self.spec.target_in_flight, replicas.max, replicas.routing)
        if refusal is not None:
            self._refuse(status, phase, replace(refusal, retry_at=budget_resets_at(status)))
            if self.members is not None:
                self.members.resolver.set_members({}, 0)
            return
        if replicated and self.members is not None:
            await self.members.apply(status)
            return
        if phase == Phase.READY and endpoint and not str(endpoint).startswith("https://"):
            # the VM credential (client certificate, key) never goes over plain HTTP
            self.resolver.set_refusing(phase, Refusal(f"refusing non-https endpoint {endpoint!r}"))
            return
        if phase == Phase.READY and endpoint:
            upstream = await self._upstream_for(str(endpoint))
            if upstream is not None:
                self.resolver.set_ready(upstream)
                return
        exists = bool((status.get("instance") or {}).get("id"))
        self.resolver.set_down(phase, instance=exists, detail=str(status.get("message") or "")[:300])

    def wake_asked(self, at: datetime) -> None:
        """This proxy wrote a wake request (`ActivityReporter.on_wake`): a refusal a round may lift
        waits for the operator's answer, from the request that asked for it on."""
        now = asyncio.get_running_loop().time()
        self.answer.ask(at, now)
        status = (self.body or {}).get("status") or {}
        refusal = refusal_from(status)
        if refusal is not None and self.answer.waiting(status, refusal, now) > 0:
            self._refuse(status, str(status.get("phase") or "Pending"), refusal)

    def _refuse(self, status: JSON, phase: str, refusal: Refusal) -> None:
        """Requests are refused at once, unless the operator is answering this proxy's wake on a
        refusal its round may lift (wake_answer.py): then they wait for the answer, until it is due."""
        if self._answer_timer is not None:
            self._answer_timer.cancel()
        loop = asyncio.get_running_loop()
        wait = self.answer.waiting(status, refusal, loop.time())
        if wait <= 0:
            self.resolver.set_refusing(phase, refusal)
            return
        exists = bool((status.get("instance") or {}).get("id"))
        self.resolver.set_down(phase, instance=exists, detail="the cloud is asked again")
        self._answer_timer = loop.call_later(wait, lambda: self._reapply_now(self.body))

    def _look_again_at_grace_end(self, status: JSON) -> None:
        """An outage of the cloud API younger than the grace becomes a refusal when the grace ends,
        even if no new status comes (requests held meanwhile are answered then)."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        for cond in status.get("conditions") or []:
            since = unreachable_since(cond)
            if since is None:
                continue
            left = UNREACHABLE_GRACE - (utcnow() - since).total_seconds()
            if left > 0:
                self._grace_timer = asyncio.get_running_loop().call_later(left, self._reapply_now, self.body)

    def _reapply_now(self, body: JSON | None) -> None:
        task = asyncio.ensure_future(self.apply(body or {}))
        self._reapply.add(task)
        task.add_done_callback(self._reapply.discard)

    async def run(self) -> None:
        """Watch forever (re-listing after each stream ends or fails)."""
        while True:
            try:
                body = await self.api.get(self.path)
                if body is not None:
                    await self.apply(body)
                async for event in self.api.watch(
                    self.collection, query={"fieldSelector": f"metadata.name={self.name}"}, timeout=240
                ):
                    obj = event.get("object") or {}
                    if (obj.get("metadata") or {}).get("name") != self.name:
                        continue  # an API without field selectors sends us everything
                    if event.get("type") == "DELETED":
                        self.resolver.set_down("Deleting")
                    else:
                        await self.apply(obj)
            except (KubeError, OSError, TimeoutError, ValueError) as exc:
                log.warning("watching %s/%s: %s", self.namespace, self.name, exc)
                await asyncio.sleep(2)


def budget_resets_at(status: JSON) -> datetime | None:
    """When a BudgetExceeded refusal ends (status.cost.budgetResetsAt); None when not refused for budget."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == ConditionType.BUDGET_EXCEEDED and cond.get("status") == "True":
            raw = (status.get("cost") or {}).get("budgetResetsAt")
            with contextlib.suppress(TypeError, ValueError):
                return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return None


def refusal_from(status: JSON, now: datetime | None = None) -> Refusal | None:
    """Why the operator will not wake the VM now (budget, or a permanent reason of the status
    vocabulary: quota, an unauthorised type, credentials, a bad spec), so requests need not wait;
    also a cloud API unreachable for UNREACHABLE_GRACE since the Ready condition's transition
    (`now`: the time to measure it at, default now), a refusal with a Retry-After.

    The request still writes its wake annotation, so the operator tries again and a fixed quota or
    Secret, or a reachable API, lifts the refusal with the next status.
    """
    for cond in status.get("conditions") or []:
        if cond.get("type") == ConditionType.BUDGET_EXCEEDED and cond.get("status") == "True":
            capped = (
                Reason.of(cond.get("reason")) is Reason.NAMESPACE_SPEND_CAP_REACHED
            )  # the namespace's cap
            cap = Reason.NAMESPACE_SPEND_CAP_REACHED if capped else Reason.BUDGET_EXCEEDED
            return Refusal(str(cond.get("message") or "budget exceeded"), cap)
        reason = Reason.of(cond.get("reason"))
        outage = unreachable_since(cond)
        if outage is not None and ((now or utcnow()) - outage).total_seconds() >= UNREACHABLE_GRACE:
            return Refusal(str(cond.get("message") or reason), Reason.CLOUD_UNAVAILABLE, UNREACHABLE_GRACE)
        if (
            cond.get("type") in (ConditionType.READY, ConditionType.CREDENTIALS_VALID)
            and cond.get("status") == "False"
            and reason is not None
            and reason.permanent
        ):
            return Refusal(str(cond.get("message") or reason), reason)
    return None


def unreachable_since(cond: JSON) -> datetime | None:
    """When the cloud API became unreachable, if this is a Ready condition saying it is."""
    if (cond.get("type"), cond.get("status"), cond.get("reason")) != (
        ConditionType.READY,
        "False",
        Reason.CLOUD_UNAVAILABLE,
    ):
        return None
    with contextlib.suppress(TypeError, ValueError):
        return datetime.fromisoformat(str(cond.get("lastTransitionTime")).replace("Z", "+00:00"))
    return utcnow()  # no usable time: the outage is counted from now


async def run_resource_proxy(resource: str, host: str, port: int) -> int:
    namespace, _, name = resource.partition("/")
    if not namespace or not name:
        print("remote-ollama proxy: --resource must be NAMESPACE/NAME")
        return 2
    api = KubeAPI.from_environment("proxy")
    router = Router()
    replicas = ReplicaResolver(router)
    follower = ResourceFollower(api, namespace, name, replicas.base)
    follower.members = MemberFollower(api, namespace, name, replicas)
    body = await api.get(follower.path)
    lease = await _take_over(api, follower, replicas, body)
    spec = (body or {}).get("spec") or {}
    follower.spec = spec_or_defaults(spec)
    settings = proxy_settings(
        follower.spec,
        os.environ,
        client_auth_required=bool(client_secret_name(spec)),
        status_extra=_status_extra(follower, resource),
    )
    app = make_proxy_app(replicas, AnnotationSink(api, follower.path), settings, router=router)
    access = AccessFollower(api, namespace, app[PROXY_KEY])
    access.apply_spec(spec)
    follower.on_spec = access.apply_spec
    follower.cache = app[PROXY_KEY].cache
    app[PROXY_KEY].reporter.on_wake = follower.wake_asked
    runner, _ = await start_proxy(app, host, port, shutdown_timeout=30)
    log.info("proxy for %s listening on %s:%d", resource, host, port)
    tasks = [
        asyncio.create_task(follower.run()),
        asyncio.create_task(access.run()),
        asyncio.create_task(lease.run(lambda: follower.spec.replicas.max > 1 or follower.retiring())),
    ]
    try:
        await _until_signalled()
    finally:
        for task in tasks:
            task.cancel()
        await runner.cleanup()
        await api.close()
    return 0


async def _take_over(
    api: KubeAPI, follower: ResourceFollower, replicas: ReplicaResolver, body: JSON | None
) -> LeaseWriter:
    """This pod's load Lease, and the in-flight count a previous proxy left behind set to zero."""
    namespace, name = follower.namespace, follower.name
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    lease = LeaseWriter(api, namespace, name, pod, lambda: replica_counts(replicas))
    replicas.on_load = lease.kick
    if body is not None:  # the Lease goes with the resource (an expired one counts for nothing)
        lease.owner = lease_owner(body)
    if ((body or {}).get("metadata", {}).get("annotations") or {}).get(ANN_IN_FLIGHT, "0") != "0":
        # a previous proxy left requests counted that died with it: nothing is in flight here yet
        await AnnotationSink(api, follower.path)._annotate({ANN_IN_FLIGHT: "0"})
    return lease


def _status_extra(follower: ResourceFollower, resource: str) -> Callable[[], dict[str, Any]]:
    """The proxy's /status document from the resource's status as last seen."""

    def status_extra() -> dict[str, Any]:
        st = (follower.body or {}).get("status") or {}
        return status_document(
            follower.spec,
            phase=st.get("phase"),
            error=refusal_from(st) is not None,
            instance_status=(st.get("instance") or {}).get("state"),
            remote_url=st.get("endpoint"),
            setup=st.get("setup") if isinstance(st.get("setup"), dict) else None,
            resource=resource,
            last_activity=st.get("lastActivity"),
        )

    return status_extra


async def _until_signalled() -> None:
    """Wait for SIGTERM or SIGINT (where the loop can take them)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
