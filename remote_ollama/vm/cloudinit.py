"""Render the `#cloud-config` user-data that turns a stock Ubuntu VM into the VM of docs/design.md section 5.

The VM runs a pinned Ollama container on 127.0.0.1:11434 with the GPU, and nginx on 0.0.0.0:11435
terminating TLS 1.3 with a server key and self-signed certificate the VM makes itself at first boot
(`TLS_KEY_SCRIPT`, run by the setup script; the operator pins that certificate at first contact),
requiring a client certificate issued by the per-VM CA (the proxy's): mutual TLS, no bearer
secret. The user-data carries public material only: the CA certificate, the scripts and the
configuration (under /etc/remote-ollama, which the simulated VM reads too); no private key, ever.
Containers cannot reach the metadata server (a DOCKER-USER rule), the setup script echoes nothing,
and nginx shows no version. The optional EXOSCALE_OLLAMA_KEY, when a user sets one, is checked in
addition (exact, case-sensitive), documented as weaker: it sits in user-data. This module only ever
sees the VM's own credentials, never the Exoscale ones.

The setup reports itself: every step (nginx, driver, docker, image, ollama, each `model:<name>` with
bytes done/total) is recorded by a small Python tool (`STEP_TOOL`; python3 is on every cloud-init
image) in the setup status document, which nginx serves at SETUP_STATUS_PATH behind the same mutual
TLS before Ollama is up (shape: remote_ollama.core.setup). A failed step records the last log lines
(long opaque strings and PEM blocks redacted). The document names its run (a hash of this VM's own
certificate), so a copy left on a template's disk is never taken for this VM's. Every step checks
first whether what it installs is there (`present`): a VM booted from a baked disk skips them; its
TLS key is made anew (a new instance id), never the baked VM's.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from remote_ollama.spec.names import (
    PROXY_PORT,
    SETUP_HASH_LENGTH,
)

from .ollama_release import DEFAULT_OLLAMA_IMAGE, env_problems
from .paths import (
    API_KEY_CHECK_PATH,
    API_KEY_PATH,
    CA_PATH,
    IMAGE_PATH,
    METADATA_SERVER,
    MODELS_PATH,
    MODELS_UNIT_PATH,
    NGINX_SITE_PATH,
    OLLAMA_UNIT_PATH,
    PULL_PATH,
    SETUP_PATH,
    STEP_TOOL_PATH,
    TLS_KEY_SCRIPT_PATH,
)
from .pki import VMCredentials
from .scripts import PULL_SCRIPT, SETUP_SCRIPT, STEP_TOOL, TLS_KEY_SCRIPT
from .services import KEY_CHECK, KEY_CHECK_INCLUDE, MODELS_UNIT, NGINX_SITE, OLLAMA_UNIT
from .volume import MODEL_DIR, VOLUME_PATH, VOLUME_SCRIPT, VOLUME_SCRIPT_PATH

OLLAMA_IMAGE = DEFAULT_OLLAMA_IMAGE  # spec.ollama.image / OLLAMA_IMAGE override it
MAX_USER_DATA_B64 = 32768

# Characters nginx takes literally inside a quoted map key; a generated key (token_urlsafe) always fits.
_API_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.+/=]{16,512}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$")


class UserDataError(ValueError):
    """The user-data cannot be rendered or is too large for Exoscale."""


def setup_hash(ollama_image: str | None = None) -> str:
    """What a baked template holds and a change of which needs a new one (spec.coldStart): the driver
    and toolkit steps, the Ollama image, the nginx config, the units and the recorder; not the models
    (a template boot pulls what is missing) nor the per-VM files (certificates, key, models list)."""
    parts = (
        SETUP_SCRIPT,
        STEP_TOOL,
        PULL_SCRIPT,
        NGINX_SITE,
        OLLAMA_UNIT,
        MODELS_UNIT,
        VOLUME_SCRIPT,
        ollama_image or OLLAMA_IMAGE,
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:SETUP_HASH_LENGTH]


class _LiteralDumper(yaml.SafeDumper):
    """Dump multi-line strings as `|` blocks so the user-data stays readable on the VM."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_LiteralDumper.add_representer(str, _str_representer)


def _file(path: str, content: str, permissions: str) -> dict[str, Any]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def _check(creds: VMCredentials, models: Sequence[str], ollama_image: str, env: dict[str, str]) -> None:
    """Refuse what could break out of the files, units and nginx config it is written into."""
    problems = env_problems(env)
    if problems:
        raise UserDataError("invalid spec.ollama.env: " + "; ".join(problems))
    if creds.api_key is not None and not _API_KEY_RE.fullmatch(creds.api_key):
        raise UserDataError(
            "VM API key must be 16-512 characters from A-Z a-z 0-9 _ - . + / = (it is matched by nginx)"
        )
    bad = [m for m in models if not _MODEL_RE.fullmatch(m)]
    if bad or not models:
        raise UserDataError(f"invalid model names: {bad!r}" if bad else "at least one model is required")
    if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", ollama_image):
        raise UserDataError(f"invalid image reference: {ollama_image!r}")


def render_user_data(
    creds: VMCredentials,
    models: Sequence[str],
    *,
    ollama_image: str | None = None,
    ollama_env: Mapping[str, str] | None = None,
    volume_id: str | None = None,
) -> str:
    """The `#cloud-config` document for one resource's VM (see module docstring); `volume_id`: the
    model volume its setup mounts (vm/volume.py).

    `ollama_env` (spec.ollama.env) goes to the Ollama
    container as quoted `-e` arguments of the unit's ExecStart; `env_problems` refuses whatever
    could end the quotes or the line.
    """
    ollama_image = ollama_image or OLLAMA_IMAGE
    env = dict(ollama_env or {})
    _check(creds, models, ollama_image, env)
    env_args = "".join(f'"-e" "{name}={value}" ' for name, value in sorted(env.items()))
    site = NGINX_SITE.replace("{key_check}", KEY_CHECK_INCLUDE if creds.api_key else "")
    files = [_file(CA_PATH, creds.ca_pem, "0644")]  # public: the VM's own key is made on the VM
    if creds.api_key:  # EXOSCALE_OLLAMA_KEY: an extra, weaker check (it is in user-data)
        files.append(_file(API_KEY_PATH, creds.api_key + "\n", "0600"))
        files.append(_file(API_KEY_CHECK_PATH, KEY_CHECK.format(key=creds.api_key), "0600"))
    unit = OLLAMA_UNIT.format(
        port=PROXY_PORT, image=ollama_image, env=env_args, metadata=METADATA_SERVER, model_dir=MODEL_DIR
    )
    files += [
        _file(MODELS_PATH, "".join(f"{m}\n" for m in models), "0644"),
        _file(IMAGE_PATH, ollama_image + "\n", "0644"),
        _file(NGINX_SITE_PATH, site, "0644"),
        _file(OLLAMA_UNIT_PATH, unit, "0644"),
        _file(MODELS_UNIT_PATH, MODELS_UNIT, "0644"),
        _file(PULL_PATH, PULL_SCRIPT, "0755"),
        _file(TLS_KEY_SCRIPT_PATH, TLS_KEY_SCRIPT, "0755"),
        _file(STEP_TOOL_PATH, STEP_TOOL, "0755"),
        _file(VOLUME_SCRIPT_PATH, VOLUME_SCRIPT, "0755"),
        _file(SETUP_PATH, SETUP_SCRIPT, "0755"),
    ]
    if volume_id is not None:
        if not re.fullmatch(r"[0-9a-f-]{36}", volume_id):
            raise UserDataError(f"invalid volume id: {volume_id!r}")
        files.append(_file(VOLUME_PATH, volume_id + "\n", "0644"))
    doc: dict[str, Any] = {
        "package_update": True,
        "packages": ["docker.io", "nginx", "curl", "gnupg", "ca-certificates", "ubuntu-drivers-common"],
        "write_files": files,
        "runcmd": [[SETUP_PATH]],
    }
    body = yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False, width=1000)
    return "#cloud-config\n" + body


def encode_user_data(text: str) -> str:
    """Base64 as Exoscale's `user-data` wants it; refuses what Exoscale would reject (> 32768 chars)."""
    encoded = base64.b64encode(text.encode()).decode("ascii")
    if len(encoded) > MAX_USER_DATA_B64:
        raise UserDataError(
            f"user-data is {len(encoded)} base64 characters; Exoscale accepts at most {MAX_USER_DATA_B64} "
            "(fewer or shorter model names would help)"
        )
    return encoded
