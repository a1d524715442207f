"""Where a request is best served, from its raw body: its model and its prompt's first bytes (the
key of prefix affinity, proxy/routing.py). A few searches, no parse: the body may be a 256 KiB
chat, and a small body of millions of `[]` parses into hundreds of MiB (see held_body.py). A wrong
guess costs a cache miss, never a wrong answer. Pure.
"""

from __future__ import annotations

import json
import re

from remote_ollama.proxy.interfaces import RouteKey

# Prefix affinity's key: this many bytes from the start of the prompt (or messages), and as many
# around the first user turn (a long system prompt shared by every conversation would otherwise be
# all the key sees).
PREFIX_BYTES = 256
_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"')
_PROMPT = re.compile(rb'"(?:messages|prompt|input)"\s*:\s*')
_USER = re.compile(rb'"user"')


def route_key(body: bytes) -> RouteKey:
    """The request's model (`model`) and the raw JSON text of its prompt (`prompt`, `messages` or
    `input`): its first PREFIX_BYTES and, when the first user turn starts later, as many around it."""
    found = _MODEL.search(body)
    model = ""
    if found is not None:
        try:
            model = json.loads(b'"' + found.group(1) + b'"')
        except ValueError:
            model = ""
    prompt = _PROMPT.search(body)
    if prompt is None:
        return RouteKey(model)
    start = prompt.end()
    prefix = body[start : start + PREFIX_BYTES]
    user = _USER.search(body, start)
    if user is not None and user.start() >= start + PREFIX_BYTES // 2:
        prefix += body[max(start, user.start() - PREFIX_BYTES) : user.end() + PREFIX_BYTES]
    return RouteKey(model, prefix)
