"""Embed remote-ollama in a Python program: a GPU VM on Exoscale that exists only while it is used.

    from remote_ollama import RemoteOllama

    with RemoteOllama.from_env() as remote:          # EXOSCALE_API_KEY, EXOSCALE_API_SECRET, ...
        url = remote.ensure_instance(timeout=900)     # creates or starts the VM, waits until Ready
        ollama.Client(host=url).generate(model="granite3.1-dense:8b", prompt="hi")
        remote.start_idle_monitor()                   # stop the VM after idle_timeout without use
    # leaving the block applies on_exit ("stop" by default): keep, stop or destroy the VM

This is standalone mode's engine (`LocalController`, `Reconciler`, the proxy) in your process, not
a second implementation. The VM only accepts mutual TLS with its own CA (plus `X-Ollama-Key` when
EXOSCALE_OLLAMA_KEY is set), so the object serves a plain-HTTP Ollama endpoint on 127.0.0.1 (an
ephemeral port) that adds them:
`url` works with any Ollama client and wakes a stopped VM on the first request. `remote_url` (with
`vm_ssl_context()`, `vm_api_key` and `VM_TLS_SERVER_NAME`) is for talking to the VM directly.

`AsyncRemoteOllama` is the asyncio API; `RemoteOllama` runs one in a background event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .cloud.async_cloud import AsyncExoscaleCloud
from .lifecycle import Memory, Phase
from .ollama_release import DEFAULT_OLLAMA_IMAGE, version_of
from .proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from .proxy.interfaces import NotReady, ProxySettings
from .resource import VM_TLS_SERVER_NAME, Spec
from .settings import ConfigError, StandaloneConfig
from .standalone import LocalController, make_cloud

__all__ = ["VM_TLS_SERVER_NAME", "AsyncRemoteOllama", "ConfigError", "InstanceNotReady", "RemoteOllama"]

T = TypeVar("T")

_KWARG_ENV = {
    "api_key": "EXOSCALE_API_KEY",
    "api_secret": "EXOSCALE_API_SECRET",
    "zone": "EXOSCALE_ZONE",
    "instance_type": "EXOSCALE_INSTANCE_TYPE",
    "template": "EXOSCALE_TEMPLATE",
    "disk_size": "EXOSCALE_DISK_SIZE",
    "idle_timeout": "EXOSCALE_IDLE_TIMEOUT",
    "model": "OLLAMA_MODEL",
    "ollama_key": "EXOSCALE_OLLAMA_KEY",
    "endpoint": "EXOSCALE_API_ENDPOINT",
    "state_file": "REMOTE_OLLAMA_STATE_FILE",
    "on_exit": "REMOTE_OLLAMA_ON_EXIT",
    "exit_timeout": "REMOTE_OLLAMA_EXIT_TIMEOUT",
    "hold_timeout": "REMOTE_OLLAMA_HOLD_TIMEOUT",
    "destroy_after": "REMOTE_OLLAMA_DESTROY_AFTER",
}


def default_state_file() -> Path:
    """Where an embedded instance remembers its VM unless told otherwise: $XDG_STATE_HOME or ~/.local/state."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "remote-ollama" / "state.json"


class InstanceNotReady(TimeoutError):
    """`ensure_instance()` passed its timeout; `phase` is where the VM got to, `error` the last cloud error."""

    def __init__(self, message: str, phase: str, error: str | None):
        super().__init__(message)
        self.phase = phase
        self.error = error


def config_from(env: Mapping[str, str], overrides: Mapping[str, Any]) -> StandaloneConfig:
    """The standalone config for `env` with keyword `overrides` (names as `RemoteOllama` takes them)."""
    merged = dict(env)
    unknown = sorted(set(overrides) - set(_KWARG_ENV))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    for name, value in overrides.items():
        if value is None:
            continue
        if name == "model" and not isinstance(value, str):
            value = ",".join(value)
        merged[_KWARG_ENV[name]] = str(value)
    if not merged.get("REMOTE_OLLAMA_STATE_FILE"):
        merged["REMOTE_OLLAMA_STATE_FILE"] = str(default_state_file())
    return StandaloneConfig.from_env(merged)


class AsyncRemoteOllama:
    """One Exoscale GPU VM running Ollama, for asyncio programs (see the module docstring).

    Construct with keyword arguments (the seed's settings; anything left out is read from nothing
    and takes its default), with `from_env()`, or with `from_config()`. Nothing touches the cloud
    until `start()` (called for you by `ensure_instance()` and `async with`).

    Keyword arguments: api_key, api_secret (required), zone ("at-vie-2"), instance_type
    ("gpua5000.small"; "a5000.small" accepted), template, disk_size (50 GiB), idle_timeout (1800 s or
    "30m"), model (a name or a list), ollama_key (the VM's API key; random per VM when None),
    endpoint (API URL override), state_file (default `default_state_file()`), on_exit ("stop",
    "keep" or "destroy"), exit_timeout, hold_timeout, destroy_after. Invalid values raise
    `ConfigError` listing every problem. Extra: `idle_monitor` (start the idle monitor at once),
    `host`/`port` of the local endpoint (127.0.0.1, ephemeral), `poll_interval` (upper bound on the
    wait between lifecycle rounds), `cloud` (a ready `AsyncExoscaleCloud`, e.g. for tests).
    """

    def __init__(
        self,
        *,
        config: StandaloneConfig | None = None,
        idle_monitor: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        poll_interval: float | None = None,
        cloud: AsyncExoscaleCloud | None = None,
        **settings: Any,
    ):
        if config is not None and settings:
            raise TypeError("pass either config= or settings keywords, not both")
        self.config = config or config_from({}, settings)
        self._idle_timeout = self.config.spec.idle.stop_after
        self._monitor = idle_monitor
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
        """Read the seed's variables (EXOSCALE_API_KEY, ..., EXOSCALE_OLLAMA_KEY) from `env` (default
        os.environ); keyword settings override them, other keywords are as for the constructor."""
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in _KWARG_ENV}
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
                settings = ProxySettings(
                    hold_timeout=spec.wake.hold_timeout,
                    max_held_requests=spec.wake.max_held_requests,
                    immediate_503=self.config.immediate_503,
                    status_extra=self.status,
                    activity_interval=min(spec.activity_interval, max(1.0, (self._idle_timeout or 60) / 4)),
                    models=spec.models,
                    ollama_version=version_of(spec.ollama.image or DEFAULT_OLLAMA_IMAGE),
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
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
        now = datetime.now(UTC)
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
        await (await self._ctl()).touch(datetime.now(UTC))

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
            now = datetime.now(UTC)
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
        await self.start()
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

    def vm_ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context trusting only this VM's CA (None before a VM was created)."""
        c = self._controller
        creds = c.files.credentials(c.saved) if c else None
        return c.reconciler.ssl_context(creds) if c and creds else None

    def status(self) -> dict[str, Any]:
        """The seed's /status fields (as `GET <url>/status` shows), plus `url`, `instance_id`,
        `idle_monitor`; `idle_timeout` is the monitor's setting even while it is off."""
        if self._controller is None:
            spec = self.config.spec
            out: dict[str, Any] = {
                "service": "remote-ollama",
                "provisioning_status": "idle",
                "instance_status": "unknown",
                "remote_url": None,
                "zone": spec.zone,
                "instance_type": spec.instance_type.name,
                "ollama_model": ",".join(spec.models),
            }
        else:
            out = self._controller.status()
        out["idle_timeout"] = int(self._idle_timeout or 0)
        out["idle_monitor"] = self._monitor
        out["instance_id"] = self.instance_id
        out["url"] = self.url if self._runner is not None else None
        return out


class RemoteOllama:
    """The synchronous API: the same methods as `AsyncRemoteOllama`, run on a background event loop.

    Use it as a context manager, or call `shutdown()` when done (it applies on_exit). Methods are
    safe to call from any thread. See `AsyncRemoteOllama` for the settings.
    """

    def __init__(self, **kwargs: Any):
        self._init(AsyncRemoteOllama(**kwargs))

    def _init(self, inner: AsyncRemoteOllama) -> None:
        self.aio = inner  # the async object, should you need it on its loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> RemoteOllama:
        """As `AsyncRemoteOllama.from_env`: the seed's variables, overridden by keywords."""
        obj = cls.__new__(cls)
        obj._init(AsyncRemoteOllama.from_env(env, **kwargs))
        return obj

    @classmethod
    def from_config(cls, config: StandaloneConfig, **kwargs: Any) -> RemoteOllama:
        obj = cls.__new__(cls)
        obj._init(AsyncRemoteOllama.from_config(config, **kwargs))
        return obj

    def __repr__(self) -> str:
        return repr(self.aio).replace("AsyncRemoteOllama", "RemoteOllama")

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="remote-ollama-loop", daemon=True
                )
                self._thread.start()
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def start(self) -> str:
        """Start the local endpoint and the lifecycle loop; returns `url`."""
        return self._run(self.aio.start())

    def ensure_instance(self, timeout: float = 900.0) -> str:
        """Create or start the VM, wait until Ready (at most `timeout` s, else InstanceNotReady); `url`."""
        return self._run(self.aio.ensure_instance(timeout))

    def record_activity(self) -> None:
        """Note use now (requests through `url` count by themselves)."""
        self._run(self.aio.record_activity())

    def start_idle_monitor(self, idle_timeout: float | None = None) -> None:
        """Stop the VM after `idle_timeout` s (default: configured) without activity."""
        self._run(self.aio.start_idle_monitor(idle_timeout))

    def stop_idle_monitor(self) -> None:
        """Never stop the VM for idleness."""
        self._run(self.aio.stop_idle_monitor())

    def destroy(self, timeout: float = 600.0) -> None:
        """Delete the VM and its security group now; a later ensure_instance() makes a new VM."""
        self._run(self.aio.destroy(timeout))

    def status(self) -> dict[str, Any]:
        """The seed's /status fields plus url, instance_id, idle_monitor (no cloud call)."""
        if self._loop is None:
            return self.aio.status()

        async def read() -> dict[str, Any]:
            return self.aio.status()

        return self._run(read())

    def shutdown(self, policy: str | None = None) -> None:
        """Close the endpoint, leave the VM as `policy` (default on_exit) says, stop the loop thread."""
        if self._loop is None:
            return
        try:
            self._run(self.aio.shutdown(policy))
        finally:
            loop, thread = self._loop, self._thread
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    @property
    def url(self) -> str:
        """The local plain-HTTP Ollama endpoint (starts it if needed)."""
        return self.aio.url if self.aio.started else self.start()

    @property
    def remote_url(self) -> str | None:
        """The VM's TLS endpoint while Ready (needs vm_ssl_context() and vm_api_key)."""
        return self.aio.remote_url

    @property
    def instance_id(self) -> str | None:
        return self.aio.instance_id

    @property
    def vm_api_key(self) -> str | None:
        return self.aio.vm_api_key

    def vm_ssl_context(self) -> ssl.SSLContext | None:
        return self.aio.vm_ssl_context()

    def __enter__(self) -> RemoteOllama:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
