"""The routes clients poll: they never wake the VM and never count as activity.

With no VM answering they are still answered, because clients list models and ask the version on
connect (`ollama list`, `ollama -v`, Open WebUI) and a chat UI that sees an error never lets its
user pick a model, so nothing would ever wake the VM. Such answers carry
`X-Remote-Ollama-Cached: true`:
- `/api/version`: what the VM last answered, else the version of the image it runs;
- `/api/tags`: what the VM last answered, else no model: Ollama's CLI needs each listed model's
  digest (`ollama list` prints `digest[:12]`), which only the VM knows;
- `/api/ps`: `{"models": []}`, since no VM means nothing is loaded (a stale list would lie);
- `/v1/models`, `/v1/models/{id}`: the VM's models as OpenAI lists them, else the spec's models
  by id (no `created` yet);
- `/`: "Ollama is running".
`POST /api/show` is answered from the VM's last description of the model (`show`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from remote_ollama.proxy.offline import full_name, model_not_found

CACHED_HEADER = "X-Remote-Ollama-Cached"
REMEMBERED_PATHS = frozenset({"/api/version", "/api/tags"})
POLLING_PATHS = REMEMBERED_PATHS | {"/api/ps", "/", "/v1/models"}
MODELS_PREFIX = "/v1/models/"
RUNNING = "Ollama is running"
# The answer to /api/show for a model the VM has not described yet (documented in the README).
NOT_YET_SEEN = (
    "not described yet: the remote instance has not run since this model was configured; "
    "its details appear once it has"
)


def is_polling(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and (path in POLLING_PATHS or path.startswith(MODELS_PREFIX))


def openai_entry(name: str, modified_at: object = None) -> dict[str, Any]:
    """One model as Ollama's `/v1/models` lists it (`created` only when the VM said when)."""
    entry: dict[str, Any] = {"id": name, "object": "model"}
    if isinstance(modified_at, str) and modified_at:
        with contextlib.suppress(ValueError):
            entry["created"] = int(datetime.fromisoformat(modified_at.replace("Z", "+00:00")).timestamp())
    entry["owned_by"] = name.split("/")[0] if "/" in name else "library"
    return entry


@dataclass(frozen=True)
class Seen:
    body: bytes
    content_type: str


class PollingCache:
    def __init__(self, models: Iterable[str] = (), version: str = "") -> None:
        self._seen: dict[str, Seen] = {}
        self._fallback: dict[str, bytes] = {}
        self._configured: tuple[str, ...] = ()
        self._shows: dict[str, bytes] = {}  # full model name -> the VM's last /api/show answer
        self.configure(models, version)

    def configure(self, models: Iterable[str], version: str) -> None:
        """What to answer before the VM has: no model listed, the version of its Ollama image."""
        self._configured = tuple(full_name(m) for m in models)
        self._fallback = {
            "/api/tags": b'{"models":[]}',
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
        shows = answered.get("show")
        if isinstance(shows, dict):
            self._shows = {
                full_name(k): json.dumps(v).encode() for k, v in shows.items() if isinstance(v, dict)
            }

    def _vm_models(self) -> list[dict[str, Any]] | None:
        """The VM's last /api/tags entries; None while it has never listed them."""
        body = self.seen("/api/tags")
        if body is None:
            return None
        try:
            models = json.loads(body).get("models")
        except (ValueError, AttributeError):
            return None
        return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else None

    def known_models(self) -> frozenset[str] | None:
        """Full names of the VM's models; None while the VM has never listed them."""
        models = self._vm_models()
        if models is None:
            return None
        return frozenset(full_name(str(m.get("name") or m.get("model") or "")) for m in models)

    def _openai_models(self) -> list[dict[str, Any]]:
        models = self._vm_models()
        if models is None:
            return [openai_entry(name) for name in self._configured]
        return [openai_entry(str(m.get("name") or m.get("model")), m.get("modified_at")) for m in models]

    def show(self, model: str) -> web.Response:
        """/api/show while no VM answers: its last description, else a 404 when the VM's list lacks
        the model, else a 200 saying it is not described yet (no field it cannot know)."""
        headers = {CACHED_HEADER: "true"}
        seen = self._shows.get(full_name(model))
        if seen is not None:
            return web.Response(body=seen, headers=headers, content_type="application/json")
        known = self.known_models()
        if known is not None and full_name(model) not in known:
            return model_not_found("/api/show", model)
        # `model_info` is required by the ollama Python client; empty: nothing is known yet
        body = {"model_info": {}, "remote_ollama": {"status": NOT_YET_SEEN}}
        return web.json_response(body, headers=headers)

    def seen(self, path: str) -> bytes | None:
        """What the VM itself last answered on `path` (None: nothing yet)."""
        seen = self._seen.get(path)
        return seen.body if seen else None

    def answer(self, path: str) -> web.Response:
        """The answer for `path` while no VM answers it."""
        headers = {CACHED_HEADER: "true"}
        if path == "/":
            return web.Response(text=RUNNING, headers=headers)
        if path == "/v1/models":
            return web.json_response({"object": "list", "data": self._openai_models()}, headers=headers)
        if path.startswith(MODELS_PREFIX):
            name = path[len(MODELS_PREFIX) :]
            for entry in self._openai_models():
                if full_name(entry["id"]) == full_name(name):
                    return web.json_response(entry, headers=headers)
            return model_not_found(path, name)
        seen = self._seen.get(path) or Seen(self._fallback[path], "application/json; charset=utf-8")
        return web.Response(body=seen.body, headers={"Content-Type": seen.content_type, **headers})
