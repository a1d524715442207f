"""`AsyncRemoteOllama`: standalone mode's engine (`LocalController`, the proxy) in the caller's event loop."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from remote_ollama.cloud.port import Cloud
from remote_ollama.core.types import Memory
from remote_ollama.engine.status_doc import status_document
from remote_ollama.local.controller import LocalController, make_cloud
from remote_ollama.local.settings import StandaloneConfig
from remote_ollama.spec.model import Spec
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import Phase

from ..proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from ..proxy.interfaces import NotReady, proxy_settings
from ..proxy.runloop import cancel_and_wait
from .config import KWARG_ENV, config_from, one_vm


class InstanceNotReady(TimeoutError):
    """`ensure_instance()` passed its timeout; `phase` is where the VM got to, `error` the last cloud error."""

    def __init__(self, message: str, phase: str, error: str | None):
        super().__init__(message)
        self.phase = phase
        self.error = error


class AsyncRemoteOllama:
    """One Exoscale GPU VM running Ollama, for asyncio programs (see `remote_ollama.embedded`).

    Construct with keyword arguments (the standalone settings; anything left out is read from nothing
    and takes its default), with `from_env()`, or with `from_config()`. Nothing touches the cloud
    until `start()` (called for you by `ensure_instance()` and `async with`).

    Keyword arguments: every standalone variable (README: Standalone) by its name in lower case
    without an EXOSCALE_ or REMOTE_OLLAMA_ prefix: api_key, api_secret (required), zone ("at-vie-2"),
    instance_type ("gpua5000.small"; "a5000.small" accepted), template, disk_size (50 GiB),
    idle_timeout (1800 s or "30m"), ollama_model or model (a name or a list), ollama_key (an extra VM
    API key nginx checks besides mutual TLS), api_endpoint or endpoint (API URL override), state_file,
    on_exit ("stop", "keep" or "destroy"), exit_timeout, hold_timeout, destroy_after, client_keys,
    model_management, max_body, wake_progress, first_request, ollama_image, ollama_env (a dict),
    max_replicas (1: the embedded API runs one VM), target_in_flight, scale_down_after. Invalid
    values raise `ConfigError` listing every problem, each naming its keyword. Extra: `idle_monitor` (default: on from `async with`, off
    after a bare `start()` until `start_idle_monitor()`; True/False: from the start / never),
    `host`/`port` of the local endpoint (127.0.0.1, ephemeral), `poll_interval` (upper bound on the
    wait between lifecycle rounds), `cloud` (a ready `AsyncExoscaleCloud`, e.g. for tests).
    """

    def __init__(
        self,
        *,
        config: StandaloneConfig | None = None,
        idle_monitor: bool | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        poll_interval: float | None = None,
        cloud: Cloud | None = None,
        **settings: Any,
    ):
        if config is not None and settings:
            raise TypeError("pass either config= or settings keywords, not both")
        self.config = one_vm(config) if config else config_from({}, settings)
        self._idle_timeout = self.config.spec.idle.stop_after
        # None: on from `async with` / `with` on, off after a bare start() until start_idle_monitor()
        self._monitor_choice = idle_monitor
        self._monitor = bool(idle_monitor)
        self._host, self._port = host, port
        self._poll_interval = poll_interval
        self._cloud = cloud
        self._controller: LocalController | None = None
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._start_lock: asyncio.Lock | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncRemoteOllama:
        """Read the standalone variables (EXOSCALE_API_KEY, ..., EXOSCALE_OLLAMA_KEY) from `env` (default
        os.environ); keyword settings override them, other keywords are as for the constructor."""
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in KWARG_ENV}
        return cls(config=config_from(os.environ if env is None else env, settings), **kwargs)

    @classmethod
    def from_config(cls, config: StandaloneConfig, **kwargs: Any) -> AsyncRemoteOllama:
        """From a parsed `StandaloneConfig` (what `remote-ollama standalone` runs with)."""
        return cls(config=config, **kwargs)

    def __repr__(self) -> str:  # no credentials
        return f"<AsyncRemoteOllama {self.config.spec.instance_type.name} in {self.config.spec.zone}>"

    # -- lifecycle of this object ------------------------------------------------------------------------

    async def start(self) -> str:
        """Start the local endpoint and the lifecycle loop (idempotent); returns `url`.

        Adopts the VM remembered in the state file, or found by its labels; creates nothing until
        `ensure_instance()` or a request through `url` asks for the VM.
        """
        if self._closed:
            raise RuntimeError("this RemoteOllama was shut down; make a new one")
        self._start_lock = self._start_lock or asyncio.Lock()
        async with self._start_lock:
            if self._controller is None:
                spec = self.config.spec
                controller = LocalController(
                    self._spec(),
                    self._cloud or make_cloud(self.config),
                    self.config.state_file,
                    ollama_key=self.config.ollama_key,
                )
                controller.poll_cap = self._poll_interval
                controller.idle_monitor = self._monitor
                settings = proxy_settings(
                    spec,
                    os.environ,
                    immediate_503=self.config.immediate_503,
                    status_extra=self._status_fields,
                    client_api_keys=self.config.client_keys,
                    activity_interval=min(spec.activity_interval, max(1.0, (self._idle_timeout or 60) / 4)),
                )
                app = make_proxy_app(controller, controller, settings)
                app[PROXY_KEY].cache.learn(controller.saved.ollama or {})
                controller.on_answer = app[PROXY_KEY].cache.learn
                self._runner, self._port = await start_proxy(app, self._host, self._port)
                self._controller = controller
                self._resume()
        return self.url

    def _spec(self) -> Spec:
        spec = self.config.spec
        return replace(spec, idle=replace(spec.idle, stop_after=self._idle_timeout))

    def _resume(self) -> None:
        assert self._controller is not None
        self._loop_task = asyncio.create_task(self._controller.run(), name="remote-ollama-embedded")

    async def _pause(self) -> None:
        task, self._loop_task = self._loop_task, None
        await cancel_and_wait(task)

    def _kick(self) -> None:
        """Run a lifecycle round now (after a policy change) rather than at the next recheck."""
        if self._controller is not None:
            self._controller._kick.set()  # same engine; LocalController has no public hook yet

    async def _ctl(self) -> LocalController:
        await self.start()
        assert self._controller is not None
        return self._controller

    # -- the VM ------------------------------------------------------------------------------------------

    async def ensure_instance(self, timeout: float = 900.0) -> str:
        """Create or start the VM and wait until its Ollama answers with every model; returns `url`.

        Returns at once when the VM is Ready already. Raises `InstanceNotReady` (a TimeoutError)
        after `timeout` seconds; the VM keeps coming up in the background. Counts as activity.
        """
        controller = await self._ctl()
        now = utcnow()
        await controller.touch(now)
        await controller.request_wake(now)
        loop = asyncio.get_running_loop()
        try:
            await controller.await_ready(loop.time() + timeout)
        except NotReady as exc:
            raise InstanceNotReady(
                f"the VM was not ready within {timeout:.0f}s (phase {exc.phase}): {exc.message}",
                exc.phase,
                controller.error,
            ) from None
        return self.url

    async def record_activity(self) -> None:
        """Note use now, so the idle monitor counts from here (requests through `url` do this for you)."""
        await (await self._ctl()).touch(utcnow())

    async def start_idle_monitor(self, idle_timeout: float | None = None) -> None:
        """Stop the VM after `idle_timeout` seconds (default: the configured one) without activity."""
        if idle_timeout is not None:
            self._idle_timeout = float(idle_timeout)
        self._monitor = True
        controller = await self._ctl()
        controller.spec, controller.idle_monitor = self._spec(), True
        self._kick()

    async def stop_idle_monitor(self) -> None:
        """Never stop the VM for idleness (a stopped VM stays stopped until asked for)."""
        self._monitor = False
        (await self._ctl()).idle_monitor = False
        self._kick()

    async def destroy(self, timeout: float = 600.0) -> None:
        """Delete the VM and its security group now and forget its keys; waits until both are gone.

        The object stays usable: a later `ensure_instance()` creates a new VM.
        """
        controller = await self._ctl()
        await self._pause()
        try:
            await asyncio.wait_for(controller.reconciler.destroy_all(), timeout)
            now = utcnow()
            controller.saved.memory = Memory(
                created_at=controller.saved.memory.created_at or now,
                scaled_down_at=now,
                phase=Phase.STOPPED,
                destroyed_for_idle=True,
            )
            controller.saved.credentials = None
            controller.decision = None
            controller.instance_state = None
            controller.error = None
            controller.persist()
        finally:
            self._resume()

    async def shutdown(self, policy: str | None = None) -> None:
        """Close the local endpoint and stop the loop, leaving the VM as `policy` says ("keep",
        "stop", "destroy"; default the configured on_exit). Bounded by exit_timeout. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._pause()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._controller is not None:
            await self._controller.stop(policy or self.config.on_exit, self.config.exit_timeout)

    async def __aenter__(self) -> AsyncRemoteOllama:
        """Starts, and starts the idle monitor unless `idle_monitor=False` was given."""
        if self._monitor_choice is None:
            self._monitor = True
        await self.start()
        if self._monitor and self._controller is not None and not self._controller.idle_monitor:
            await self.start_idle_monitor()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- what it looks like now (no cloud call) ----------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._runner is not None and not self._closed

    @property
    def url(self) -> str:
        """The local plain-HTTP Ollama endpoint (`http://127.0.0.1:<port>`); any Ollama client works."""
        if self._runner is None:
            raise RuntimeError("not started: call start() or ensure_instance() first")
        return f"http://{self._host}:{self._port}"

    @property
    def remote_url(self) -> str | None:
        """The VM's own endpoint (`https://<ip>:11435`) while Ready; it needs `vm_ssl_context()` (which
        presents the client certificate), `X-Ollama-Key: vm_api_key` when that is set, and verifies
        as `VM_TLS_SERVER_NAME`."""
        d = self._controller.decision if self._controller else None
        return d.endpoint if d is not None and d.phase is Phase.READY else None

    @property
    def instance_id(self) -> str | None:
        return self._controller.saved.memory.instance_id if self._controller else None

    @property
    def vm_api_key(self) -> str | None:
        """The VM's API key (EXOSCALE_OLLAMA_KEY when given), once a VM was created."""
        creds = self._controller.files.credentials(self._controller.saved) if self._controller else None
        return creds.api_key if creds else None

    async def vm_ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context trusting only this VM's certificate, pinned at the first contact
        (None before that)."""
        c = self._controller
        creds = c.files.credentials(c.saved) if c else None
        return c.reconciler.vm.ssl_context(creds) if c and creds and creds.pinned else None

    async def status(self) -> dict[str, Any]:
        """The /status document (as `GET <url>/status` shows), plus `url`, `instance_id`,
        `idle_monitor`; `idle_timeout` is the monitor's setting even while it is off."""
        return self._status_fields()

    def _status_fields(self) -> dict[str, Any]:
        if self._controller is None:
            out = status_document(self.config.spec, phase=None, instance_status="unknown", remote_url=None)
        else:
            out = self._controller.status()
        out["idle_timeout"] = int(self._idle_timeout or 0)
        out["idle_monitor"] = self._monitor
        out["instance_id"] = self.instance_id
        out["url"] = self.url if self._runner is not None else None
        return out
