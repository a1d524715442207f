"""pytest fixtures for the real Ollama (imported by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from .server import RealOllama, build_ollama


@pytest.fixture(scope="session")
def real_ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOllama]:
    """`ollama serve` 0.17.4 on loopback with the tiny model created (`tiny:latest`)."""
    server = RealOllama(tmp_path_factory.mktemp("ollama"), build_ollama())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def ollama_http() -> AsyncIterator[aiohttp.ClientSession]:
    """The comparisons' client: the tiny model on a busy machine may take long to answer."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as session:
        yield session
