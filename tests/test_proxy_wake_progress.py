"""Streaming generate/chat held for a wake get progress chunks first (when asked), then the answer,
in one response that the official `ollama` client reads as ordinary chunks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import ollama
import pytest
from proxy_world import MODELS, World, world

from remote_ollama.proxy.app import PROXY_KEY
from remote_ollama.proxy.interfaces import ProxySettings, wake_progress_from_env
from remote_ollama.proxy.waking import PROGRESS_HEADER

MODEL = MODELS[0]
FAST = ProxySettings(pull_progress_interval=0.02)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def first_request_count(w: World) -> float:
    metrics = w.proxy[PROXY_KEY].metrics
    value = metrics.registry.get_sample_value("remote_ollama_proxy_wake_first_request_seconds_count")
    return value or 0.0


async def held(w: World, count: int) -> None:
    hold = w.proxy[PROXY_KEY].hold
    async with asyncio.timeout(10):
        while hold.held < count:
            await asyncio.sleep(0.005)


async def test_official_client_reads_progress_chunks_then_the_answer() -> None:
    async with world(FAST, ready=False) as w:
        w.resolver.set_down("Starting")
        client = ollama.AsyncClient(host=w.url, headers={PROGRESS_HEADER: "true"})
        stream = await client.generate(model=MODEL, prompt="why is the sky blue?", stream=True)
        chunks = aiter(stream)
        first = await anext(chunks)
        assert first.model == MODEL and first.response == "" and first.done is False
        await w.sink.woken.wait()  # the held request asked for the wake
        second = await anext(chunks)
        assert second.response == "" and not second.done
        w.resolver.set_ready(w.upstream)
        rest = [c async for c in chunks]
    assert rest[-1].done and rest[-1].done_reason == "stop"
    assert "".join(c.response for c in rest)  # the real answer follows in the same response
    # the proxy's own header never reaches the VM
    assert PROGRESS_HEADER.lower() not in {k.lower() for k in w.state.last_headers["/api/generate"]}


async def test_progress_lines_say_what_is_happening(http: aiohttp.ClientSession) -> None:
    async with world(FAST, ready=False) as w:
        w.resolver.set_down("Starting")
        body = {"model": MODEL, "prompt": "hi"}
        async with http.post(f"{w.url}/api/generate", json=body, headers={PROGRESS_HEADER: "true"}) as r:
            assert r.status == 200 and r.content_type == "application/x-ndjson"
            line = json.loads(await r.content.readline())
            w.resolver.set_ready(w.upstream)
            rest = [json.loads(x) async for x in r.content]
    assert line["remote_ollama"] == {"status": "waking remote instance (Starting)", "phase": "Starting"}
    assert {"model", "created_at", "response", "done"} <= line.keys() and line["created_at"].endswith("Z")
    assert rest[-1]["done"] is True and "remote_ollama" not in rest[-1]


async def test_chat_by_proxy_setting_gets_chat_shaped_progress() -> None:
    async with world(ProxySettings(pull_progress_interval=0.02, wake_progress=True), ready=False) as w:
        w.resolver.set_down("Provisioning")
        client = ollama.AsyncClient(host=w.url)  # no header: the proxy setting turns progress on
        stream = await client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        chunks = aiter(stream)
        first = await anext(chunks)
        assert first.message.role == "assistant" and first.message.content == "" and not first.done
        w.resolver.set_ready(w.upstream)
        rest = [c async for c in chunks]
    assert rest[-1].done and "".join(c.message.content or "" for c in rest)


async def test_without_header_or_setting_a_held_stream_has_no_progress(http: aiohttp.ClientSession) -> None:
    async def ask() -> list[dict[str, object]]:
        async with http.post(f"{w.url}/api/generate", json={"model": MODEL, "prompt": "hi"}) as r:
            return [json.loads(x) async for x in r.content]

    async with world(FAST, ready=False) as w:
        task = asyncio.create_task(ask())
        await held(w, 1)
        w.resolver.set_ready(w.upstream)
        lines = await task
    assert all("remote_ollama" not in line for line in lines)
    assert lines[0]["response"] != "" and lines[-1]["done"] is True


async def test_non_streaming_requests_never_get_progress(http: aiohttp.ClientSession) -> None:
    async def ask() -> dict[str, object]:
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        async with http.post(f"{w.url}/api/generate", json=body, headers={PROGRESS_HEADER: "true"}) as r:
            answer: dict[str, object] = await r.json()
            return answer

    async with world(FAST, ready=False) as w:
        task = asyncio.create_task(ask())
        await held(w, 1)
        w.resolver.set_ready(w.upstream)
        answer = await task
    assert answer["done"] is True and answer["response"] and "remote_ollama" not in answer


async def test_a_progress_stream_that_times_out_ends_with_an_error_the_client_raises() -> None:
    settings = ProxySettings(pull_progress_interval=0.02, hold_timeout=0.2, wake_progress=True)
    async with world(settings, ready=False) as w:
        client = ollama.AsyncClient(host=w.url)
        stream = await client.generate(model=MODEL, prompt="hi", stream=True)
        with pytest.raises(ollama.ResponseError, match="not ready"):
            async for _ in stream:
                pass
        assert first_request_count(w) == 0  # nobody was served: no first-request time


async def test_first_request_of_a_wake_is_timed_once_per_wake(http: aiohttp.ClientSession) -> None:
    async def ask(headers: dict[str, str] | None = None) -> int:
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        async with http.post(f"{w.url}/api/generate", json=body, headers=headers) as r:
            await r.read()
            return r.status

    async with world(FAST, ready=False) as w:
        tasks = [asyncio.create_task(ask()), asyncio.create_task(ask({PROGRESS_HEADER: "1"}))]
        await held(w, 2)
        assert first_request_count(w) == 0
        w.resolver.set_ready(w.upstream)
        assert await asyncio.gather(*tasks) == [200, 200]
        assert first_request_count(w) == 1  # two held requests, one wake
        assert await ask() == 200  # not held: not a wake
        assert first_request_count(w) == 1
        w.resolver.set_down("Stopped")
        task = asyncio.create_task(ask())
        await held(w, 1)
        w.resolver.set_ready(w.upstream)
        assert await task == 200
        assert first_request_count(w) == 2


def test_wake_progress_env() -> None:
    assert wake_progress_from_env({"REMOTE_OLLAMA_WAKE_PROGRESS": "1"})
    assert wake_progress_from_env({"REMOTE_OLLAMA_WAKE_PROGRESS": "true"})
    assert not wake_progress_from_env({"REMOTE_OLLAMA_WAKE_PROGRESS": "0"})
    assert not wake_progress_from_env({})
