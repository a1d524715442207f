"""Requests the proxy answers without the VM because the VM could only refuse them.

A body that is not JSON, or a model the VM does not have (when the VM's list is known), would wake
a GPU for an error: the proxy answers with the error Ollama itself gives, at once, and it is not
activity. The error is shaped as the route's family expects (Ollama's `{"error": "…"}`, OpenAI's
and Anthropic's envelopes under `/v1`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from aiohttp import web

from remote_ollama.proxy.held_body import MAX_CONTAINERS

# Routes whose body names a model that must already be on the VM.
MODEL_ROUTES = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/show",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/responses",
    }
)
_REGISTRY_PREFIXES = ("registry.ollama.ai/library/", "library/")


def full_name(model: str) -> str:
    """The name Ollama lists a model under: `llama3` is `llama3:latest`, `library/x` is `x`."""
    name = model.strip()
    for prefix in _REGISTRY_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    tail = name.rsplit("/", 1)[-1]
    return name if ":" in tail else f"{name}:latest"


def is_json_route(method: str, path: str) -> bool:
    """Routes whose body Ollama decodes as JSON (blobs are raw bytes)."""
    if method == "DELETE":
        return path == "/api/delete"
    if method != "POST" or path.startswith("/api/blobs/"):
        return False
    return path.startswith(("/api/", "/v1/"))


def decode(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The body as a JSON object, or the message Ollama's Go decoder gives for it."""
    if not body.strip():
        return None, "missing request body"
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        return None, "invalid character looking for beginning of value"
    except json.JSONDecodeError as exc:
        text = body.decode(errors="replace")
        bad = text[exc.pos : exc.pos + 1] if exc.pos < len(text.rstrip()) else ""
        return None, f"invalid character '{bad}' looking for beginning of value" if bad else "unexpected EOF"
    if not isinstance(value, dict):
        return None, f"json: cannot unmarshal {type(value).__name__} into Go value of type api.Request"
    return value, None


def requested_model(parsed: dict[str, Any]) -> str:
    """The model a body names: `model`, else the older `name` (Ollama's CLI still sends it to show)."""
    for key in ("model", "name"):
        value = parsed.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def error_for(path: str, status: int, message: str) -> web.Response:
    """Ollama's error for `path`: native, or the OpenAI/Anthropic envelope of its `/v1` routes."""
    body: dict[str, Any]
    if path.startswith("/v1/messages"):
        kind = "invalid_request_error" if status == 400 else "not_found_error"
        body = {"type": "error", "error": {"type": kind, "message": message}}
    elif path.startswith("/v1/"):
        kind = "invalid_request_error" if status == 400 else "not_found_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    else:
        body = {"error": message}
    return web.json_response(body, status=status)


def model_not_found(path: str, model: str) -> web.Response:
    return error_for(path, 404, f"model '{model}' not found")


def refusal(path: str, body: bytes, known: Collection[str] | None) -> web.Response | None:
    """The error the VM would answer to this body, or None when only the VM can answer it.

    `known`: the full names of the VM's models, None while the VM has never listed them. A body
    too deep to parse cheaply (a JSON bomb) is left to the VM: building it would cost hundreds of MiB."""
    if body.count(b"[") + body.count(b"{") > MAX_CONTAINERS:
        return None
    parsed, problem = decode(body)
    if parsed is None:
        return error_for(path, 400, problem or "invalid request")
    model = requested_model(parsed)
    if known is not None and path in MODEL_ROUTES and model and full_name(model) not in known:
        return model_not_found(path, model)
    return None
