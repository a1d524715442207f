"""The requests both comparisons send (the proxy vs the real Ollama, the simulator vs the real
Ollama): every route the README names, streaming and not, and the error cases."""

from __future__ import annotations

from typing import Any

from .server import TINY

# Deterministic generation (seed, temperature 0), short: both sides produce the same tokens.
OPTS = {"seed": 7, "temperature": 0, "num_predict": 4}
MSGS = [{"role": "user", "content": "hello world"}]

# (name, method, path, JSON body or raw bytes, extra headers)
CASES: list[tuple[str, str, str, Any, dict[str, str]]] = [
    ("root", "GET", "/", None, {}),
    ("head-root", "HEAD", "/", None, {}),
    ("version", "GET", "/api/version", None, {}),
    ("tags", "GET", "/api/tags", None, {}),
    ("ps", "GET", "/api/ps", None, {}),
    ("show", "POST", "/api/show", {"model": TINY}, {}),
    ("generate-stream", "POST", "/api/generate", {"model": TINY, "prompt": "hello", "options": OPTS}, {}),
    ("generate", "POST", "/api/generate", {"model": TINY, "prompt": "hello", "stream": False, "options": OPTS}, {}),
    ("chat-stream", "POST", "/api/chat", {"model": TINY, "messages": MSGS, "options": OPTS}, {}),
    ("chat", "POST", "/api/chat", {"model": TINY, "messages": MSGS, "stream": False, "options": OPTS}, {}),
    ("embed", "POST", "/api/embed", {"model": TINY, "input": ["hello", "world"]}, {}),
    ("embeddings", "POST", "/api/embeddings", {"model": TINY, "prompt": "hello"}, {}),
    ("v1-models", "GET", "/v1/models", None, {}),
    ("v1-model", "GET", f"/v1/models/{TINY}", None, {}),
    ("v1-chat", "POST", "/v1/chat/completions", {"model": TINY, "messages": MSGS, "seed": 7, "temperature": 0, "max_tokens": 4}, {}),
    ("v1-chat-stream", "POST", "/v1/chat/completions", {"model": TINY, "messages": MSGS, "seed": 7, "temperature": 0, "max_tokens": 4, "stream": True}, {}),
    ("v1-completions", "POST", "/v1/completions", {"model": TINY, "prompt": "hello", "seed": 7, "temperature": 0, "max_tokens": 4}, {}),
    ("v1-embeddings", "POST", "/v1/embeddings", {"model": TINY, "input": "hello"}, {}),
    ("v1-messages", "POST", "/v1/messages", {"model": TINY, "max_tokens": 4, "messages": MSGS, "temperature": 0}, {}),
    ("v1-messages-stream", "POST", "/v1/messages", {"model": TINY, "max_tokens": 4, "messages": MSGS, "temperature": 0, "stream": True}, {}),
    ("v1-responses", "POST", "/v1/responses", {"model": TINY, "input": "hello", "max_output_tokens": 4, "temperature": 0}, {}),
    ("v1-responses-stream", "POST", "/v1/responses", {"model": TINY, "input": "hello", "max_output_tokens": 4, "temperature": 0, "stream": True}, {}),
    # errors
    ("unknown-model", "POST", "/api/generate", {"model": "nope:1b", "prompt": "x"}, {}),
    ("unknown-model-chat", "POST", "/api/chat", {"model": "nope:1b", "messages": MSGS, "stream": False}, {}),
    ("unknown-model-v1", "POST", "/v1/chat/completions", {"model": "nope:1b", "messages": MSGS}, {}),
    ("unknown-model-show", "POST", "/api/show", {"model": "nope:1b"}, {}),
    ("bad-json", "POST", "/api/generate", b'{"model":', {}),
    ("bad-json-chat", "POST", "/api/chat", b"not json", {}),
    ("bad-json-v1", "POST", "/v1/chat/completions", b'{"model":', {}),
    ("wrong-method", "GET", "/api/generate", None, {}),
    ("wrong-method-chat", "PUT", "/api/chat", None, {}),
    ("unknown-route", "GET", "/api/nope", None, {}),
    ("unknown-route-post", "POST", "/v1/nope", {"model": TINY}, {}),
    ("no-model", "POST", "/api/generate", {"prompt": "x"}, {}),
    ("no-model-chat", "POST", "/api/chat", {"messages": MSGS}, {}),
    ("no-model-show", "POST", "/api/show", {}, {}),
    ("no-model-v1", "POST", "/v1/chat/completions", {"messages": MSGS}, {}),
    ("no-model-messages", "POST", "/v1/messages", {"max_tokens": 4, "messages": MSGS}, {}),
    ("cors-preflight", "OPTIONS", "/api/chat", None,
     {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "content-type"}),
    ("cors-simple", "GET", "/api/version", None, {"Origin": "http://localhost:5173"}),
    ("cors-refused", "GET", "/api/version", None, {"Origin": "https://evil.example"}),
]  # fmt: skip
