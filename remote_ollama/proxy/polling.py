"""The routes clients poll: they never wake the VM and never count as activity.

With no VM answering they are still answered, because clients list models and ask the version on
connect (`ollama list`, `ollama -v`, Open WebUI) and a chat UI that sees an error never lets its
user pick a model, so nothing would ever wake the VM. Such answers carry
`X-Remote-Ollama-Cached: true`:
- `/api/version`: what the VM last answered, else the version of the image it runs;
- `/api/tags`: what the VM last answered, else the spec's models by name (no details yet);
- `/api/ps`: `{"models": []}`, since no VM means nothing is loaded (a stale list would lie);
- `/`: "Ollama is running".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

CACHED_HEADER = "X-Remote-Ollama-Cached"
REMEMBERED_PATHS = frozenset({"/api/version", "/api/tags"})
POLLING_PATHS = REMEMBERED_PATHS | {"/api/ps", "/"}
RUNNING = "Ollama is running"


def is_polling(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and path in POLLING_PATHS


def full_name(model: str) -> str:
    """Ollama lists a model pulled without a tag as `name:latest`."""
    tail = model.rsplit("/", 1)[-1]
    return model if ":" in tail else f"{model}:latest"


def listed(models: Iterable[str]) -> dict[str, Any]:
    """An /api/tags body naming `models`, before any VM has said more about them.

    `modified_at` is left out: Ollama's CLI then prints "Never", clients' models take it as absent.
    """
    entries = [
        {"name": full_name(m), "model": full_name(m), "size": 0, "digest": "", "details": {}} for m in models
    ]
    return {"models": entries}


@dataclass(frozen=True)
class Seen:
    body: bytes
    content_type: str


class PollingCache:
    def __init__(self, models: Iterable[str] = (), version: str = "") -> None:
        self._seen: dict[str, Seen] = {}
        self._fallback: dict[str, bytes] = {}
        self.configure(models, version)

    def configure(self, models: Iterable[str], version: str) -> None:
        """What to answer before the VM has: the spec's models, the version of its Ollama image."""
        self._fallback = {
            "/api/tags": json.dumps(listed(models)).encode(),
            "/api/version": json.dumps({"version": version}).encode(),
            "/api/ps": b'{"models":[]}',
        }

    def remember(self, path: str, body: bytes, content_type: str = "application/json") -> None:
        if path in REMEMBERED_PATHS:
            self._seen[path] = Seen(body, content_type)

    def learn(self, answered: Mapping[str, Any]) -> None:
        """Take what the VM answered, as the lifecycle's probe saw it (`status.ollama` in operator
        mode, so a restarted proxy answers like the VM did): `{"version": …, "models": [...]}`."""
        if isinstance(answered.get("version"), str) and answered["version"]:
            self.remember("/api/version", json.dumps({"version": answered["version"]}).encode())
        if isinstance(answered.get("models"), list):
            self.remember("/api/tags", json.dumps({"models": answered["models"]}).encode())

    def seen(self, path: str) -> bytes | None:
        """What the VM itself last answered on `path` (None: nothing yet)."""
        seen = self._seen.get(path)
        return seen.body if seen else None

    def answer(self, path: str) -> web.Response:
        """The answer for `path` while no VM answers it."""
        headers = {CACHED_HEADER: "true"}
        if path == "/":
            return web.Response(text=RUNNING, headers=headers)
        seen = self._seen.get(path) or Seen(self._fallback[path], "application/json; charset=utf-8")
        return web.Response(body=seen.body, headers={"Content-Type": seen.content_type, **headers})
