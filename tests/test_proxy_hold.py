"""Requests that find the VM down wake it and wait, within bounds; polling never wakes it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from proxy_world import MODELS, World, world

from remote_ollama.proxy.app import PROXY_KEY
from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.proxy.polling import CACHED_HEADER

MODEL = MODELS[0]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        yield s


async def wait_held(w: World, count: int) -> None:
    hold = w.proxy[PROXY_KEY].hold
    async with asyncio.timeout(10):
        while hold.held < count:
            await asyncio.sleep(0.005)


async def test_held_requests_all_succeed_once_ready_and_the_257th_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    async with world(ProxySettings(max_held_requests=256), ready=False) as w:
        w.resolver.set_down("Stopped")

        async def ask(i: int) -> tuple[int, dict[str, object]]:
            body = {"model": MODEL, "prompt": f"q{i}", "stream": False}
            async with http.post(f"{w.url}/api/generate", json=body) as r:
                return r.status, await r.json()

        held = [asyncio.create_task(ask(i)) for i in range(256)]
        await wait_held(w, 256)
        assert len(w.sink.wakes) == 1  # written at once, once
        async with http.post(f"{w.url}/api/generate", json={"model": MODEL}) as r:
            assert r.status == 503
            assert int(r.headers["Retry-After"]) > 0
            body = await r.json()
        assert body["provisioning"] is True and body["status"] == "Stopped" and body["error"]
        async with http.get(f"{w.url}/status") as r:
            assert (await r.json())["held_requests"] == 256
        w.resolver.set_ready(w.upstream)
        results = await asyncio.gather(*held)
        assert all(status == 200 and answer["done"] for status, answer in results)
        assert len(results) >= 200


async def test_hold_timeout_gives_the_503_body(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(hold_timeout=0.2), ready=False) as w:
        w.resolver.set_down("Starting")
        async with http.post(f"{w.url}/api/chat", json={"model": MODEL, "messages": []}) as r:
            assert r.status == 503
            assert "Retry-After" in r.headers
            body = await r.json()
        assert set(body) == {"error", "provisioning", "status"}
        assert body["provisioning"] is True and body["status"] == "Starting"
        assert w.sink.wakes


async def test_immediate_503_mode_answers_at_once_and_wakes(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(immediate_503=True, hold_timeout=60), ready=False) as w:
        w.resolver.set_down("Provisioning")
        async with asyncio.timeout(2):
            async with http.post(f"{w.url}/api/generate", json={"model": MODEL}) as r:
                assert r.status == 503
                assert (await r.json())["status"] == "Provisioning"
        assert len(w.sink.wakes) == 1


async def test_polling_never_wakes_and_answers_what_was_last_seen(http: aiohttp.ClientSession) -> None:
    async with world() as w:
        async with http.get(f"{w.url}/api/tags") as r:
            live = await r.json()
            assert CACHED_HEADER not in r.headers
        w.resolver.set_down("Stopped")
        for path in ("/api/tags", "/", "/api/ps"):
            async with http.get(f"{w.url}{path}") as r:
                if path == "/api/tags":
                    assert r.status == 200 and r.headers[CACHED_HEADER] == "true"
                    assert await r.json() == live
                elif path == "/":
                    assert await r.text() == "Ollama is running"
                else:  # no VM runs, so nothing is loaded (it was once 503 when never seen)
                    assert r.status == 200 and await r.json() == {"models": []}
        async with http.head(f"{w.url}/") as r:
            assert r.status == 200
        async with http.get(f"{w.url}/favicon.ico") as r:  # a stray path does not wake a GPU VM
            assert r.status == 404
        assert w.sink.wakes == [] and w.sink.touches == []


async def test_streaming_pull_reports_waking_then_the_real_pull(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(pull_progress_interval=0.02), ready=False) as w:
        w.resolver.set_down("Starting")
        async with http.post(f"{w.url}/api/pull", json={"model": "qwen3:0.6b"}) as r:
            assert r.status == 200
            first = json.loads(await r.content.readline())
            assert first["status"].startswith("waking remote instance")
            await w.sink.woken.wait()
            second = json.loads(await r.content.readline())
            assert second["status"].startswith("waking remote instance")
            w.resolver.set_ready(w.upstream)
            rest = [json.loads(line) async for line in r.content]
        statuses = [line.get("status") for line in rest]
        assert statuses[-1] == "success"
        assert w.state.find("qwen3:0.6b") is not None


async def test_streaming_pull_that_times_out_ends_with_an_error_line(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(pull_progress_interval=0.02, hold_timeout=0.1), ready=False) as w:
        async with http.post(f"{w.url}/api/pull", json={"model": "qwen3:0.6b"}) as r:
            lines = [json.loads(line) async for line in r.content]
        assert "error" in lines[-1] and lines[0]["status"].startswith("waking")


async def test_a_held_request_counts_as_activity(http: aiohttp.ClientSession) -> None:
    async with world(ready=False) as w:
        task = asyncio.create_task(http.post(f"{w.url}/api/generate", json={"model": MODEL, "stream": False}))
        await wait_held(w, 1)
        reporter = w.proxy[PROXY_KEY].reporter
        await reporter.settle()
        assert reporter.in_flight == 1 and len(w.sink.touches) == 1
        w.resolver.set_ready(w.upstream)
        async with await task as r:
            assert r.status == 200


async def test_a_get_never_wakes_the_vm(http: aiohttp.ClientSession) -> None:
    """Any web page can make a browser GET the proxy (an <img src=http://127.0.0.1:11434/...>):
    reads are answered at once while the VM sleeps, and never start it."""
    async with world() as w:
        w.resolver.set_down("Stopped")
        for path in ("/v1/models", "/v1/models/granite"):  # known without the VM: from memory
            async with http.get(f"{w.url}{path}") as r:
                assert r.status in (200, 404), path
        for path in ("/api/generate", "/api/show?name=x"):
            async with http.get(f"{w.url}{path}") as r:
                assert r.status == 503, path
                assert "does not wake it" in (await r.json())["error"]
        async with http.head(f"{w.url}/api/generate") as r:
            assert r.status == 503
        assert w.sink.wakes == []
