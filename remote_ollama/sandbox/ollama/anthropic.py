"""Anthropic-compatible `/v1/messages` of the simulated Ollama (JSON, or SSE with `event:` lines)."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from remote_ollama.sandbox.ollama.generate import Job, is_warm, mark_loaded, plan_tokens, resolve_model
from remote_ollama.sandbox.ollama.http import (
    SSE,
    BadRequest,
    anthropic_error_body,
    json_response,
    read_json,
    sse_event,
    stream_response,
)
from remote_ollama.sandbox.ollama.models import count_tokens
from remote_ollama.sandbox.ollama.state import OllamaState, Wire

_STOP = {"stop": "end_turn", "length": "max_tokens"}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    raise BadRequest(400, "messages: content must be a string or a list of content blocks")


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, "messages: at least one message is required")
    parts = [f"system: {_text_of(body['system'])}"] if body.get("system") else []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(400, "messages: role must be 'user' or 'assistant'")
        parts.append(f"{message['role']}: {_text_of(message.get('content', ''))}")
    return "\n".join(parts)


async def messages(request: web.Request, state: OllamaState) -> web.StreamResponse:
    body = await read_json(request)
    limit = body.get("max_tokens")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise BadRequest(400, "max_tokens: field required and must be a positive integer")
    prompt = _prompt(body)
    record = resolve_model(state, body.get("model"))
    job = Job(record, body["model"], prompt, body.get("stream") is True, limit, 300.0)
    load = mark_loaded(state, job)
    tokens, reason = plan_tokens(state, job)
    ident = f"msg_{secrets.token_hex(12)}"
    usage = {"input_tokens": count_tokens(prompt), "output_tokens": 0}
    message: dict[str, Any] = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": job.requested_name,
        "content": [],
        "usage": usage,  # stop_reason and stop_sequence: omitted while empty (0.17.4's omitempty)
    }
    async with state.generation(request, record.name, streaming=job.stream) as gen:
        response = stream_response(SSE)
        wire = Wire(
            _delta,
            lambda text: sse_event(anthropic_error_body(500, text), "error"),
            lambda: _opening(message),
        )
        sent = await gen.reply(response, tokens, wire, cold=not is_warm(load), streaming=job.stream)
        if sent is None:
            return response
        if not job.stream:
            message.update(
                content=[{"type": "text", "text": "".join(sent)}],
                stop_reason=_STOP[reason],
                usage={**usage, "output_tokens": len(sent)},
            )
            return json_response(message)
        if not sent:
            await gen.write(response, _opening(message))
        await gen.write(response, _closing(reason, usage["input_tokens"], len(sent)))
        return response


def _delta(token: str) -> bytes:
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}}
    return sse_event(event, "content_block_delta")


def _opening(message: dict[str, Any]) -> bytes:
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    return sse_event({"type": "message_start", "message": message}, "message_start") + sse_event(
        block, "content_block_start"
    )  # no ping event (Ollama 0.17.4 sends none)


def _closing(reason: str, input_tokens: int, output_tokens: int) -> bytes:
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": _STOP[reason]},
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
    return (
        sse_event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        + sse_event(delta, "message_delta")
        + sse_event({"type": "message_stop"}, "message_stop")
    )
