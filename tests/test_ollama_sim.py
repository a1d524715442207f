"""The simulated Ollama, driven by the official `ollama`, `openai` and `anthropic` clients and by raw HTTP.

It is the reference the proxy's compatibility tests compare against, so what is checked here is what a
client of a real Ollama would see: shapes, streaming framing, errors, blob uploads, cancellation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import ollama
import openai
import pytest
from simulated_ollama import Sim, serve

from remote_ollama.sandbox.ollama.server import make_ollama_app
from remote_ollama.vm.ollama_release import DEFAULT_OLLAMA_VERSION

CHAT = "llama3.2:1b"
EMBED = "nomic-embed-text"


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve(make_ollama_app([CHAT, EMBED], token_delay=0.002)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


# --- plain HTTP surface --------------------------------------------------------------------------


async def test_root_answers_get_and_head(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.url + "/") as resp:
        assert (resp.status, await resp.text()) == (200, "Ollama is running")
        assert resp.content_type == "text/plain"
    async with http.head(sim.url + "/") as resp:
        assert resp.status == 200
    async with http.get(sim.url + "/api/version") as resp:
        assert await resp.json() == {"version": DEFAULT_OLLAMA_VERSION}  # the pinned image's


async def test_unknown_path_and_wrong_method_look_like_gin(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.url + "/api/nope") as resp:
        assert (resp.status, resp.content_type, await resp.text()) == (
            404,
            "text/plain",
            "404 page not found",
        )
    async with http.get(sim.url + "/api/generate") as resp:
        assert (resp.status, await resp.text()) == (405, "405 method not allowed")
    async with http.post(sim.url + "/api/tags") as resp:
        assert resp.status == 405


async def test_bad_json_and_missing_model_are_native_errors(sim: Sim, http: aiohttp.ClientSession) -> None:
    for body, status in ((b"{nope", 400), (b"", 400), (b'{"model": "ghost"}', 404)):
        async with http.post(sim.url + "/api/generate", data=body) as resp:
            assert resp.status == status
            assert isinstance((await resp.json())["error"], str)
    async with http.post(sim.url + "/api/chat", json={"model": "ghost", "messages": []}) as resp:
        assert await resp.json() == {"error": "model 'ghost' not found"}


async def test_compat_errors_use_their_own_shapes(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.post(sim.url + "/v1/chat/completions", data=b"{bad") as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400 and error["type"] == "invalid_request_error" and error["message"]
    async with http.get(sim.url + "/v1/models/ghost") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["type"] == "not_found_error"
    async with http.post(sim.url + "/v1/messages", json={"model": CHAT, "messages": []}) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"


async def test_set_models_and_counters(sim: Sim, http: aiohttp.ClientSession) -> None:
    sim.state.set_models(["phi3"])
    async with http.get(sim.url + "/api/tags") as resp:
        assert [m["name"] for m in (await resp.json())["models"]] == ["phi3:latest"]
    async with http.post(sim.url + "/api/show", json={"model": CHAT}) as resp:
        assert resp.status == 404
    assert sim.state.requests["/api/tags"] == 1 and sim.state.requests["/api/show"] == 1


async def test_ndjson_stream_is_chunked_one_object_per_line(sim: Sim, http: aiohttp.ClientSession) -> None:
    body = {"model": CHAT, "prompt": "why is the sky blue?"}
    async with http.post(sim.url + "/api/generate", json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-ndjson"
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.headers and "Content-Encoding" not in resp.headers
        raw = await resp.read()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.splitlines()]
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"] is True
    final = lines[-1]
    assert final["done_reason"] == "stop" and final["response"] == ""
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count"):
        assert isinstance(final[key], int)
    assert final["eval_count"] == len(lines) - 1 and final["context"]
    async with http.post(sim.url + "/api/generate", json={**body, "stream": False}) as resp:
        whole = await resp.json()
    assert whole["response"] == "".join(line["response"] for line in lines[:-1])


async def test_error_mid_stream_is_a_final_error_line_with_status_200(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    sim.state.error_mid_stream_after(2)
    async with http.post(
        sim.url + "/api/chat", json={"model": CHAT, "messages": [{"role": "user", "content": "hi"}]}
    ) as resp:
        assert resp.status == 200
        lines = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert len(lines) == 3 and "message" in lines[0] and "message" in lines[1]
    assert lines[2] == {"error": sim.state.mid_stream_message}
    sim.state.error_mid_stream_after(1)
    client = ollama.AsyncClient(host=sim.url)
    with pytest.raises(ollama.ResponseError, match="simulated failure"):
        async for _ in await client.generate(model=CHAT, prompt="x", stream=True):
            pass


async def test_fail_next_injects_one_failure_then_recovers(sim: Sim, http: aiohttp.ClientSession) -> None:
    sim.state.fail_next("/api/tags", 503, {"error": "server busy, please try again"})
    async with http.get(sim.url + "/api/tags") as resp:
        assert (resp.status, await resp.json()) == (503, {"error": "server busy, please try again"})
    async with http.get(sim.url + "/api/tags") as resp:
        assert resp.status == 200
    assert sim.state.requests["/api/tags"] == 2


async def test_cors_like_ollama(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.url + "/api/tags", headers={"Origin": "https://evil.example"}) as resp:
        assert (resp.status, await resp.read()) == (403, b"")
    for origin in ("http://localhost:3000", "https://127.0.0.1", "app://obsidian.md", "vscode-webview://x"):
        async with http.get(sim.url + "/api/tags", headers={"Origin": origin}) as resp:
            assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == origin
    preflight = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
    async with http.options(sim.url + "/api/chat", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]


# --- blobs ---------------------------------------------------------------------------------------


async def test_blob_upload_chunked_and_content_length(sim: Sim, http: aiohttp.ClientSession) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    url = f"{sim.url}/api/blobs/{digest}"
    async with http.head(url) as resp:
        assert resp.status == 404

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    async with http.post(url, data=chunks()) as resp:  # Transfer-Encoding: chunked
        assert resp.status == 201
    async with http.head(url) as resp:
        assert resp.status == 200
    async with http.post(url, data=payload) as resp:  # already there: answered without reading
        assert resp.status == 200

    other = b"another blob" * 1000
    other_digest = "sha256:" + hashlib.sha256(other).hexdigest()
    async with http.post(f"{sim.url}/api/blobs/{other_digest}", data=other) as resp:  # Content-Length
        assert resp.status == 201
    async with http.post(f"{sim.url}/api/blobs/sha256:{'0' * 64}", data=b"mismatch") as resp:
        assert resp.status == 400 and "digest mismatch" in (await resp.json())["error"]
    async with http.post(f"{sim.url}/api/blobs/md5:abc", data=b"x") as resp:
        assert resp.status == 400
    assert sim.state.blobs[digest] == len(payload)


# --- the official ollama client ------------------------------------------------------------------


async def test_ollama_sync_client_full_tour(sim: Sim, tmp_path: Path) -> None:
    def tour() -> None:
        client = ollama.Client(host=sim.url)
        names = [m.model for m in client.list().models]
        assert names == ["llama3.2:1b", "nomic-embed-text:latest"]
        shown = client.show(CHAT)
        assert shown.details is not None and shown.details.family == "llama"
        assert shown.capabilities == ["completion", "tools"] and shown.modelinfo
        reply = client.generate(model=CHAT, prompt="hello")
        assert reply.done and reply.response and reply.eval_count
        streamed = "".join(p.response or "" for p in client.generate(model=CHAT, prompt="hello", stream=True))
        assert streamed == reply.response
        chat = client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}])
        assert chat.message.role == "assistant" and chat.message.content
        parts = list(client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert "".join(p.message.content or "" for p in parts) == chat.message.content and parts[-1].done
        assert [m.model for m in client.ps().models] == [CHAT]
        vectors = client.embed(model=EMBED, input=["a", "b"]).embeddings
        assert len(vectors) == 2 and abs(sum(v * v for v in vectors[0]) - 1) < 1e-6
        assert client.embeddings(model=EMBED, prompt="a").embedding

        statuses = [p.status or "" for p in client.pull("qwen2.5:0.5b", stream=True)]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
        assert "verifying sha256 digest" in statuses and any(s.startswith("pulling ") for s in statuses[1:])
        pushed = [p.status for p in client.push("qwen2.5:0.5b", stream=True)]
        assert pushed[0] == "retrieving manifest" and pushed[-1] == "success"
        assert client.copy("qwen2.5:0.5b", "mine:v1").status == "success"
        assert client.create(model="derived", from_=CHAT, system="be brief").status == "success"
        assert {"qwen2.5:0.5b", "mine:v1", "derived:latest"} <= {m.model for m in client.list().models}
        assert client.delete("mine:v1").status == "success"
        with pytest.raises(ollama.ResponseError) as missing:
            client.delete("mine:v1")
        assert missing.value.status_code == 404 and missing.value.error == "model 'mine:v1' not found"

        blob = tmp_path / "adapter.bin"
        blob.write_bytes(b"weights" * 50_000)
        digest = client.create_blob(blob)  # a file: sent with Content-Length
        assert digest == "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
        assert client.create(model="from-files", files={"model.gguf": digest}).status == "success"

    await asyncio.to_thread(tour)
    assert sim.state.last_body["/api/create"]["files"]


async def test_ollama_async_client(sim: Sim, tmp_path: Path) -> None:
    client = ollama.AsyncClient(host=sim.url)
    assert len((await client.list()).models) == 2
    reply = await client.chat(
        model=CHAT, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3}
    )
    assert reply.done_reason == "length" and reply.eval_count == 3
    chunks = [c async for c in await client.generate(model=CHAT, prompt="x", stream=True)]
    assert chunks[-1].done and chunks[-1].context
    pulled = [p async for p in await client.pull("tinyllama", stream=True)]
    assert pulled[-1].status == "success" and any(p.total and p.completed == p.total for p in pulled)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"x" * 200_000)
    digest = await client.create_blob(blob)  # an async generator: sent chunked
    assert sim.state.blob_present(digest)
    with pytest.raises(ollama.ResponseError) as err:
        await client.show("ghost")
    assert err.value.status_code == 404
    assert (await client.generate(model=CHAT, prompt="")).done_reason == "load"
    assert [m.model for m in (await client.ps()).models] == [CHAT]
    assert (await client.generate(model=CHAT, prompt="", keep_alive=0)).done_reason == "unload"
    assert (await client.ps()).models == []
    with pytest.raises(ollama.ResponseError) as refused:
        await client.generate(model=EMBED, prompt="hi")
    assert refused.value.status_code == 400 and "does not support generate" in refused.value.error


# --- the official openai client ------------------------------------------------------------------


async def test_openai_client(sim: Sim) -> None:
    def tour() -> None:
        client = openai.OpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0)
        done = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}])
        text = done.choices[0].message.content
        assert (
            text and done.choices[0].finish_reason == "stop" and done.usage and done.usage.completion_tokens
        )
        stream = client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert chunks[-1].usage is not None and not chunks[-1].choices
        completion = client.completions.create(model=CHAT, prompt="Say", max_tokens=2)
        assert completion.choices[0].finish_reason == "length" and completion.choices[0].text
        streamed = "".join(
            c.choices[0].text for c in client.completions.create(model=CHAT, prompt="Say", stream=True)
        )
        assert streamed == client.completions.create(model=CHAT, prompt="Say").choices[0].text

        vectors = client.embeddings.create(model=EMBED, input=["one", "two"])  # base64 on the wire
        floats = client.embeddings.create(model=EMBED, input=["one", "two"], encoding_format="float")
        for packed, plain in zip(vectors.data, floats.data, strict=True):
            assert packed.embedding == pytest.approx(plain.embedding, abs=1e-6)
        assert [m.id for m in client.models.list()] == ["llama3.2:1b", "nomic-embed-text:latest"]
        assert client.models.retrieve(CHAT).owned_by == "library"
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="ghost", messages=[{"role": "user", "content": "hi"}])
        assert missing.value.body == {
            "message": "model 'ghost' not found",
            "type": "not_found_error",
            "param": None,
            "code": None,
        }

    await asyncio.to_thread(tour)
    assert sim.state.last_body["/v1/embeddings"]["encoding_format"] == "float"


async def test_openai_raw_sse_framing_and_base64(sim: Sim, http: aiohttp.ClientSession) -> None:
    body = {"model": CHAT, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with http.post(sim.url + "/v1/chat/completions", json=body) as resp:
        assert resp.content_type == "text/event-stream"
        events = (await resp.read()).decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-2])
    async with http.post(
        sim.url + "/v1/embeddings", json={"model": EMBED, "input": "q", "encoding_format": "base64"}
    ) as resp:
        packed = (await resp.json())["data"][0]["embedding"]
    async with http.post(sim.url + "/api/embed", json={"model": EMBED, "input": "q"}) as resp:
        native = (await resp.json())["embeddings"][0]
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(native, abs=1e-6)


async def test_openai_mid_stream_error_raises(sim: Sim) -> None:
    sim.state.error_mid_stream_after(1)
    client = openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="simulated failure"):
        async for _ in stream:
            pass
    await client.close()


# --- the official anthropic client ---------------------------------------------------------------


async def test_anthropic_client(sim: Sim) -> None:
    def tour() -> None:
        client = anthropic.Anthropic(base_url=sim.url, api_key="x", max_retries=0)
        message = client.messages.create(
            model=CHAT, max_tokens=100, messages=[{"role": "user", "content": "hi"}], system="be kind"
        )
        assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
        text = message.content[0].text  # type: ignore[union-attr]
        with client.messages.stream(
            model=CHAT, max_tokens=100, messages=[{"role": "user", "content": "hi"}], system="be kind"
        ) as stream:
            assert "".join(stream.text_stream) == text
            final = stream.get_final_message()
        assert final.stop_reason == "end_turn" and final.usage.output_tokens == message.usage.output_tokens
        short = client.messages.create(model=CHAT, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        assert short.stop_reason == "max_tokens"
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.messages.create(model="ghost", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        body = missing.value.body
        assert isinstance(body, dict) and body.pop("request_id").startswith("req_")  # as Ollama 0.17.4
        assert body == {
            "type": "error",
            "error": {"type": "not_found_error", "message": "model 'ghost' not found"},
        }

    await asyncio.to_thread(tour)


async def test_anthropic_sse_event_order(sim: Sim, http: aiohttp.ClientSession) -> None:
    body = {"model": CHAT, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with http.post(sim.url + "/v1/messages", json=body) as resp:
        blocks = (await resp.read()).decode().strip().split("\n\n")
    names = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    assert names[:2] == ["message_start", "content_block_start"]  # no ping: Ollama 0.17.4 sends none
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
