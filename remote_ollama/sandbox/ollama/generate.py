"""Native generation routes of the simulated Ollama: `/api/generate`, `/api/chat`, `/api/embed(dings)`."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from remote_ollama.sandbox.ollama.http import (
    NDJSON,
    BadRequest,
    dumps,
    json_response,
    model_not_found,
    read_json,
    stream_response,
)
from remote_ollama.sandbox.ollama.models import (
    ModelRecord,
    count_tokens,
    embedding,
    go_time,
    reply_tokens,
    token_ids,
)
from remote_ollama.sandbox.ollama.state import OllamaState, Wire

DEFAULT_KEEP_ALIVE = 300.0
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: Any) -> float:
    """Seconds a model stays loaded: numbers are seconds, strings Go durations; negative is forever."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = re.findall(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise BadRequest(400, f'time: invalid duration "{text}"') from None
            sign = -1.0 if text.startswith("-") else 1.0
            seconds = sign * sum(abs(float(n)) * _UNITS[u] for n, u in parts)
    else:
        raise BadRequest(400, "json: cannot unmarshal keep_alive")
    return float("inf") if seconds < 0 else seconds


@dataclass
class Job:
    """One decoded generation request, whatever the API flavour it came through."""

    record: ModelRecord
    requested_name: str
    prompt: str
    stream: bool
    limit: int | None
    keep_alive: float


def resolve_model(state: OllamaState, name: Any) -> ModelRecord:
    if not isinstance(name, str) or not name:
        raise BadRequest(400, "model is required")
    record = state.find(name)
    if record is None:
        raise model_not_found(name)
    return record


def plan_tokens(state: OllamaState, job: Job) -> tuple[list[str], str]:
    """The tokens to emit and why generation stops (`stop` or `length`)."""
    tokens = reply_tokens(job.record.name, job.prompt, state.reply_length)
    if job.limit is not None and 0 < job.limit < len(tokens):
        return tokens[: job.limit], "length"
    return tokens, "stop"


WARM_LOAD = 0.001  # seconds: below this, the model was already loaded


def mark_loaded(state: OllamaState, job: Job) -> float:
    """Load (or keep) the model; returns the simulated load duration in seconds."""
    was_loaded = job.record.name in {r.name for r, _ in state.running()}
    if job.keep_alive == 0:
        state.loaded.pop(job.record.name, None)
    else:
        state.loaded[job.record.name] = time.time() + min(job.keep_alive, 10 * 365 * 86400.0)
    return WARM_LOAD / 2 if was_loaded else 0.05 + state.load_delay


def is_warm(load: float) -> bool:
    """`mark_loaded` answers this tiny load duration for a model that was already in memory."""
    return load < WARM_LOAD


def stats(job: Job, started: float, eval_started: float, load: float, eval_count: int) -> dict[str, Any]:
    now = time.monotonic()
    prompt_count = count_tokens(job.prompt)
    return {
        "total_duration": int((now - started + load) * 1e9),
        "load_duration": int(load * 1e9),
        "prompt_eval_count": prompt_count,
        "prompt_eval_duration": prompt_count * 250_000,
        "eval_count": eval_count,
        "eval_duration": max(int((now - eval_started) * 1e9), 1),
    }


def _job_limit(body: dict[str, Any]) -> int | None:
    options = body.get("options") or {}
    limit = options.get("num_predict") if isinstance(options, dict) else None
    return limit if isinstance(limit, int) and limit > 0 else None


def _chat_prompt(messages: Any) -> str:
    if not isinstance(messages, list):
        raise BadRequest(400, "messages must be a list")
    parts = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role", ""), str):
            raise BadRequest(400, "invalid message")
        content = message.get("content") or ""
        parts.append(
            f"{message.get('role', 'user')}: {content}" if isinstance(content, str) else str(content)
        )
    return "\n".join(parts)


async def generate(request: web.Request, state: OllamaState, *, chat: bool) -> web.StreamResponse:
    body = await read_json(request)
    if not chat and not body.get("model"):
        raise model_not_found("")  # Ollama 0.17.4's /api/generate: 404, not chat's "model is required"
    record = resolve_model(state, body.get("model"))
    if record.embedding_only:
        raise BadRequest(400, f'"{body["model"]}" does not support {"chat" if chat else "generate"}')
    prompt = _chat_prompt(body.get("messages") or []) if chat else str(body.get("prompt") or "")
    job = Job(
        record=record,
        requested_name=body["model"],
        prompt=prompt,
        stream=body.get("stream") is not False,
        limit=_job_limit(body),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
    )
    if not prompt and not body.get("images"):
        loaded = job.record.name in {r.name for r, _ in state.running()}
        if not loaded and job.keep_alive != 0 and state.load_delay > 0:
            await asyncio.sleep(state.load_delay)  # loading takes its time; /api/ps shows it after
        mark_loaded(state, job)
        return _load_only(job, chat)
    return await _run(request, state, job, chat, body)


def _load_only(job: Job, chat: bool) -> web.Response:
    """An empty prompt only loads (or, with keep_alive 0, unloads) the model, as in Ollama."""
    reply: dict[str, Any] = {"model": job.requested_name, "created_at": go_time()}
    if chat:
        reply["message"] = {"role": "assistant", "content": ""}
    else:
        reply["response"] = ""
    reply.update(done=True, done_reason="unload" if job.keep_alive == 0 else "load")
    response = json_response(reply)
    if job.stream:
        response.content_type = NDJSON
    return response


def _chunk(job: Job, chat: bool, text: str) -> dict[str, Any]:
    chunk: dict[str, Any] = {"model": job.requested_name, "created_at": go_time()}
    if chat:
        chunk["message"] = {"role": "assistant", "content": text}
    else:
        chunk["response"] = text
    chunk["done"] = False
    return chunk


async def _run(
    request: web.Request, state: OllamaState, job: Job, chat: bool, body: dict[str, Any]
) -> web.StreamResponse:
    started = time.monotonic()
    load = mark_loaded(state, job)
    tokens, reason = plan_tokens(state, job)
    async with state.generation(request, job.record.name, streaming=job.stream) as gen:
        eval_started = time.monotonic()
        response = stream_response(NDJSON)
        wire = Wire(
            lambda token: dumps(_chunk(job, chat, token)) + b"\n", lambda text: dumps({"error": text}) + b"\n"
        )
        sent = await gen.reply(response, tokens, wire, cold=not is_warm(load), streaming=job.stream)
        if sent is None:
            return response
        final = _chunk(job, chat, "" if job.stream else "".join(sent))
        final.update(done=True, done_reason=reason)
        final.update(stats(job, started, eval_started, load, len(sent)))
        if not chat:
            final["context"] = [*body.get("context", []), *token_ids(job.prompt), *token_ids("".join(sent))]
        if not job.stream:
            return json_response(final)
        await gen.write(response, dumps(final) + b"\n")
        return response


def _embed_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest(400, "invalid input type")


async def embed(request: web.Request, state: OllamaState) -> web.Response:
    body = await read_json(request)
    record = resolve_model(state, body.get("model"))
    inputs = _embed_inputs(body.get("input", ""))
    dims = body.get("dimensions")
    job = Job(record, body["model"], " ".join(inputs), False, None, parse_keep_alive(body.get("keep_alive")))
    load = mark_loaded(state, job)
    started = time.monotonic()
    async with state.generation(request, record.name, streaming=False) as gen:
        await gen.sleep(state.token_delay)
    vectors = [embedding(record.name, text, dims if isinstance(dims, int) else None) for text in inputs]
    return json_response(
        {
            "model": job.requested_name,
            "embeddings": vectors,
            "total_duration": int((time.monotonic() - started + load) * 1e9),
            "load_duration": int(load * 1e9),
            "prompt_eval_count": sum(count_tokens(t) for t in inputs),
        }
    )


async def embeddings(request: web.Request, state: OllamaState) -> web.Response:
    """The legacy single-prompt endpoint (`{"embedding": [...]}`)."""
    body = await read_json(request)
    record = resolve_model(state, body.get("model"))
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise BadRequest(400, "invalid prompt")
    job = Job(record, body["model"], prompt, False, None, parse_keep_alive(body.get("keep_alive")))
    mark_loaded(state, job)
    return json_response({"embedding": embedding(record.name, prompt) if prompt else []})
