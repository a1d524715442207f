"""Differential: the same requests sent straight to the real Ollama 0.17.4 and through the proxy in
front of it, for every route the README names, streaming and not, and the error cases. Status,
content type, framing, JSON keys per chunk and every value but times, ids and generated text must be
equal (tests/ollama_real/compare.py). Then the official clients through the proxy on the real Ollama.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import ollama
import openai
import pytest
from aiohttp import web
from ollama_real.cases import CASES, MSGS, OPTS
from ollama_real.compare import Answer, cors_differences, fetch_both
from ollama_real.server import TINY, VERSION, RealOllama, create_request
from ollama_real.tiny_model import write_tiny_gguf

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink


@pytest.fixture(scope="module")
def proxied(real_ollama: RealOllama) -> Iterator[str]:
    """The proxy (model management on, no client keys) in front of the real Ollama, on its own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner: list[web.AppRunner] = []

    async def start() -> str:
        upstream = Upstream(real_ollama.url)
        app = make_proxy_app(LocalResolver(upstream), RecordingSink(), ProxySettings(model_management=True))
        r, port = await start_proxy(app, "127.0.0.1", 0)
        runner.append(r)
        return f"http://127.0.0.1:{port}"

    url = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.parametrize(("name", "method", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_the_proxy_answers_what_the_real_ollama_answers(
    real_ollama: RealOllama,
    proxied: str,
    ollama_http: aiohttp.ClientSession,
    name: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    direct, through = await fetch_both(ollama_http, (method, path, body, headers), real_ollama.url, proxied)
    assert through == direct, f"{name}: direct {direct.brief()}, proxied {through.brief()}"
    assert cors_differences(direct, through) == []
    _sanity(name, direct)


def _sanity(name: str, answer: Answer) -> None:
    """The comparison compared something: each case got the kind of answer it is about."""
    if name.startswith(("unknown-model", "bad-json", "no-model")):
        assert answer.status >= 400 and answer.framing == "json" and "error" in answer.chunks[0]
    elif name.endswith("-stream"):
        assert answer.status == 200 and answer.framing in ("ndjson", "sse") and len(answer.chunks) > 1
    elif name == "version":
        assert answer.chunks == ({"version": VERSION},)


# -- the official clients, through the proxy, on the real Ollama ----------------------------------------


def test_the_ollama_client(proxied: str) -> None:
    client = ollama.Client(host=proxied)
    assert client.show(TINY).modelfile
    assert [m.model for m in client.list().models] == [TINY]
    reply = client.chat(model=TINY, messages=MSGS, options=OPTS)
    assert reply.message.role == "assistant" and reply.done
    chunks = list(client.generate(model=TINY, prompt="hello", stream=True, options=OPTS))
    assert chunks[-1].done and chunks[-1].eval_count
    assert len(client.embed(model=TINY, input="hello").embeddings[0]) == 64
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="nope:1b", messages=MSGS)
    assert err.value.status_code == 404 and "not found" in err.value.error


def test_the_openai_client(proxied: str) -> None:
    client = openai.OpenAI(base_url=f"{proxied}/v1", api_key="unused")
    assert TINY in [m.id for m in client.models.list()]
    done = client.chat.completions.create(model=TINY, messages=MSGS, max_tokens=4, seed=7, temperature=0)  # type: ignore[arg-type]
    assert done.choices[0].message.role == "assistant" and done.usage is not None
    stream = client.chat.completions.create(model=TINY, messages=MSGS, max_tokens=4, stream=True)  # type: ignore[arg-type]
    assert [c.choices[0].finish_reason for c in stream if c.choices][-1] is not None
    assert len(client.embeddings.create(model=TINY, input="hello").data[0].embedding) == 64
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope:1b", messages=MSGS)  # type: ignore[arg-type]


def test_the_anthropic_client(proxied: str) -> None:
    client = anthropic.Anthropic(base_url=proxied, api_key="unused")
    msg = client.messages.create(model=TINY, max_tokens=4, messages=MSGS)  # type: ignore[arg-type]
    assert msg.role == "assistant" and msg.usage.output_tokens >= 1
    with client.messages.stream(model=TINY, max_tokens=4, messages=MSGS) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.stop_reason in ("max_tokens", "end_turn")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope:1b", max_tokens=4, messages=MSGS)  # type: ignore[arg-type]


# -- model management through the proxy ------------------------------------------------------------


async def test_a_model_is_created_through_the_proxy_s_blob_upload_and_create(
    real_ollama: RealOllama, proxied: str, ollama_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The path `ollama create` takes (HEAD, then POST /api/blobs/<digest>, then /api/create), proxied."""
    gguf = write_tiny_gguf(tmp_path / "other.gguf", seed=1).read_bytes()
    digest = "sha256:" + hashlib.sha256(gguf).hexdigest()
    async with ollama_http.head(f"{proxied}/api/blobs/{digest}") as r:
        assert r.status == 404
    async with ollama_http.post(f"{proxied}/api/blobs/{digest}", data=gguf) as r:
        assert r.status == 201, await r.text()
    async with ollama_http.head(f"{proxied}/api/blobs/{digest}") as r:
        assert r.status == 200
    async with ollama_http.post(f"{proxied}/api/create", json=create_request("proxied", digest)) as r:
        assert (r.status, await r.json()) == (200, {"status": "success"})
    async with ollama_http.get(f"{real_ollama.url}/api/tags") as r:
        assert "proxied:latest" in [m["name"] for m in (await r.json())["models"]]
    async with ollama_http.delete(f"{proxied}/api/delete", json={"model": "proxied"}) as r:
        assert r.status == 200
    async with ollama_http.get(f"{real_ollama.url}/api/tags") as r:
        assert "proxied:latest" not in [m["name"] for m in (await r.json())["models"]]


def _handled_generates(real_ollama: RealOllama) -> int:
    """Requests to /api/generate whose handler returned (Gin logs each when it returns)."""
    return real_ollama.daemon.log_path.read_text(errors="replace").count('POST     "/api/generate"')


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "proxied"])
async def test_a_client_leaving_mid_stream_ends_the_real_generation(
    real_ollama: RealOllama, proxied: str, through_proxy: bool
) -> None:
    """A generation of ~30000 tokens (a minute and more here) ends at once when its client goes:
    through the proxy, Ollama's client is the proxy, which must drop the upstream request too."""
    before = _handled_generates(real_ollama)
    base = proxied if through_proxy else real_ollama.url
    body = {"model": TINY, "prompt": "hello", "options": {"num_predict": 30000, "num_ctx": 32768}}
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{base}/api/generate", json=body)
        assert r.status == 200
        assert json.loads(await r.content.readline())["done"] is False
        assert _handled_generates(real_ollama) == before, "the generation is running"
        r.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 20
    while _handled_generates(real_ollama) == before:
        assert time.monotonic() < deadline, "the real Ollama kept generating for a client that left"
        await asyncio.sleep(0.05)
