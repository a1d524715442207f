"""The credentials to talk to a VM with: where they are kept (`CredentialStore`), the record of the
instance they were made for, and the VM's certificate pinned at the first contact."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from remote_ollama.core.observed import ObservedInstance
from remote_ollama.engine.volume_record import RECORD_VOLUMES, VolumeRecord, volumes_data, volumes_from
from remote_ollama.spec.names import VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.pki import KEY_CA, VMCredentials, pem_of, vm_certificate_problem

log = logging.getLogger("remote_ollama.engine.reconciler")

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class InstanceRecord:
    """Which instance this store's owner created, kept beside its credentials where tenants cannot
    point it elsewhere (status is only a mirror). The creation token, a random label written before
    the create call, finds the instance after a crash between the create and recording its id:
    nobody else can know it before our instance shows it. The zone it was made in (and follows a
    capacity fallback's move) is where the operator looks for it, whatever status.placement says;
    None in a record of an older version (status.placement is then believed, as it was)."""

    instance_id: str | None = None
    creation_token: str | None = None
    zone: str | None = None

    def to_data(self) -> dict[str, str]:
        out = {
            RECORD_INSTANCE_ID: self.instance_id or "",
            RECORD_CREATION_TOKEN: self.creation_token or "",
            RECORD_ZONE: self.zone or "",
        }
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_data(cls, data: dict[str, str] | None) -> InstanceRecord:
        data = data or {}
        return cls(
            data.get(RECORD_INSTANCE_ID) or None,
            data.get(RECORD_CREATION_TOKEN) or None,
            data.get(RECORD_ZONE) or None,
        )

    @property
    def empty(self) -> bool:
        return self.instance_id is None and self.creation_token is None


RECORD_INSTANCE_ID = "instance-id"
RECORD_CREATION_TOKEN = "creation-token"
RECORD_ZONE = "instance-zone"
RECORD_KEYS = (RECORD_INSTANCE_ID, RECORD_CREATION_TOKEN, RECORD_ZONE)
# The models' /api/show answers are kept (state file, status.ollama.show) up to this size in all:
# the status object must stay far below etcd's 1.5 MiB, whatever a VM sends.
MAX_DESCRIPTIONS = 256 * 1024


class StoredData(Protocol):
    """Where a store's string map lives (the operator's Secret pair, the standalone state file): one
    map holds the credentials, the instance record and the model volumes' record."""

    async def read(self) -> dict[str, str] | None: ...

    async def write(self, data: dict[str, str]) -> None: ...


@dataclass
class CredentialStore:
    """The per-VM CA, certificate and API key, and the record of the instance they were made for,
    kept in one map wherever `data` keeps it."""

    data: StoredData

    async def load(self) -> VMCredentials | None:
        data = await self.data.read()
        try:
            return VMCredentials.from_secret_data(data) if data else None
        except KeyError:  # a map with a record or volumes but no credentials
            return None

    async def save(self, creds: VMCredentials, record: InstanceRecord) -> None:
        kept = volumes_data(volumes_from(await self.data.read()))
        await self.data.write({**creds.to_secret_data(), **record.to_data(), **kept})

    async def record(self) -> InstanceRecord | None:
        """The record; None when the store holds no credentials (nothing was ever created)."""
        data = await self.data.read()
        return InstanceRecord.from_data(data) if data and data.get(KEY_CA) else None

    async def keep(self, record: InstanceRecord) -> None:
        """Replace the record, keeping the credentials."""
        data = {k: v for k, v in (await self.data.read() or {}).items() if k not in RECORD_KEYS}
        await self.data.write({**data, **record.to_data()})

    async def moved(self, zone: str) -> None:
        """A capacity fallback moved on to `zone`: the record follows (its next create is made there)."""
        record = await self.record()
        if record is not None and record.zone != zone:
            await self.keep(dataclasses.replace(record, zone=zone))

    async def volumes(self) -> dict[str, VolumeRecord]:
        """The model volumes' record, per zone (kept across `save`: a volume outlives its VMs)."""
        return volumes_from(await self.data.read())

    async def keep_volumes(self, volumes: Mapping[str, VolumeRecord]) -> None:
        """Replace the model volumes' record, keeping everything else."""
        current = await self.data.read() or {}
        kept = {**{k: v for k, v in current.items() if k != RECORD_VOLUMES}, **volumes_data(volumes)}
        if kept != current:
            await self.data.write(kept)


async def pinned_credentials(
    store: CredentialStore, enrolling: asyncio.Lock, instance: ObservedInstance
) -> VMCredentials | None:
    """The credentials to talk to `instance` with; None while that cannot be done yet.

    At the first contact with a VM we created, its certificate is pinned (trust on first use):
    only for the instance id recorded at create, at the IP the cloud API reports for it, which
    nobody else can answer on while our instance holds it. From then on only that certificate
    is trusted, so a VM showing another one (a look-alike, a spoof after a destroy) is refused.
    """
    creds = await store.load()
    if creds is None or creds.pinned:
        return creds
    async with enrolling:
        creds = await store.load()
        if creds is None or creds.pinned:
            return creds
        record = await store.record()
        if record is None or record.instance_id != instance.id or not instance.public_ip:
            return None
        der = await first_contact(instance.public_ip, creds)
        if der is None:
            return None  # not listening yet: asked again later
        problem = vm_certificate_problem(der)
        if problem is not None:
            log.warning("instance %s: its TLS certificate is not pinned: %s", instance.id, problem)
            return None
        pinned = creds.pinned_to(pem_of(der))
        await store.save(pinned, record)
        log.info(
            "instance %s: its TLS certificate is pinned (first contact at %s)",
            instance.id,
            instance.public_ip,
        )
        return pinned


async def first_contact(ip: str, creds: VMCredentials, port: int = VM_PORT) -> bytes | None:
    """The certificate (DER) the TLS server at ip:port shows to our client certificate; None when
    nothing answers. Only a handshake: nothing is sent over this unverified connection."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(
                ip, port, ssl=creds.enrolment_context(), server_hostname=VM_TLS_SERVER_NAME
            )
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        tls = writer.get_extra_info("ssl_object")
        return tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT):
                await writer.wait_closed()
