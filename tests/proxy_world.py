"""Test world for the proxy: the simulated Ollama behind a TLS front with a test CA that requires
the proxy's client certificate, plus the optional `X-Ollama-Key` check (as the VM's nginx with
EXOSCALE_OLLAMA_KEY set), and the proxy in front of it with in-process interfaces."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink
from remote_ollama.sandbox.ollama.server import make_ollama_app, ollama_state
from remote_ollama.sandbox.ollama.state import OllamaState
from remote_ollama.spec.names import API_KEY_HEADER, VM_TLS_SERVER_NAME
from remote_ollama.vm.pki import VMCredentials, generate_vm_credentials, make_vm_identity, server_ssl_context

API_KEY = "test-vm-key-0123456789"
MODELS = ["granite3.1-dense:8b", "nomic-embed-text:latest"]
T = TypeVar("T")


@dataclass(frozen=True)
class TestPKI:
    creds: VMCredentials  # the proxy's: the client certificate and the VM's pinned certificate
    vm_key_pem: str  # the VM's own key, which only the VM holds

    def client_context(self) -> ssl.SSLContext:
        """The proxy's side: trusts the pinned certificate, presents the client certificate."""
        return self.creds.client_context()

    def server_context(self) -> ssl.SSLContext:
        """The VM's nginx: TLS 1.3, its own key, a client certificate from the CA required."""
        return server_ssl_context(self.creds.cert_pem, self.vm_key_pem, self.creds.ca_pem)

    def write_client_files(self, folder: Path) -> tuple[Path, Path, Path]:
        """(trusted VM certificate, client cert, client key) as files, for a proxy in its own process."""
        paths = (folder / "vm.crt", folder / "client.crt", folder / "client.key")
        for path, text in zip(
            paths, (self.creds.cert_pem, self.creds.client_cert_pem, self.creds.client_key_pem), strict=True
        ):
            path.write_text(text)
            path.chmod(0o600)
        return paths


def make_pki() -> TestPKI:
    """A fresh CA and client certificate, and a VM's own key and certificate, pinned, made by the
    product's own PKI code."""
    cert, key = make_vm_identity()
    return TestPKI(generate_vm_credentials().pinned_to(cert), key)


def key_check(api_key: str) -> Any:
    """The VM's nginx: no valid X-Ollama-Key, no Ollama."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get(API_KEY_HEADER) != api_key:
            return web.json_response({"error": "invalid api key"}, status=401)
        return await handler(request)

    return check


@dataclass
class World:
    state: OllamaState
    upstream: Upstream
    resolver: LocalResolver
    sink: RecordingSink
    proxy: web.Application
    url: str  # the proxy, http://127.0.0.1:<port>
    upstream_url: str


_PKI: TestPKI | None = None


def pki() -> TestPKI:
    global _PKI
    if _PKI is None:
        _PKI = make_pki()
    return _PKI


@contextlib.asynccontextmanager
async def world(
    settings: ProxySettings | None = None, *, ready: bool = True, token_delay: float = 0.005, **kw: Any
) -> AsyncIterator[World]:
    """Simulated Ollama over TLS on 127.0.0.1, and the proxy in front of it (both on free ports)."""
    ollama = make_ollama_app(MODELS, token_delay=token_delay, **kw)
    ollama.middlewares.insert(0, key_check(API_KEY))
    up_runner = web.AppRunner(ollama, access_log=None)
    await up_runner.setup()
    site = web.TCPSite(up_runner, "127.0.0.1", 0, ssl_context=pki().server_context())
    await site.start()
    port = up_runner.addresses[0][1]
    upstream_url = f"https://127.0.0.1:{port}"
    upstream = Upstream(upstream_url, pki().client_context(), API_KEY, VM_TLS_SERVER_NAME)
    resolver = LocalResolver(upstream if ready else None)
    sink = RecordingSink()
    app = make_proxy_app(resolver, sink, settings or ProxySettings())
    runner, proxy_port = await start_proxy(app, "127.0.0.1", 0)
    try:
        yield World(
            ollama_state(ollama),
            upstream,
            resolver,
            sink,
            app,
            f"http://127.0.0.1:{proxy_port}",
            upstream_url,
        )
    finally:
        await runner.cleanup()
        await up_runner.cleanup()


class ThreadedWorld:
    """A `world` on its own event loop thread, for the official clients' blocking APIs."""

    def __init__(self, settings: ProxySettings | None = None, **kw: Any) -> None:
        self._settings, self._kw = settings, kw
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self.world: World | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> World:
        self._thread.start()
        started: asyncio.Future[World] = self.loop.create_future()

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with world(self._settings, **self._kw) as w:
                    started.set_result(w)
                    await self._stop.wait()
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        self._main = asyncio.run_coroutine_threadsafe(main(), self.loop)

        async def wait() -> World:
            return await started

        self.world = self.run(wait())
        return self.world

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._main.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def threaded_world(settings: ProxySettings | None = None, **kw: Any) -> Iterator[tuple[ThreadedWorld, World]]:
    tw = ThreadedWorld(settings, **kw)
    with tw as w:
        yield tw, w
