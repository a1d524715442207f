"""pytest fixtures for the real Ollama (imported by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

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
