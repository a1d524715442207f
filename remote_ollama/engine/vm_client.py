"""The round's side of the VM's own Ollama (through its TLS front, with the client certificate and
key): pinning the VM's certificate at first contact, probing it, watching it come up, pulling
models and warming one up. `Reconciler` has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from remote_ollama.core.lifecycle import endpoint_for
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.setup import MAX_DOCUMENT, SetupReport, parse_setup_report, run_id
from remote_ollama.core.types import Action, Health
from remote_ollama.spec.names import API_KEY_HEADER, SETUP_STATUS_PATH, VM_TLS_SERVER_NAME
from remote_ollama.vm.bounded import TooLarge, hang_up, read_capped
from remote_ollama.vm.pki import VMCredentials

from .credentials import PROBE_TIMEOUT, CredentialStore, pinned_credentials
from .vm_tasks import MAX_VM_REPLY, WATCH_ATTEMPT_TIMEOUT, pull, warm_up, watch_ollama

log = logging.getLogger("remote_ollama.engine.reconciler")

# The models' /api/show answers are kept (state file, status.ollama.show) up to this size in all:
# the status object must stay far below etcd's 1.5 MiB, whatever a VM sends.
MAX_DESCRIPTIONS = 256 * 1024


@dataclass
class VMClient:
    """Talking to one resource's VM Ollama: its credentials, one HTTP session, background tasks."""

    store: CredentialStore
    # Called when a background warm-up ends, so the shell looks again now instead of at its next poll.
    notify: Callable[[], None] | None = None
    # What the VM last answered to /api/version and /api/tags ({"version", "models"}); the proxy
    # answers polling routes with it while no VM runs (operator mode: through status.ollama).
    answered: dict[str, Any] = field(default_factory=dict)
    on_answer: Callable[[dict[str, Any]], None] | None = None
    _pulls: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _warm_ups: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _watch: asyncio.Task[None] | None = None
    _enrolling: asyncio.Lock = field(default_factory=asyncio.Lock)
    _ssl: tuple[str, ssl.SSLContext] | None = None
    _session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Cancel the background pulls, warm-ups and watch, and close the HTTP session."""
        for task in (
            *self._pulls.values(),
            *self._warm_ups.values(),
            *([self._watch] if self._watch else []),
        ):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def ssl_context(self, creds: VMCredentials) -> ssl.SSLContext:
        """One context per pinned certificate and client certificate, so the proxy's pool (keyed by
        context) survives unchanged credentials. ValueError before the pin."""
        key = creds.cert_pem + creds.client_cert_pem
        if self._ssl is None or self._ssl[0] != key:
            self._ssl = (key, creds.client_context())
        return self._ssl[1]

    async def credentials(self, instance: ObservedInstance) -> VMCredentials | None:
        """The credentials to talk to `instance` with; None while that cannot be done yet (the VM's
        certificate is pinned at the first contact: `pinned_credentials`)."""
        return await pinned_credentials(self.store, self._enrolling, instance)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # no keep-alive: probes are minutes apart, and hundreds of idle TLS connections cost memory
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    @contextlib.asynccontextmanager
    async def vm_response(
        self, instance: ObservedInstance, creds: VMCredentials, method: str, path: str, **kw: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        url = f"{endpoint_for(instance.public_ip)}{path}"
        async with self._http().request(
            method,
            url,
            ssl=self.ssl_context(creds),
            server_hostname=VM_TLS_SERVER_NAME,
            headers={API_KEY_HEADER: creds.api_key} if creds.api_key else {},
            **kw,
        ) as resp:
            resp.raise_for_status()
            try:
                yield resp
            except TooLarge:
                hang_up(resp)
                raise

    async def vm_request(
        self, instance: ObservedInstance, creds: VMCredentials, method: str, path: str, **kw: Any
    ) -> Any:
        """The VM's JSON reply, read up to MAX_VM_REPLY (the VM runs the tenant's image: a bigger
        reply is refused with TooLarge, a ValueError, instead of being held in the shared operator)."""
        async with self.vm_response(instance, creds, method, path, **kw) as resp:
            what = f"{method} {path} on instance {instance.id}"
            return json.loads(await read_capped(resp.content, MAX_VM_REPLY, what))

    async def probe(self, instance: ObservedInstance | None) -> Health | None:
        """Ask the VM's Ollama (through its TLS front, with the key) for its version and models."""
        if instance is None or instance.state != "running" or not instance.public_ip:
            return None
        creds = await self.credentials(instance)
        if creds is None:
            return None
        try:
            version = await self.vm_request(instance, creds, "GET", "/api/version")
            tags = await self.vm_request(instance, creds, "GET", "/api/tags")
            models = tuple(str(m.get("name") or m.get("model", "")) for m in tags.get("models", []))
            answered: dict[str, Any] = {
                "version": str(version.get("version", "")),
                "models": [m for m in tags.get("models", []) if isinstance(m, dict)],
            }
        except TooLarge as exc:
            log.warning("probe of %s refused: %s", instance.id, exc)
            return None
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError, TypeError) as exc:
            log.debug("probe of %s failed: %s", instance.id, type(exc).__name__)
            return None
        shows = await self._descriptions(instance, creds, answered["models"])
        self.answered = {**answered, "show": shows}
        if self.on_answer is not None:
            self.on_answer(self.answered)
        return Health(answered["version"], models, await self._loaded(instance, creds))

    async def _descriptions(
        self, instance: ObservedInstance, creds: VMCredentials, listed: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The VM's `/api/show` answer per listed model, kept with the list so the proxy describes a
        model without waking the VM; asked again only when a model's digest changes."""
        before = self.answered.get("show") or {}
        digests = {m.get("name"): m.get("digest") for m in self.answered.get("models") or []}
        shows: dict[str, Any] = {}
        room = MAX_DESCRIPTIONS
        for entry in listed:
            name = str(entry.get("name") or entry.get("model") or "")
            if name in before and digests.get(name) == entry.get("digest"):
                shown = before[name]
            else:
                try:
                    shown = await self.vm_request(instance, creds, "POST", "/api/show", json={"model": name})
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # TooLarge is a ValueError
                    log.debug("POST /api/show %s on %s failed: %s", name, instance.id, type(exc).__name__)
                    continue
            size = len(json.dumps(shown))
            if isinstance(shown, dict) and size <= room:
                shows[name], room = shown, room - size
        return shows

    async def read_setup(self, instance: ObservedInstance | None) -> SetupReport | None:
        """The VM's setup status document (written by the VM: read capped, for display and to see a
        failed step); None when it does not serve one for this VM's run."""
        if instance is None or instance.state != "running" or not instance.public_ip:
            return None
        creds = await self.credentials(instance)  # pins the VM's certificate at first contact
        return None if creds is None else await self.fetch_setup(instance, creds)

    async def fetch_setup(self, instance: ObservedInstance, creds: VMCredentials) -> SetupReport | None:
        url = f"{endpoint_for(instance.public_ip)}{SETUP_STATUS_PATH}"
        try:
            async with self._http().get(
                url,
                ssl=self.ssl_context(creds),
                server_hostname=VM_TLS_SERVER_NAME,
                headers={API_KEY_HEADER: creds.api_key} if creds.api_key else {},
                timeout=aiohttp.ClientTimeout(total=WATCH_ATTEMPT_TIMEOUT * 2),
            ) as resp:
                if resp.status != 200:
                    return None
                try:
                    raw = await read_capped(resp.content, MAX_DOCUMENT, "the setup document")
                except TooLarge:
                    hang_up(resp)
                    raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:  # TooLarge is a ValueError
            log.debug("setup document of %s: %s", instance.id, type(exc).__name__)
            return None
        return parse_setup_report(raw, run_id(creds.cert_pem))

    async def _loaded(self, instance: ObservedInstance, creds: VMCredentials) -> tuple[str, ...] | None:
        """Models in memory (GET /api/ps); None when the VM does not say (no warm-up then)."""
        try:
            ps = await self.vm_request(instance, creds, "GET", "/api/ps")
            return tuple(str(m.get("name") or m.get("model", "")) for m in ps.get("models", []))
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError, TypeError) as exc:
            log.debug("GET /api/ps on %s failed: %s", instance.id, type(exc).__name__)
            return None

    def watch_for_ollama(self, instance: ObservedInstance) -> None:
        """Ask the VM's Ollama every WATCH_INTERVAL until it answers, then `notify` the shell once;
        meanwhile read its setup document and `notify` when the step changes or fails, so status
        follows the setup and a failure ends held requests' wait at once.

        One task at a time; the cloud API is not called (the shell's next round does that).
        """
        if self._watch is not None and not self._watch.done():
            return
        self._watch = asyncio.create_task(watch_ollama(self, instance))

    def stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def start_pulls(self, instance: ObservedInstance, action: Action) -> None:
        for model in action.models:
            task = self._pulls.get(model)
            if task is None or task.done():
                self._pulls[model] = asyncio.create_task(pull(self, instance, model))

    def start_warm_ups(self, instance: ObservedInstance, action: Action, keep_alive: str) -> None:
        for model in action.models:
            task = self._warm_ups.get(model)
            if task is None or task.done():
                self._warm_ups[model] = asyncio.create_task(warm_up(self, instance, model, keep_alive))
