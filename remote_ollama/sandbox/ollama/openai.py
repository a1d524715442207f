"""OpenAI-compatible routes of the simulated Ollama: `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, `/v1/models`."""

from __future__ import annotations

import base64
import secrets
import struct
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from remote_ollama.sandbox.ollama.generate import Job, is_warm, mark_loaded, plan_tokens, resolve_model
from remote_ollama.sandbox.ollama.http import (
    SSE,
    BadRequest,
    json_response,
    model_not_found,
    openai_error_body,
    read_json,
    sse_event,
    stream_response,
)
from remote_ollama.sandbox.ollama.models import ModelRecord, count_tokens, embedding
from remote_ollama.sandbox.ollama.state import OllamaState, Wire
from remote_ollama.vm.ollama_release import EMBEDDINGS_BASE64, at_least

FINGERPRINT = "fp_ollama"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _limit(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) and value > 0 else None


def _job(state: OllamaState, body: dict[str, Any], prompt: str) -> Job:
    record = resolve_model(state, body.get("model"))
    return Job(record, body["model"], prompt, body.get("stream") is True, _limit(body), 300.0)


async def chat_completions(request: web.Request, state: OllamaState) -> web.StreamResponse:
    body = await read_json(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, "[] is too short - 'messages'")
    prompt = "\n".join(
        f"{m.get('role')}: {_text_of(m.get('content'))}" for m in messages if isinstance(m, dict)
    )
    return await _complete(request, state, _job(state, body, prompt), body, chat=True)


async def completions(request: web.Request, state: OllamaState) -> web.StreamResponse:
    body = await read_json(request)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        prompt = "".join(str(p) for p in prompt)
    return await _complete(request, state, _job(state, body, str(prompt)), body, chat=False)


def _envelope(job: Job, chat: bool, ident: str, created: int, stream: bool) -> dict[str, Any]:
    obj = ("chat.completion" if chat else "text_completion") + (".chunk" if stream and chat else "")
    return {
        "id": ident,
        "object": obj,
        "created": created,
        "model": job.requested_name,
        "system_fingerprint": FINGERPRINT,
    }


def _choice(chat: bool, text: str, finish: str | None, stream: bool) -> dict[str, Any]:
    if not chat:
        return {"text": text, "index": 0, "finish_reason": finish}
    key = "delta" if stream else "message"
    return {"index": 0, key: {"role": "assistant", "content": text}, "finish_reason": finish}


async def _complete(
    request: web.Request, state: OllamaState, job: Job, body: dict[str, Any], *, chat: bool
) -> web.StreamResponse:
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{secrets.randbelow(1000)}"
    created = int(time.time())
    load = mark_loaded(state, job)
    tokens, reason = plan_tokens(state, job)
    usage = {"prompt_tokens": count_tokens(job.prompt), "completion_tokens": 0, "total_tokens": 0}
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    wire = Wire(
        lambda token: sse_event(
            {**_envelope(job, chat, ident, created, True), "choices": [_choice(chat, token, None, True)]}
        ),
        lambda text: sse_event(openai_error_body(500, text)),
    )
    async with state.generation(request, job.record.name, streaming=job.stream) as gen:
        response = stream_response(SSE)
        sent = await gen.reply(response, tokens, wire, cold=not is_warm(load), streaming=job.stream)
        if sent is None:
            return response
        usage["completion_tokens"] = len(sent)
        usage["total_tokens"] = usage["prompt_tokens"] + len(sent)
        final = _envelope(job, chat, ident, created, job.stream)
        if not job.stream:
            final["choices"] = [_choice(chat, "".join(sent), reason, False)]
            final["usage"] = usage
            return json_response(final)
        final["choices"] = [_choice(chat, "", reason, True)]
        await gen.write(response, sse_event(final))
        if include_usage:
            tail = _envelope(job, chat, ident, created, True)
            tail.update(choices=[], usage=usage)
            await gen.write(response, sse_event(tail))
        await gen.write(response, sse_event(b"[DONE]"))
        return response


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest(400, "invalid input")


async def embeddings(request: web.Request, state: OllamaState) -> web.Response:
    body = await read_json(request)
    record = resolve_model(state, body.get("model"))
    inputs = _embedding_inputs(body.get("input"))
    fmt = body.get("encoding_format") or "float"
    if not at_least(state.version, EMBEDDINGS_BASE64):
        fmt = "float"  # older Ollama ignores encoding_format and always sends float arrays
    elif fmt not in ("float", "base64"):
        raise BadRequest(400, f"invalid encoding format: {fmt!r}")
    dims = body.get("dimensions")
    mark_loaded(state, Job(record, body["model"], "", False, None, 300.0))
    data = []
    for index, text in enumerate(inputs):
        vector = embedding(record.name, text, dims if isinstance(dims, int) else None)
        packed: Any = vector
        if fmt == "base64":
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "embedding": packed, "index": index})
    tokens = sum(count_tokens(t) for t in inputs)
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _model_entry(record: ModelRecord) -> dict[str, Any]:
    created = int(datetime.fromisoformat(record.modified_at.replace("Z", "+00:00")).timestamp())
    owner = record.name.split("/")[0] if "/" in record.name else "library"
    return {"id": record.name, "object": "model", "created": created, "owned_by": owner}


async def list_models(request: web.Request, state: OllamaState) -> web.Response:
    return json_response({"object": "list", "data": [_model_entry(r) for r in state.models.values()]})


async def retrieve_model(request: web.Request, state: OllamaState) -> web.Response:
    name = request.match_info["model"]
    record = state.find(name)
    if record is None:
        raise model_not_found(name)
    return json_response(_model_entry(record))
