"""Standalone's credential store: the per-VM credentials and the instance record in the state file."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from remote_ollama.engine.credentials import RECORD_KEYS, CredentialStore, InstanceRecord
from remote_ollama.engine.volume_record import RECORD_VOLUMES, VolumeRecord, volumes_data, volumes_from
from remote_ollama.vm.pki import VMCredentials

log = logging.getLogger("remote_ollama")


if TYPE_CHECKING:
    from .controller import LocalController


class FileCredentialStore(CredentialStore):
    def __init__(self, controller: LocalController):
        self._c = controller

    async def load(self) -> VMCredentials | None:
        return self._c.files.credentials(self._c.saved)

    async def save(self, creds: VMCredentials, record: InstanceRecord) -> None:
        kept = volumes_data(volumes_from(self._c.saved.credentials))
        self._c.saved.credentials = {**creds.to_secret_data(), **record.to_data(), **kept}
        self._c.persist()

    async def record(self) -> InstanceRecord | None:
        data = self._c.saved.credentials
        return InstanceRecord.from_data(data) if data else None

    async def keep(self, record: InstanceRecord) -> None:
        data = {k: v for k, v in (self._c.saved.credentials or {}).items() if k not in RECORD_KEYS}
        self._c.saved.credentials = {**data, **record.to_data()}
        self._c.persist()

    async def volumes(self) -> dict[str, VolumeRecord]:
        return volumes_from(self._c.saved.credentials)

    async def keep_volumes(self, volumes: Mapping[str, VolumeRecord]) -> None:
        data = {k: v for k, v in (self._c.saved.credentials or {}).items() if k != RECORD_VOLUMES}
        self._c.saved.credentials = {**data, **volumes_data(volumes)} or None
        self._c.persist()
