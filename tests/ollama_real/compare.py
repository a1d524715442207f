"""One HTTP answer reduced to what must be equal between the real Ollama and the proxy in front of
it: status, content type, framing (NDJSON lines, SSE events, one JSON document, text), JSON keys per
chunk, and values except those that differ between two runs (times, ids, generated text)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

# Values that differ between two runs of the same request (times, durations, ids, random text).
VOLATILE = frozenset(
    {
        "created_at", "created", "completed_at", "modified_at", "expires_at", "id", "system_fingerprint",
        "total_duration", "load_duration", "prompt_eval_duration", "eval_duration",
        "response", "content", "text", "thinking", "output_text", "size_vram", "context",
        "item_id", "response_id", "sequence_number", "call_id", "request_id",
    }
)  # fmt: skip
_CORS = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
         "access-control-max-age", "access-control-allow-credentials", "vary")  # fmt: skip


def shape(value: Any) -> Any:
    """`value` with volatile fields replaced by their type name (keys kept)."""
    if isinstance(value, dict):
        return {k: type(v).__name__ if k in VOLATILE else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    framing: str
    chunks: tuple[Any, ...]  # shaped JSON documents (or the text itself)
    # CORS header -> its comma-separated tokens, lower case (compared by `cors_differences`)
    cors: dict[str, frozenset[str]] = field(compare=False)

    def brief(self) -> str:
        return f"{self.status} {self.content_type} {self.framing} x{len(self.chunks)}"


def parse(
    status: int, content_type: str, body: bytes, headers: CIMultiDictProxy[str] | None = None
) -> Answer:
    text = body.decode(errors="replace")
    chunks: list[Any]
    if content_type == "application/x-ndjson":
        framing = "ndjson"
        chunks = [shape(json.loads(line)) for line in text.splitlines() if line.strip()]
    elif content_type == "text/event-stream":
        framing = "sse"
        chunks = []
        for event in (e for e in text.split("\n\n") if e.strip()):
            fields = []
            for line in event.splitlines():
                name, _, data = line.partition(": ")
                fields.append((name, shape(json.loads(data)) if data.startswith("{") else data))
            chunks.append(fields)
    elif content_type == "application/json":
        framing = "json"
        chunks = [shape(json.loads(text))] if text.strip() else []
    else:
        framing = "text"
        chunks = [text]
    cors = {
        h: frozenset(t.strip().lower() for v in headers.getall(h) for t in v.split(",") if t.strip())
        for h in _CORS
        if headers is not None and h in headers
    }
    return Answer(status, content_type, framing, tuple(chunks), cors)


def cors_differences(direct: Answer, proxied: Answer) -> list[str]:
    """Where the proxy's CORS headers fail a browser that Ollama's would satisfy. The proxy may allow
    more request headers (the Anthropic SDK's, which newer Ollama releases allow) and need not vary
    on Access-Control-Request-* (its preflight answer does not depend on them)."""
    out = []
    for name, want in direct.cors.items():
        got = proxied.cors.get(name, frozenset())
        if name == "vary":
            want = want & {"origin"}
        ok = got >= want if name in ("access-control-allow-headers", "vary") else got == want
        if not ok:
            out.append(f"{name}: Ollama {sorted(want)}, proxy {sorted(got)}")
    out += [f"{name}: only the proxy sends it" for name in proxied.cors.keys() - direct.cors.keys()]
    return out


async def fetch(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, *, raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:  # fmt: skip
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    async with http.request(method, url, data=data, headers=hdrs) as r:
        got = await r.read()
        return parse(r.status, r.content_type, got, r.headers)


async def fetch_both(
    http: aiohttp.ClientSession, request: tuple[str, str, Any, dict[str, str]], first: str, second: str
) -> tuple[Answer, Answer]:
    """One case's (method, path, JSON body or raw bytes, headers) sent to two servers, in turn."""
    method, path, body, headers = request
    raw = body if isinstance(body, bytes) else None
    json_body = None if raw is not None else body
    return (
        await fetch(http, method, first + path, json_body, raw=raw, headers=headers),
        await fetch(http, method, second + path, json_body, raw=raw, headers=headers),
    )
