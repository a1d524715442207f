"""The routes clients poll: they never wake the VM and never count as activity.

While the VM is down they are answered from the last answer seen while it was up (marked with
`X-Remote-Ollama-Cached: true`), because an empty model list would be a lie.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

CACHED_HEADER = "X-Remote-Ollama-Cached"
CACHED_PATHS = frozenset({"/api/version", "/api/tags", "/api/ps"})
POLLING_PATHS = CACHED_PATHS | {"/"}
RUNNING = "Ollama is running"


def is_polling(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and path in POLLING_PATHS


@dataclass(frozen=True)
class Seen:
    body: bytes
    content_type: str


class PollingCache:
    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}

    def remember(self, path: str, body: bytes, content_type: str) -> None:
        if path in CACHED_PATHS:
            self._seen[path] = Seen(body, content_type)

    def answer(self, path: str) -> web.Response | None:
        """The cached answer for `path`, or None when nothing was seen yet."""
        if path == "/":
            return web.Response(text=RUNNING, headers={CACHED_HEADER: "true"})
        seen = self._seen.get(path)
        if seen is None:
            return None
        return web.Response(
            body=seen.body, headers={"Content-Type": seen.content_type, CACHED_HEADER: "true"}
        )
