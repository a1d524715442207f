"""Native model-management routes of the simulated Ollama: tags, ps, show, pull, push, create, copy,
delete, blobs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from remote_ollama.sandbox.ollama.http import (
    NDJSON,
    BadRequest,
    dumps,
    json_response,
    model_not_found,
    native_error,
    read_json,
    stream_response,
)
from remote_ollama.sandbox.ollama.models import ModelRecord, go_time, normalize_name, valid_name
from remote_ollama.sandbox.ollama.state import OllamaState

_DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
_PROGRESS_STEPS = 5


async def tags(request: web.Request, state: OllamaState) -> web.Response:
    return json_response({"models": [r.tag_entry() for r in state.models.values()]})


async def ps(request: web.Request, state: OllamaState) -> web.Response:
    models = []
    for record, expires in state.running():
        entry = record.tag_entry()
        entry.update(
            expires_at="2318-08-25T00:00:00Z" if expires > 1e10 else _unix_to_go(expires),
            size_vram=record.size,
            context_length=record.context_length,
        )
        del entry["modified_at"]
        models.append(entry)
    return json_response({"models": models})


def _unix_to_go(ts: float) -> str:
    return go_time(datetime.fromtimestamp(ts, UTC))


def _model_field(body: dict[str, Any]) -> str:
    name = body.get("model") or body.get("name") or ""
    if not isinstance(name, str) or not name:
        raise BadRequest(400, "model is required")
    return name


async def show(request: web.Request, state: OllamaState) -> web.Response:
    name = _model_field(await read_json(request))
    record = state.find(name)
    if record is None:
        raise model_not_found(name)
    return json_response(record.show())


async def copy(request: web.Request, state: OllamaState) -> web.Response:
    body = await read_json(request)
    source, destination = body.get("source") or "", body.get("destination") or ""
    if not source or not destination:
        raise BadRequest(400, "source and destination are required")
    if not valid_name(destination):
        raise BadRequest(400, f'destination "{destination}" is invalid')
    record = state.find(source)
    if record is None:
        raise model_not_found(source)
    state.add_model(destination)
    return web.Response(status=200)


async def delete(request: web.Request, state: OllamaState) -> web.Response:
    name = _model_field(await read_json(request))
    record = state.find(name)
    if record is None:
        raise model_not_found(name)
    del state.models[record.name]
    state.loaded.pop(record.name, None)
    return web.Response(status=200)


async def _progress(
    request: web.Request, state: OllamaState, model: str, lines: Sequence[dict[str, Any]], stream: bool
) -> web.StreamResponse:
    """Send progress lines spread over `pull_delay` (or wait that long, then answer the last one)."""
    pause = state.pull_delay / max(len(lines), 1)
    async with state.generation(request, model, streaming=False) as gen:
        response = stream_response(NDJSON)
        for line in lines:
            await gen.sleep(pause)
            if stream:
                await gen.write(response, dumps(line) + b"\n")
        return response if stream else json_response(lines[-1])


def _layer_progress(verb: str, layers: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for digest, total in layers:
        status = f"{verb} {digest.removeprefix('sha256:')[:12]}"
        for step in range(_PROGRESS_STEPS + 1):
            lines.append({"status": status, "digest": digest, "total": total, "completed": total * step // 5})
    return lines


async def pull(request: web.Request, state: OllamaState) -> web.StreamResponse:
    body = await read_json(request)
    name = _model_field(body)
    if not valid_name(name):
        raise BadRequest(400, "invalid model name")
    record = state.find(name) or ModelRecord.make(name)  # listed only once the pull succeeds
    lines = [
        {"status": "pulling manifest"},
        *_layer_progress("pulling", record.layer_digests()),
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
    ]
    response = await _progress(request, state, record.name, lines, body.get("stream") is not False)
    state.models[record.name] = record
    for digest, size in record.layer_digests():
        state.blobs[digest] = size
    return await _finish(request, response, body)


async def _finish(
    request: web.Request, response: web.StreamResponse, body: dict[str, Any]
) -> web.StreamResponse:
    if body.get("stream") is False:
        return json_response({"status": "success"})
    await response.write(dumps({"status": "success"}) + b"\n")
    return response


async def push(request: web.Request, state: OllamaState) -> web.StreamResponse:
    body = await read_json(request)
    name = _model_field(body)
    record = state.find(name)
    if record is None:
        raise model_not_found(name)
    lines = [
        {"status": "retrieving manifest"},
        *_layer_progress("pushing", record.layer_digests()),
        {"status": "pushing manifest"},
    ]
    response = await _progress(request, state, record.name, lines, body.get("stream") is not False)
    return await _finish(request, response, body)


async def create(request: web.Request, state: OllamaState) -> web.StreamResponse:
    body = await read_json(request)
    name = _model_field(body)
    if not valid_name(name):
        raise BadRequest(400, "invalid model name")
    base, files = body.get("from"), body.get("files") or {}
    if not base and not files:
        raise BadRequest(400, "neither 'from' or 'files' was specified")
    if base and state.find(base) is None:
        raise model_not_found(base)
    if not isinstance(files, dict):
        raise BadRequest(400, "files must be an object")
    lines: list[dict[str, Any]] = [{"status": "gathering model components"}]
    for digest in files.values():
        if not state.blob_present(_canonical_digest(digest)):
            raise BadRequest(400, f"blob {digest} not found")
        lines.append({"status": f"using existing layer {digest}"})
    for key in ("template", "system", "license", "parameters", "messages"):
        if body.get(key):
            layer = "sha256:" + hashlib.sha256(dumps(body[key])).hexdigest()
            lines.append({"status": f"creating new layer {layer}"})
    lines.append({"status": "writing manifest"})
    response = await _progress(request, state, normalize_name(name), lines, body.get("stream") is not False)
    state.add_model(name)
    return await _finish(request, response, body)


def _canonical_digest(digest: Any) -> str:
    match = _DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise BadRequest(400, "invalid digest format")
    return f"sha256:{match.group(1)}"


async def blob_head(request: web.Request, state: OllamaState) -> web.Response:
    digest = _canonical_digest(request.match_info["digest"])
    if not state.blob_present(digest):
        return native_error(404, "blob not found")
    return web.Response(status=200)


async def blob_upload(request: web.Request, state: OllamaState) -> web.Response:
    """Hash the body as it arrives (never held in memory); 201 if it matches the digest, else 400."""
    digest = _canonical_digest(request.match_info["digest"])
    if state.blob_present(digest):
        return web.Response(status=200)  # Ollama answers at once, without reading the body
    hasher, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        hasher.update(chunk)
        size += len(chunk)
    got = f"sha256:{hasher.hexdigest()}"
    if got != digest:
        raise BadRequest(400, f'digest mismatch, expected "{digest}", got "{got}"')
    state.blobs[digest] = size
    return web.Response(status=201)


async def version(request: web.Request, state: OllamaState) -> web.Response:
    return json_response({"version": state.version})


async def me(request: web.Request, state: OllamaState) -> web.Response:
    return native_error(401, "unauthorized")
