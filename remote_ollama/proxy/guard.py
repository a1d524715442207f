"""What the proxy refuses before any work: unknown clients, foreign Hosts, model management,
oversized bodies it would have to hold in memory.

Each refusal is Ollama-shaped (`{"error": ...}`) so clients show the reason.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import socket
from collections.abc import Iterable, Mapping

from aiohttp import web

# Only these, and only for GET/HEAD, are answered without a client key (probes, scrapers).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
OWN_PATHS = OPEN_PATHS | {"/status"}
# Ollama's routes that change the model store (DELETE /api/delete; any method on these and /api/blobs/).
MODEL_MANAGEMENT_PATHS = frozenset({"/api/pull", "/api/push", "/api/create", "/api/copy"})
MODEL_MANAGEMENT_REFUSAL = (
    "model management (pull, push, create, copy, delete, blobs) is turned off for this endpoint: "
    "spec.modelManagement is false (standalone: REMOTE_OLLAMA_MODEL_MANAGEMENT=false)"
)
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ClientKeys:
    """The accepted `Authorization: Bearer` keys; replaced whole when the key Secret changes.

    `required` with no key refuses every client (a configured but unreadable Secret fails closed).
    """

    def __init__(self, keys: Iterable[str] = (), *, required: bool = False) -> None:
        self.required = required
        self._keys: tuple[bytes, ...] = ()
        self.replace(keys)

    def replace(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.strip().encode() for k in keys if k.strip())

    @property
    def enabled(self) -> bool:
        return self.required or bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def accepts_request(self, headers: Mapping[str, str]) -> bool:
        """`Authorization: Bearer <key>` (ollama, openai, anthropic's auth_token) or `X-Api-Key: <key>`
        (anthropic's api_key)."""
        if "X-Api-Key" in headers:
            return self.accepts(f"Bearer {headers['X-Api-Key']}")
        return self.accepts(headers.get("Authorization", ""))

    def accepts(self, authorization: str) -> bool:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        try:  # header bytes that are not UTF-8 arrive as surrogates: the bytes as sent, or no key
            given = key.strip().encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return False
        # every key compared, in constant time each: the answer's timing says nothing about which
        return sum(hmac.compare_digest(given, k) for k in self._keys) > 0


def is_model_management(method: str, path: str) -> bool:
    if path in MODEL_MANAGEMENT_PATHS or path.startswith("/api/blobs/"):
        return True
    return path == "/api/delete" and method == "DELETE"


def is_loopback_address(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host of a Host header, without port, lower case ("[::1]:11434" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        return header.partition(":")[0]
    return header


@functools.lru_cache(maxsize=256)  # one client sends the same Host on every request (hot path)
def allowed_host(header: str) -> bool:
    """As Ollama's allowedHostsMiddleware when it listens on loopback: a page on evil.example whose
    name now resolves to 127.0.0.1 (DNS rebinding) sends `Host: evil.example` and is refused."""
    host = _host_of(header)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return ip.is_loopback or ip.is_private or ip.is_unspecified
    if host in ("", "localhost") or host.endswith(_LOCAL_SUFFIXES):
        return True
    return host == socket.gethostname().lower()


class BodyTooLarge(Exception):
    pass


class HeldBytesExhausted(Exception):
    """All held requests together already keep as many body bytes in memory as allowed."""


class HeldBodies:
    """Bytes of request bodies held in memory, all requests together: each body is bounded by
    `max_body`, and their sum by `total` (twice the per-request bound: one full body always fits),
    so many large held bodies cannot exhaust the process either."""

    def __init__(self) -> None:
        self.in_memory = 0

    async def read(self, request: web.BaseRequest, limit: int) -> bytes:
        """The whole body, never more than `limit` bytes of it (`BodyTooLarge`), nor more than the
        shared budget allows (`HeldBytesExhausted`). A declared Content-Length over the limit is
        refused before a byte is read. Call `release(len(body))` when the body is no longer held."""
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge()
        total = 2 * limit
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                self.in_memory += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                if self.in_memory > total:
                    raise HeldBytesExhausted()
                chunks.append(chunk)
        except BaseException:
            self.in_memory -= size
            raise
        return b"".join(chunks)

    def reserve(self, size: int, limit: int) -> bool:
        """Count `size` bytes of a body about to be read whole outside the hold (a small prompt
        while the VM is up) in the same budget; False when it does not fit (then it is streamed)."""
        if self.in_memory + size > 2 * limit:
            return False
        self.in_memory += size
        return True

    def release(self, size: int) -> None:
        self.in_memory -= size


def too_large(limit: int) -> web.Response:
    return json_error(
        413,
        f"request body over {limit} bytes while the remote instance wakes "
        "(spec.wake.maxHeldBodyBytes, standalone REMOTE_OLLAMA_MAX_BODY)",
    )
