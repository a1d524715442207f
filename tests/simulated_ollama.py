"""A simulated Ollama served on loopback for a test: `serve(app)` yields its URL and state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from remote_ollama.sandbox.ollama.server import ollama_state
from remote_ollama.sandbox.ollama.state import OllamaState


class Sim:
    """A running simulator: its URL and its state."""

    def __init__(self, url: str, state: OllamaState) -> None:
        self.url = url
        self.state = state


@contextlib.asynccontextmanager
async def serve(app: web.Application, *, handler_cancellation: bool = False) -> AsyncIterator[Sim]:
    """Run `app` on loopback the way the VM does (an `AppRunner`, by default without cancellation)."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Sim(f"http://{host}:{port}", ollama_state(app))
    finally:
        await runner.cleanup()
