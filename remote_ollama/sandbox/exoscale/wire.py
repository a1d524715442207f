"""The simulator's wire: requests routed by the SDK's own openapi.json, answers in the API's JSON
shape, and every exchange shown to the observers (the tests hold the traffic to the API's own
description with them; a simulator in another process records it to a file)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web
from exoscale.api.v2 import Client

from remote_ollama.spec.sections import DEFAULT_ZONE

BASE_PATH = "/v2"
UNSIGNED_OPERATIONS = {"list-zones"}  # the SDK sends it without credentials
Observer = Callable[[str, Any, int, Any], None]
# Called with (operationId, request body, status, answer) for each answered call, errors included:
# the tests hold the simulator's traffic to the API's own description with it
# (tests/exoscale_openapi.py). A simulator in another process (the sandbox) appends the same
# exchanges as JSON lines to the file RECORD_ENV names, for the tests to read back.
EXCHANGE_OBSERVERS: list[Observer] = []
RECORD_ENV = "REMOTE_OLLAMA_SIMULATOR_RECORD"
MAX_RECORD_BYTES = 64 * 1024 * 1024


class ExchangeRecorder:
    """Appends each exchange to a file as a JSON line (capped: a long sandbox session stops adding)."""

    def __init__(self, path: Path, limit: int = MAX_RECORD_BYTES):
        self.path, self.limit = path, limit
        self.lock = threading.Lock()

    def __call__(self, operation: str, body: Any, status: int, answer: Any) -> None:
        line = json.dumps({"operation": operation, "body": body, "status": status, "answer": answer})
        with self.lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) < self.limit:  # user-data is in there: the owner's file only
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as out:
                    out.write(line + "\n")


if os.environ.get(RECORD_ENV):
    EXCHANGE_OBSERVERS.append(ExchangeRecorder(Path(os.environ[RECORD_ENV])))


class Call(NamedTuple):
    method: str
    path: str  # the API path, "/v2/..." (without the zone prefix)
    operation: str
    zone: str = DEFAULT_ZONE


def _compile_routes() -> list[tuple[str, re.Pattern[str], str, dict[str, str]]]:
    """(verb, regex, operationId, group->param name) for every path in the SDK's spec."""
    routes = []
    for op_id, entry in Client._by_operation.items():
        names: dict[str, str] = {}

        def group(m: re.Match[str], names: dict[str, str] = names) -> str:
            key = f"p{len(names)}"
            names[key] = m.group(1)
            return f"(?P<{key}>[^/:]+)"

        parts = re.split(r"(\{[^}]+\})", entry["path"])
        pattern = "".join(
            re.sub(r"^\{([^}]+)\}$", group, p) if p.startswith("{") else re.escape(p) for p in parts
        )
        routes.append((entry["verb"].upper(), re.compile(f"^{pattern}$"), op_id, names))
    routes.sort(key=lambda r: len(r[3]))  # literal segments win over parameters
    return routes


_ROUTES = _compile_routes()


def match_operation(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for verb, regex, op_id, names in _ROUTES:
        m = regex.match(path)
        if m and verb == method:
            return op_id, {names[k]: v for k, v in m.groupdict().items()}
    return None


def answer(operation: str, body: Any, status: int, reply: dict[str, Any]) -> web.Response:
    for observe in EXCHANGE_OBSERVERS:
        observe(operation, body, status, reply)
    return web.json_response(reply, status=status)


def error(status: int, message: str, operation: str = "unknown", body: Any = None) -> web.Response:
    return answer(operation, body, status, {"message": message})


def split_zone(path: str) -> tuple[str, str]:
    """The zone and the API path of "/<zone>/v2/..." ("/v2/...")."""
    head, sep, tail = path.lstrip("/").partition("/")
    return (head, f"/{tail}") if sep else (head, "")


def query_of(request: web.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.rel_url.query.items():
        out.setdefault(key, []).append(value)
    return out
