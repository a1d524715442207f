"""HTTP plumbing shared by the simulated Ollama's three API flavours: errors, bodies, CORS, streams."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from aiohttp import web

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

_DEFAULT_ORIGIN_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
_DEFAULT_ORIGIN_SCHEMES = ("app://", "file://", "tauri://", "vscode-webview://", "vscode-file://")
_CORS_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
_CORS_HEADERS = (
    "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Origin,Content-Length,"
    "X-Stainless-Lang,X-Stainless-Package-Version,X-Stainless-OS,X-Stainless-Arch,X-Stainless-Runtime,"
    "X-Stainless-Runtime-Version,X-Stainless-Async,X-Stainless-Retry-Count,X-Stainless-Timeout,"
    "Anthropic-Version,X-Api-Key"
)


class BadRequest(Exception):
    """A request the handler rejects; rendered in the flavour of the API it came to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(value), status=status, content_type="application/json")


def text_response(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain", charset="utf-8")


def native_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error"}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(status, "api_error"),
            "param": None,
            "code": None,
        }
    }


def openai_error(status: int, message: str) -> web.Response:
    return json_response(openai_error_body(status, message), status)


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    """As Ollama 0.17.4's anthropic.NewError: with a fresh `request_id`."""
    kind = _ANTHROPIC_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_{secrets.token_hex(12)}",
    }


def anthropic_error(status: int, message: str) -> web.Response:
    return json_response(anthropic_error_body(status, message), status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """Decode a JSON object body with Go-like messages (`missing request body`, `invalid character`)."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest(400, "missing request body")
    try:
        value = json.loads(raw)
    except UnicodeDecodeError as exc:  # Go's decoder sees an invalid byte, as for any bad character
        raise BadRequest(400, "invalid character looking for beginning of value") from exc
    except json.JSONDecodeError as exc:
        bad = raw.decode(errors="replace")[exc.pos : exc.pos + 1] if exc.pos < len(raw) else ""
        message = f"invalid character '{bad}' looking for beginning of value" if bad else "unexpected EOF"
        raise BadRequest(400, message) from exc
    if not isinstance(value, dict):
        raise BadRequest(
            400, f"json: cannot unmarshal {type(value).__name__} into Go value of type api.Request"
        )
    return value


def model_not_found(name: str) -> BadRequest:
    return BadRequest(404, f"model '{name}' not found")


def origin_allowed(origin: str, host: str, extra: list[str]) -> bool:
    """Ollama's default CORS allow-list plus `OLLAMA_ORIGINS`-style extras (`*` wildcards)."""
    if origin in (f"http://{host}", f"https://{host}"):
        return True  # same origin: not a CORS request at all
    for scheme in ("http://", "https://"):
        for name in _DEFAULT_ORIGIN_HOSTS:
            base = f"{scheme}{name}"
            if origin == base or re.fullmatch(re.escape(base) + r":\d+", origin):
                return True
    if origin.startswith(_DEFAULT_ORIGIN_SCHEMES):
        return True
    for pattern in extra:
        if pattern == "*" or re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), origin):
            return True
    return False


def cors_preflight(origin: str) -> web.Response:
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": _CORS_METHODS,
            "Access-Control-Allow-Headers": _CORS_HEADERS,
            "Access-Control-Max-Age": "43200",
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )


def stream_response(content_type: str) -> web.StreamResponse:
    """A chunked, uncompressed streaming response (Ollama never compresses)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.enable_chunked_encoding()
    if content_type == SSE:
        response.headers["Cache-Control"] = "no-cache"
    return response


def sse_event(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    payload = data if isinstance(data, bytes) else dumps(data)
    return head + b"data: " + payload + b"\n\n"
