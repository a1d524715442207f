"""Origin checks as Ollama applies them, enforced here because the proxy rewrites Host.

Ollama allows localhost, 127.0.0.1 and 0.0.0.0 (http/https, any port) and the app://, file://,
tauri://, vscode-webview:// and vscode-file:// schemes, plus `OLLAMA_ORIGINS` (`*` wildcards);
any other Origin gets an empty 403, and an allowed preflight OPTIONS gets 204.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from aiohttp import web

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
DEFAULT_ORIGINS: tuple[str, ...] = (
    *(
        f"{scheme}://{host}{port}"
        for host in _LOCAL_HOSTS
        for scheme in ("http", "https")
        for port in ("", ":*")
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
ALLOW_HEADERS = ", ".join(
    (
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "OpenAI-Beta",
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Custom-Poll-Interval",
        "X-Stainless-Helper-Method",
        "X-Stainless-Lang",
        "X-Stainless-OS",
        "X-Stainless-Package-Version",
        "X-Stainless-Poll-Helper",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
    )
)


def parse_origins(value: str) -> tuple[str, ...]:
    """`OLLAMA_ORIGINS`-style comma-separated list."""
    return tuple(o.strip() for o in value.split(",") if o.strip())


class OriginPolicy:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        patterns = (*extra, *DEFAULT_ORIGINS)
        self.allow_all = "*" in patterns
        self._exact = {p for p in patterns if "*" not in p}
        self._wild = [p for p in patterns if "*" in p and p != "*"]

    def allows(self, origin: str) -> bool:
        if self.allow_all or origin in self._exact:
            return True
        return any(fnmatch.fnmatchcase(origin, p) for p in self._wild)

    def cors_headers(self, origin: str) -> dict[str, str]:
        if self.allow_all:
            return {"Access-Control-Allow-Origin": "*"}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight(self, origin: str) -> web.Response:
        headers = self.cors_headers(origin)
        headers.update(
            {
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": "43200",
            }
        )
        return web.Response(status=204, headers=headers)


def is_preflight(request: web.BaseRequest) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
