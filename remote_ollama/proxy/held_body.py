"""What the proxy needs to know of a held request's body (`stream`, `model`), without building the
whole document: a small body of millions of `[]` parses into hundreds of MiB of Python objects.

Pure: bytes in, two fields out.
"""

from __future__ import annotations

import json

# A document with more containers than this is not parsed whole: only its top-level fields up to
# the first nested value are read. A chat of a thousand messages has a few thousand.
MAX_CONTAINERS = 10_000
_DECODER = json.JSONDecoder()


def held_fields(body: bytes) -> tuple[bool, str]:
    """(streaming, model) as Ollama reads them: `stream` defaults to true; a body that is not a
    JSON object is treated as non-streaming with no model (the VM will answer it)."""
    if body.count(b"[") + body.count(b"{") <= MAX_CONTAINERS:
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            return False, ""
        if not isinstance(parsed, dict):
            return False, ""
        return parsed.get("stream", True) is not False, str(parsed.get("model") or "")
    return _leading_fields(body)


def _leading_fields(body: bytes) -> tuple[bool, str]:
    """The top-level scalar fields before the first nested value (clients send `model` first)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return False, ""
    fields: dict[str, object] = {}
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return False, ""
    at += 1
    try:
        while True:
            at = _skip(text, at)
            key, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if not isinstance(key, str) or not text.startswith(":", at):
                break
            at = _skip(text, at + 1)
            if text[at : at + 1] in ("[", "{"):
                break  # a nested value: not built, and nothing after it is read
            fields[key], at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if not text.startswith(",", at):
                break
            at += 1
    except ValueError:
        pass
    return fields.get("stream", True) is not False, str(fields.get("model") or "")


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
