"""Operator-mode proxy: who may use it and what they may do, followed live from the resource.

`spec.clientAuth.secretRef.name` names a Secret in the resource's namespace whose every data value
is one accepted Bearer key. The proxy reads it by name (its Role grants `get` on that name only)
every `interval` seconds, so a rotated key is picked up within a minute without a restart and
without relying on a kubelet-refreshed volume. `spec.modelManagement` and
`spec.wake.maxHeldBodyBytes` apply as soon as the resource changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from typing import Any

from remote_ollama.proxy.handlers import Proxy
from remote_ollama.proxy.interfaces import proxy_settings
from remote_ollama.proxy.runloop import wait_at_most
from remote_ollama.spec.parse import spec_or_defaults

from .api import KubeAPI, KubeError, path_for

log = logging.getLogger("remote_ollama.proxy")
KEY_REFRESH_SECONDS = 20.0


def client_secret_name(spec: dict[str, Any]) -> str:
    ref = ((spec.get("clientAuth") or {}).get("secretRef") or {}) if isinstance(spec, dict) else {}
    name = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) else ""


def keys_of(secret: dict[str, Any]) -> list[str]:
    """Every data value is one key (whitespace around it ignored; undecodable values skipped)."""
    keys = []
    for value in (secret.get("data") or {}).values():
        try:
            key = base64.b64decode(str(value), validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            continue
        if key:
            keys.append(key)
    return keys


class AccessFollower:
    def __init__(self, api: KubeAPI, namespace: str, proxy: Proxy, interval: float = KEY_REFRESH_SECONDS):
        self.api, self.namespace, self.proxy, self.interval = api, namespace, proxy, interval
        self.secret = ""
        self._kick = asyncio.Event()

    def apply_spec(self, spec: dict[str, Any]) -> None:
        """The resource changed: settings at once; the key Secret re-read now if its name changed."""
        self.proxy.settings = proxy_settings(spec_or_defaults(spec), os.environ, base=self.proxy.settings)
        name = client_secret_name(spec)
        self.proxy.keys.required = bool(name)
        if name != self.secret:
            self.secret = name
            self.proxy.keys.replace([])  # fail closed until the new Secret is read
            self._kick.set()

    async def refresh(self) -> None:
        if not self.secret:
            self.proxy.keys.replace([])
            return
        try:
            secret = await self.api.get(path_for("v1", "secrets", self.namespace, self.secret))
        except ValueError:  # "." or "..": no Secret can have that name
            log.warning("client keys Secret name %r is not a name: every request is refused", self.secret)
            self.proxy.keys.replace([])
            return
        except (KubeError, OSError, TimeoutError) as exc:
            log.warning("reading client keys Secret %s: %s (keeping the keys read last)", self.secret, exc)
            return
        keys = keys_of(secret or {})
        if not keys:
            log.warning("client keys Secret %s missing or empty: every request is refused", self.secret)
        self.proxy.keys.replace(keys)

    async def run(self) -> None:
        while True:
            self._kick.clear()
            await self.refresh()
            await wait_at_most(self._kick.wait(), self.interval)  # not wait_for: see runloop
