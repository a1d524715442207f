"""`RemoteOllama`: the synchronous API, an `AsyncRemoteOllama` run on its own event loop thread."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from remote_ollama.local.settings import StandaloneConfig

from .aio import AsyncRemoteOllama

T = TypeVar("T")


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
        """As `AsyncRemoteOllama.from_env`: the standalone variables, overridden by keywords."""
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
        """The /status document plus url, instance_id, idle_monitor (no cloud call)."""
        return self._run(self.aio.status())

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
        return self._run(self.aio.vm_ssl_context())

    def __enter__(self) -> RemoteOllama:
        """Starts, and starts the idle monitor unless `idle_monitor=False` was given."""
        self._run(self.aio.__aenter__())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
