"""A credential store's map kept in memory, where the operator keeps a Secret pair and standalone its
state file: the stores under test are the product's own `CredentialStore`."""

from __future__ import annotations

from remote_ollama.engine.credentials import CredentialStore


class MemoryData:
    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.map = data

    async def read(self) -> dict[str, str] | None:
        return self.map

    async def write(self, data: dict[str, str]) -> None:
        self.map = data


def memory_store(data: dict[str, str] | None = None) -> CredentialStore:
    return CredentialStore(MemoryData(data))
