"""The proxy's aiohttp application: Ollama's routes passed through, plus its own few paths.

Every method and path is forwarded (a catch-all), so new Ollama routes work unchanged. The proxy's
own paths (`/status`, `/healthz`, `/readyz`, `/metrics`) are outside Ollama's `/api` and `/v1`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from remote_ollama.proxy.guard import is_loopback_address
from remote_ollama.proxy.handlers import Proxy
from remote_ollama.proxy.interfaces import ActivitySink, ProxySettings, UpstreamResolver
from remote_ollama.proxy.routing import Router

PROXY_KEY = web.AppKey("proxy", Proxy)


def make_proxy_app(
    resolver: UpstreamResolver, sink: ActivitySink, settings: ProxySettings, *, router: Router | None = None
) -> web.Application:
    """The proxy as an aiohttp app; serve it with `run_proxy`/`start_proxy` (they cancel handlers
    of clients that disconnect, which is what stops the VM's generation)."""
    proxy = Proxy(resolver, sink, settings, router)
    app = web.Application(client_max_size=1 << 62, handler_args={"tcp_keepalive": True})
    app[PROXY_KEY] = proxy
    edge = proxy.at_edge
    app.router.add_get("/status", edge(proxy.status))
    app.router.add_get("/healthz", edge(proxy.healthz))
    app.router.add_get("/readyz", edge(proxy.readyz))
    app.router.add_get("/metrics", edge(proxy.prometheus))
    app.router.add_route("*", "/{tail:.*}", edge(proxy.forward))
    app.on_response_prepare.append(proxy.on_prepare)
    app.cleanup_ctx.append(proxy.lifetime)
    return app


async def start_proxy(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 60.0
) -> tuple[web.AppRunner, int]:
    """Serve `app`; returns the runner (call `cleanup()`) and the bound port (useful with port 0).

    Headers must arrive within `header_timeout` (aiohttp's keep-alive timer also runs from the
    connection's start); on loopback, foreign Host headers are refused (DNS rebinding)."""
    proxy = app[PROXY_KEY]
    proxy.guard_host = is_loopback_address(host)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=proxy.settings.header_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = runner.addresses
    bound = int(sockets[0][1]) if sockets else port
    return runner, bound


async def run_proxy(app: web.Application, host: str, port: int) -> None:
    """Serve until cancelled."""
    runner, _ = await start_proxy(app, host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
