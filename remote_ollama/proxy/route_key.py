"""Where a request is best served, from its raw body: its model and the start of its conversation
(the key of prefix affinity, proxy/routing.py). The key must stay the same turn after turn: a
conversation's later turns only add messages at the end, so it is the first PREFIX_CHARS of the
prompt, or of the system message and the first user message, never the bytes after them.

A few searches and, for a chat, the first message or two decoded from a bounded window: never the
whole body (it may be a 256 KiB chat; a small body of millions of `[]` parses into hundreds of MiB,
see held_body.py). A wrong guess costs a cache miss, never a wrong answer. Pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from remote_ollama.proxy.interfaces import RouteKey

PREFIX_CHARS = 256  # of the prompt, or of each of the system message and the first user message
WINDOW = 64 * 1024  # bytes of a messages array decoded to find its first messages, at most
_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"')
# a string prompt: the first PREFIX_CHARS characters of its JSON text
_PROMPT = re.compile(rb'"(?:prompt|input)"\s*:\s*"((?:[^"\\]|\\.){0,%d})' % PREFIX_CHARS)
_MESSAGES = re.compile(rb'"messages"\s*:\s*\[')
_DECODER = json.JSONDecoder()


def route_key(body: bytes) -> RouteKey:
    """The request's model (`model`) and what starts its conversation: a string `prompt` (or
    `input`), else the first messages of `messages` up to the first user message."""
    found = _MODEL.search(body)
    model = ""
    if found is not None:
        try:
            model = json.loads(b'"' + found.group(1) + b'"')
        except ValueError:
            model = ""
    messages = _MESSAGES.search(body)
    if messages is not None:
        return RouteKey(model, _opening(body, messages.end()))
    prompt = _PROMPT.search(body)
    return RouteKey(model, prompt.group(1) if prompt is not None else b"")


def _opening(body: bytes, at: int) -> bytes:
    """The messages up to and with the first user one (each role and its content's first
    PREFIX_CHARS), decoded one by one from the array starting at `at`; b"" when they are not there."""
    text = body[at : at + WINDOW].decode(errors="ignore")
    taken: list[Any] = []
    pos = 0
    try:
        while len(taken) < 8:
            while text[pos : pos + 1] in (" ", "\t", "\r", "\n", ","):
                pos += 1
            message, pos = _DECODER.raw_decode(text, pos)
            if not isinstance(message, dict):
                return b""
            content = message.get("content")
            content = content if isinstance(content, str) else json.dumps(content)
            taken.append([message.get("role"), content[:PREFIX_CHARS]])
            if message.get("role") == "user":
                break
    except (ValueError, IndexError, RecursionError):
        if not taken:
            return b""
    return json.dumps(taken).encode()
