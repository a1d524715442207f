"""Standalone's credential map: the per-VM credentials, the instance record and the model volumes'
record, in the state file."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .controller import LocalController


class StateFileData:
    """The map under standalone's `CredentialStore`: the state file's `credentials`."""

    def __init__(self, controller: LocalController):
        self._c = controller

    async def read(self) -> dict[str, str] | None:
        return self._c.saved.credentials

    async def write(self, data: dict[str, str]) -> None:
        self._c.saved.credentials = data
        self._c.persist()
