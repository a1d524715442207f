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

from remote_ollama.core.lifecycle import WARM_UP_TIMEOUT, endpoint_for
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.setup import MAX_DOCUMENT, SetupReport, parse_setup_report, run_id
from remote_ollama.core.types import Action, Health
from remote_ollama.spec.names import API_KEY_HEADER, SETUP_STATUS_PATH, VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.bounded import TooLarge, capped_lines, hang_up, read_capped
from remote_ollama.vm.pki import VMCredentials, pem_of, vm_certificate_problem

log = logging.getLogger("remote_ollama.engine.reconciler")

PROBE_TIMEOUT = 5.0
# While a VM comes up, its Ollama is asked this often (directly, not the cloud API), so the round
# that declares it Ready runs within a second of it answering instead of at the next 5 s recheck.
WATCH_INTERVAL = 0.25
WATCH_ATTEMPT_TIMEOUT = 1.0
WATCH_FOR = 1800.0
# The most the operator reads of one VM reply (or one line of pull progress): /api/tags of a VM with
# hundreds of models is tens of KiB; the VM runs an image the tenant chose, and the operator is shared.
MAX_VM_REPLY = 1 << 20
# A pull still going after this is abandoned (it is asked again by a later round while models lack).
PULL_DEADLINE = 4 * 3600.0


@dataclass(frozen=True)
class InstanceRecord:
    """Which instance this store's owner created, kept beside its credentials where tenants cannot
    point it elsewhere (status is only a mirror). The creation token, a random label written before
    the create call, finds the instance after a crash between the create and recording its id:
    nobody else can know it before our instance shows it."""

    instance_id: str | None = None
    creation_token: str | None = None

    def to_data(self) -> dict[str, str]:
        out = {RECORD_INSTANCE_ID: self.instance_id or "", RECORD_CREATION_TOKEN: self.creation_token or ""}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_data(cls, data: dict[str, str] | None) -> InstanceRecord:
        data = data or {}
        return cls(data.get(RECORD_INSTANCE_ID) or None, data.get(RECORD_CREATION_TOKEN) or None)

    @property
    def empty(self) -> bool:
        return self.instance_id is None and self.creation_token is None


RECORD_INSTANCE_ID = "instance-id"
RECORD_CREATION_TOKEN = "creation-token"
RECORD_KEYS = (RECORD_INSTANCE_ID, RECORD_CREATION_TOKEN)
# The models' /api/show answers are kept (state file, status.ollama.show) up to this size in all:
# the status object must stay far below etcd's 1.5 MiB, whatever a VM sends.
MAX_DESCRIPTIONS = 256 * 1024


class CredentialStore:
    """Where the per-VM CA, certificate and API key live (a Secret, or the standalone state file),
    and the record of the instance they were made for."""

    async def load(self) -> VMCredentials | None:
        raise NotImplementedError

    async def save(self, creds: VMCredentials, record: InstanceRecord) -> None:
        raise NotImplementedError

    async def record(self) -> InstanceRecord | None:
        """The record; None when the store holds no credentials (nothing was ever created)."""
        raise NotImplementedError

    async def keep(self, record: InstanceRecord) -> None:
        """Replace the record, keeping the credentials."""
        raise NotImplementedError


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
        """The credentials to talk to `instance` with; None while that cannot be done yet.

        At the first contact with a VM we created, its certificate is pinned (trust on first use):
        only for the instance id recorded at create, at the IP the cloud API reports for it, which
        nobody else can answer on while our instance holds it. From then on only that certificate
        is trusted, so a VM showing another one (a look-alike, a spoof after a destroy) is refused.
        """
        creds = await self.store.load()
        if creds is None or creds.pinned:
            return creds
        async with self._enrolling:
            creds = await self.store.load()
            if creds is None or creds.pinned:
                return creds
            record = await self.store.record()
            if record is None or record.instance_id != instance.id or not instance.public_ip:
                return None
            der = await first_contact(instance.public_ip, creds)
            if der is None:
                return None  # not listening yet: asked again later
            problem = vm_certificate_problem(der)
            if problem is not None:
                log.warning("instance %s: its TLS certificate is not pinned: %s", instance.id, problem)
                return None
            pinned = creds.pinned_to(pem_of(der))
            await self.store.save(pinned, record)
            log.info(
                "instance %s: its TLS certificate is pinned (first contact at %s)",
                instance.id,
                instance.public_ip,
            )
            return pinned

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # no keep-alive: probes are minutes apart, and hundreds of idle TLS connections cost memory
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    @contextlib.asynccontextmanager
    async def _vm_response(
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

    async def _vm_request(
        self, instance: ObservedInstance, creds: VMCredentials, method: str, path: str, **kw: Any
    ) -> Any:
        """The VM's JSON reply, read up to MAX_VM_REPLY (the VM runs the tenant's image: a bigger
        reply is refused with TooLarge, a ValueError, instead of being held in the shared operator)."""
        async with self._vm_response(instance, creds, method, path, **kw) as resp:
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
            version = await self._vm_request(instance, creds, "GET", "/api/version")
            tags = await self._vm_request(instance, creds, "GET", "/api/tags")
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
                    shown = await self._vm_request(instance, creds, "POST", "/api/show", json={"model": name})
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
        return None if creds is None else await self._fetch_setup(instance, creds)

    async def _fetch_setup(self, instance: ObservedInstance, creds: VMCredentials) -> SetupReport | None:
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
            ps = await self._vm_request(instance, creds, "GET", "/api/ps")
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
        self._watch = asyncio.create_task(self._watch_ollama(instance))

    def stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def _watch_ollama(self, instance: ObservedInstance) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + WATCH_FOR
        attempt = aiohttp.ClientTimeout(total=WATCH_ATTEMPT_TIMEOUT)
        seen: tuple[str, str] | None = None
        while loop.time() < give_up:
            try:
                creds = await self.credentials(instance)
                if creds is None:
                    raise aiohttp.ClientError("not reachable yet")
                await self._vm_request(instance, creds, "GET", "/api/version", timeout=attempt)
            except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
                report = await self._fetch_setup(instance, creds) if creds is not None else None
                now = (report.state, report.step) if report else None
                if now is not None and now != seen and self.notify is not None:
                    self.notify()
                seen = now or seen
                if report is not None and report.failed:
                    return
                await asyncio.sleep(WATCH_INTERVAL)
                continue
            log.debug("instance %s: Ollama answers; looking now", instance.id)
            if self.notify is not None:
                self.notify()
            return

    def start_pulls(self, instance: ObservedInstance, action: Action) -> None:
        for model in action.models:
            task = self._pulls.get(model)
            if task is None or task.done():
                self._pulls[model] = asyncio.create_task(self._pull(instance, model))

    async def _pull(self, instance: ObservedInstance, model: str) -> None:
        creds = await self.credentials(instance)
        if creds is None:
            return
        what = f"POST /api/pull {model} on instance {instance.id}"
        try:
            async with self._vm_response(
                instance,
                creds,
                "POST",
                "/api/pull",
                json={"model": model, "stream": True},
                timeout=aiohttp.ClientTimeout(total=PULL_DEADLINE, sock_connect=PROBE_TIMEOUT),
            ) as resp:
                # progress line by line, each capped, only the last kept; the round sees the result
                async for _line in capped_lines(resp.content, MAX_VM_REPLY, what):
                    pass
        except TooLarge as exc:
            log.warning("pull refused: %s", exc)
        except TimeoutError:
            log.warning(
                "%s: not done after %.0f s; abandoned (the next round asks again)", what, PULL_DEADLINE
            )
        except (aiohttp.ClientError, ValueError) as exc:
            log.debug("%s failed: %s", what, type(exc).__name__)

    def start_warm_ups(self, instance: ObservedInstance, action: Action, keep_alive: str) -> None:
        for model in action.models:
            task = self._warm_ups.get(model)
            if task is None or task.done():
                self._warm_ups[model] = asyncio.create_task(self._warm_up(instance, model, keep_alive))

    async def _warm_up(self, instance: ObservedInstance, model: str, keep_alive: str) -> None:
        """An empty generate loads the model and answers once it is in memory (Ollama's own way)."""
        creds = await self.credentials(instance)
        if creds is None:
            return
        try:
            await self._vm_request(
                instance,
                creds,
                "POST",
                "/api/generate",
                json={
                    "model": model,
                    "prompt": "",
                    "keep_alive": ollama_keep_alive(keep_alive),
                    "stream": False,
                },
                timeout=aiohttp.ClientTimeout(total=WARM_UP_TIMEOUT, sock_connect=PROBE_TIMEOUT),
            )
            log.info("warm-up: %s is loaded on %s", model, instance.id)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("warm-up of %s on %s failed: %s", model, instance.id, str(exc) or type(exc).__name__)
        finally:
            if self.notify is not None:
                self.notify()


async def first_contact(ip: str, creds: VMCredentials, port: int = VM_PORT) -> bytes | None:
    """The certificate (DER) the TLS server at ip:port shows to our client certificate; None when
    nothing answers. Only a handshake: nothing is sent over this unverified connection."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(
                ip, port, ssl=creds.enrolment_context(), server_hostname=VM_TLS_SERVER_NAME
            )
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        tls = writer.get_extra_info("ssl_object")
        return tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT):
                await writer.wait_closed()


def ollama_keep_alive(text: str) -> str | float:
    """Ollama reads a string keep_alive as a Go duration, which must carry a unit: "-1" and "0"
    (allowed by the CRD) go as numbers of seconds."""
    try:
        return float(text)
    except ValueError:
        return text
