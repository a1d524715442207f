"""What a simulated VM takes from its user-data, as cloud-init would: the files vm/cloudinit.py
writes, at the paths it names (the client CA, the optional API key, the models, the Ollama unit),
and the TLS key and certificate its key script makes at first boot (`make_vm_identity`, the same
certificate; a user-data of a VM made before enrolment carries them instead)."""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from dataclasses import dataclass
from typing import Any

import yaml

from remote_ollama.vm.ollama_release import DEFAULT_OLLAMA_VERSION, version_of
from remote_ollama.vm.paths import (
    API_KEY_PATH,
    CA_PATH,
    MODELS_PATH,
    OLLAMA_UNIT_PATH,
    TLS_CERT_PATH,
    TLS_KEY_PATH,
    TLS_KEY_SCRIPT_PATH,
)
from remote_ollama.vm.pki import make_vm_identity
from remote_ollama.vm.volume import VOLUME_PATH

_IMAGE_RE = re.compile(r"^ExecStart=/usr/bin/docker run .* (\S+)\s*$", re.MULTILINE)
_PARALLEL_RE = re.compile(r'"-e" "OLLAMA_NUM_PARALLEL=([0-9]{1,4})"')


class UserDataError(ValueError):
    """The user-data does not set up the VM contract; the VM boots but serves nothing."""


@dataclass(frozen=True)
class VMConfig:
    cert_pem: bytes
    key_pem: bytes
    api_key: str | None  # the optional extra header check
    models: tuple[str, ...]
    ollama_version: str = DEFAULT_OLLAMA_VERSION  # of the image the Ollama unit runs
    # clients must present a certificate issued by this CA (None: a VM of the pre-mutual-TLS contract)
    client_ca_pem: bytes | None = None
    image: str = ""  # the Ollama image the unit runs
    num_parallel: int | None = None  # OLLAMA_NUM_PARALLEL of the Ollama unit's -e arguments, if any
    volume_id: str | None = None  # the model volume the setup mounts (spec.coldStart.modelVolume)


def _decode_file(entry: dict[str, Any]) -> bytes:
    content = entry.get("content", "")
    raw = content.encode() if isinstance(content, str) else bytes(content or b"")
    encoding = str(entry.get("encoding", "text/plain")).lower()
    if encoding in ("b64", "base64", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        raw = base64.b64decode(raw)
    if encoding.startswith(("gz", "gzip")):
        raw = gzip.decompress(raw)
    return raw


def parse_user_data(user_data: str | None) -> VMConfig:
    """The first boot: read the files the VM contract needs from base64 `#cloud-config` user-data,
    and make the server key and certificate as its key script does."""
    if not user_data:
        raise UserDataError("no user-data")
    try:
        raw = base64.b64decode(user_data, validate=True)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode()
    except (binascii.Error, ValueError, OSError) as exc:
        raise UserDataError(f"user-data is not base64 text: {exc}") from exc
    if not text.startswith("#cloud-config"):
        raise UserDataError("user-data is not #cloud-config")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserDataError(f"user-data YAML does not parse: {exc}") from exc
    if not isinstance(doc, dict):
        raise UserDataError("#cloud-config is not a mapping")
    files: dict[str, bytes] = {}
    for entry in doc.get("write_files") or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            try:
                files[entry["path"]] = _decode_file(entry)
            except (binascii.Error, ValueError, OSError) as exc:
                raise UserDataError(f"write_files {entry['path']}: cannot decode: {exc}") from exc
    # the CA (mutual TLS), or, from a VM of the older contract, the API key alone
    auth = CA_PATH if CA_PATH in files or API_KEY_PATH not in files else API_KEY_PATH
    if TLS_KEY_PATH not in files and b"openssl req" in files.get(TLS_KEY_SCRIPT_PATH, b""):
        cert, key = make_vm_identity()
        files[TLS_CERT_PATH], files[TLS_KEY_PATH] = cert.encode(), key.encode()
    missing = [p for p in (TLS_CERT_PATH, TLS_KEY_PATH, auth, MODELS_PATH) if p not in files]
    if missing:
        raise UserDataError(f"write_files lacks {', '.join(missing)}")
    api_key = files[API_KEY_PATH].decode().strip() if API_KEY_PATH in files else None
    if api_key == "":
        raise UserDataError(f"{API_KEY_PATH} is empty")
    models = tuple(m.strip() for m in files[MODELS_PATH].decode().splitlines() if m.strip())
    unit = files.get(OLLAMA_UNIT_PATH, b"").decode(errors="replace")
    found = _IMAGE_RE.search(unit)
    version = version_of(found[1]) if found else DEFAULT_OLLAMA_VERSION
    parallel = _PARALLEL_RE.search(unit)
    return VMConfig(
        files[TLS_CERT_PATH],
        files[TLS_KEY_PATH],
        api_key,
        models,
        version,
        files.get(CA_PATH),
        found[1] if found else "",
        max(1, int(parallel[1])) if parallel else None,
        files[VOLUME_PATH].decode().strip() or None if VOLUME_PATH in files else None,
    )
