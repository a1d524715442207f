"""The proxy passes Ollama through unchanged: streams, errors, headers, CORS, cancellation, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from proxy_world import API_KEY, MODELS, World, world
from waiting import LIFECYCLE, deadline, until

from remote_ollama.proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink
from remote_ollama.spec.names import API_KEY_HEADER

MODEL = MODELS[0]


@pytest.fixture
async def w() -> AsyncIterator[World]:
    async with world() as w:
        yield w


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def test_streamed_generate_arrives_line_by_line_with_the_vm_key(
    w: World, http: aiohttp.ClientSession
) -> None:
    headers = {API_KEY_HEADER: "client-forged", "Connection": "keep-alive, X-Private", "X-Private": "1"}
    body = {"model": MODEL, "prompt": "hello"}
    async with http.post(f"{w.url}/api/generate", json=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-ndjson"
        assert "Content-Length" not in r.headers
        lines = [json.loads(line) async for line in r.content]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == len(lines) - 1
    assert all(not line["done"] for line in lines[:-1] if "done" in line)
    seen = w.state.last_headers["/api/generate"]
    assert seen[API_KEY_HEADER] == API_KEY  # the client's key is replaced by the VM's
    assert "X-Private" not in seen  # listed in Connection: hop-by-hop
    assert "Accept-Encoding" not in seen


async def test_non_streaming_answer_is_one_json_object(w: World, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{w.url}/api/chat", json={"model": MODEL, "stream": False, "messages": []}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["done"] is True and answer["message"]["role"] == "assistant"


async def test_no_compression_is_added(w: World, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{w.url}/api/tags", headers={"Accept-Encoding": "gzip, br"}) as r:
        assert "Content-Encoding" not in r.headers
        assert {m["name"] for m in json.loads(await r.read())["models"]} == set(MODELS)


async def test_unknown_path_and_wrong_method_are_ollamas_404_and_405(
    w: World, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{w.url}/api/nothing-here") as r:
        assert (r.status, await r.text()) == (404, "404 page not found")
    async with http.get(f"{w.url}/api/generate") as r:
        assert r.status == 405


async def test_head_and_get_root(w: World, http: aiohttp.ClientSession) -> None:
    async with http.head(f"{w.url}/") as r:
        assert r.status == 200
    async with http.get(f"{w.url}/") as r:
        assert await r.text() == "Ollama is running"


async def test_error_before_stream_keeps_status_and_body(w: World, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{w.url}/api/generate", json={"model": "missing:1b", "prompt": "x"}) as r:
        assert r.status == 404
        assert "not found" in (await r.json())["error"]
    w.state.fail_next(
        "/api/chat", 503, {"error": "server busy, please try again.  maximum pending requests exceeded"}
    )
    async with http.post(f"{w.url}/api/chat", json={"model": MODEL, "messages": []}) as r:
        assert r.status == 503
        assert "maximum pending" in (await r.json())["error"]


async def test_error_mid_stream_is_the_final_line(w: World, http: aiohttp.ClientSession) -> None:
    w.state.error_mid_stream_after(2, "boom in the middle")
    async with http.post(f"{w.url}/api/generate", json={"model": MODEL, "prompt": "x"}) as r:
        assert r.status == 200
        lines = [json.loads(line) async for line in r.content]
    assert lines[-1] == {"error": "boom in the middle"}
    assert len(lines) == 3


async def test_sse_stream_passes_events_intact(w: World, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(f"{w.url}/v1/chat/completions", json=body) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        text = (await r.read()).decode()
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


async def test_origins_as_ollama(w: World, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{w.url}/api/tags", headers={"Origin": "https://evil.example"}) as r:
        assert (r.status, await r.read()) == (403, b"")
    async with http.get(f"{w.url}/api/tags", headers={"Origin": "http://localhost:3000"}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    preflight = {"Origin": "app://obsidian.md", "Access-Control-Request-Method": "POST"}
    async with http.options(f"{w.url}/api/chat", headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "app://obsidian.md"


async def test_preflight_lets_a_browser_post_json(w: World, http: aiohttp.ClientSession) -> None:
    """What a browser needs before it POSTs JSON cross-origin: the method and the header allowed."""
    preflight = {
        "Origin": "http://localhost:5173",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with http.options(f"{w.url}/api/chat", headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        methods = [m.strip() for m in r.headers.get("Access-Control-Allow-Methods", "").split(",")]
        allowed = [h.strip().lower() for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")]
        assert "POST" in methods and "content-type" in allowed
        assert int(r.headers.get("Access-Control-Max-Age", "0")) > 0


async def test_configured_origins_are_allowed(http: aiohttp.ClientSession) -> None:
    async with (
        world(ProxySettings(allowed_origins=("https://*.corp.example",))) as w,
        http.get(f"{w.url}/api/version", headers={"Origin": "https://chat.corp.example"}) as r,
    ):
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://chat.corp.example"


async def _open_stream(
    url: str, path: str, body: dict[str, object]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize("stream", [True, False])
async def test_client_disconnect_cancels_the_upstream_generation(stream: bool) -> None:
    """The generation stalls after its first token, so the simulated Ollama writes nothing more: only
    the proxy closing its upstream connection can end it (how fast: bench/disconnect.py)."""
    async with world() as w:
        w.state.stall_next_after(1)
        reader, writer = await _open_stream(
            w.url, "/api/generate", {"model": MODEL, "prompt": "x", "stream": stream}
        )
        await w.state.wait_active(1, timeout=deadline(30))
        if stream:
            await reader.readuntil(b"}\n")  # a first token went through
        writer.transport.abort()
        cancelled = await w.state.wait_cancelled(1, timeout=deadline(30))
        assert cancelled.chunks_sent == (1 if stream else 0) and w.state.completed_generations == 0
        writer.close()


async def test_unreachable_upstream_is_502(w: World, http: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    w.resolver.set_ready(
        Upstream(f"https://127.0.0.1:{port}", w.upstream.ssl, API_KEY, w.upstream.server_hostname)
    )
    async with http.post(f"{w.url}/api/generate", json={"model": MODEL}) as r:
        assert r.status == 502
        assert "unreachable" in (await r.json())["error"]


async def test_wrong_ca_is_refused(w: World, http: aiohttp.ClientSession) -> None:
    import ssl

    w.resolver.set_ready(
        Upstream(w.upstream_url, ssl.create_default_context(), API_KEY, w.upstream.server_hostname)
    )
    async with http.post(f"{w.url}/api/show", json={"model": MODEL}) as r:
        assert r.status == 502


@pytest.mark.parametrize("chunked", [False, True])
async def test_blob_upload_both_framings(w: World, http: aiohttp.ClientSession, chunked: bool) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    body: object = pieces() if chunked else data
    async with http.post(f"{w.url}/api/blobs/{digest}", data=body) as r:
        assert r.status == 201
    assert w.state.blobs[digest] == len(data)
    async with http.head(f"{w.url}/api/blobs/{digest}") as r:
        assert r.status == 200
    async with http.post(f"{w.url}/api/blobs/{digest}", data=data) as r:  # exists: answered early
        assert r.status == 200


async def test_client_auth_when_configured(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(client_api_keys=frozenset({"k1", "k2"}))) as w:
        async with http.get(f"{w.url}/api/tags") as r:
            assert r.status == 401 and "error" in await r.json()
        async with http.get(f"{w.url}/api/tags", headers={"Authorization": "Bearer k2"}) as r:
            assert r.status == 200
        assert "Authorization" not in w.state.last_headers["/api/tags"]
        async with http.get(f"{w.url}/healthz") as r:
            assert r.status == 200


async def test_own_paths(http: aiohttp.ClientSession) -> None:
    settings = ProxySettings(
        status_extra=lambda: {"service": "remote-ollama", "provisioning_status": "ready"}
    )
    async with world(settings) as w:
        async with http.post(f"{w.url}/api/generate", json={"model": MODEL, "prompt": "x"}) as r:
            await r.read()
        async with http.get(f"{w.url}/status") as r:
            status = await r.json()
        assert status == {
            "service": "remote-ollama",
            "provisioning_status": "ready",
            "phase": "Ready",
            "ready": True,
            "held_requests": 0,
        }
        for path in ("/healthz", "/readyz"):
            async with http.get(f"{w.url}{path}") as r:
                assert r.status == 200
        async with http.get(f"{w.url}/metrics") as r:
            text = await r.text()
        assert 'remote_ollama_proxy_requests_total{code="200",route="/api/generate"} 1.0' in text
        assert 'remote_ollama_proxy_tokens_total{kind="eval"}' in text
        assert "remote_ollama_proxy_upstream_latency_seconds_bucket" in text
        async with http.post(f"{w.url}/status") as r:  # the proxy's own path: never forwarded
            assert r.status == 405


async def test_a_client_hanging_up_as_its_stream_ends_logs_no_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that goes away just as its streamed answer ends is routine: the request ends without a
    traceback in the logs (it escaped from the proxy's write of the stream's end)."""
    caplog.set_level(logging.INFO)
    async with world() as w:
        proxy_port = int(w.url.rsplit(":", 1)[1])
        write_eof = web.StreamResponse.write_eof

        async def gone(self: web.StreamResponse, data: bytes = b"") -> None:
            transport = self._req.transport if self._req is not None else None
            if transport is not None and transport.get_extra_info("sockname")[1] == proxy_port:
                raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
            await write_eof(self, data)

        monkeypatch.setattr(web.StreamResponse, "write_eof", gone)
        reader, writer = await _open_stream(w.url, "/api/generate", {"model": MODEL, "prompt": "x"})
        await reader.readuntil(b'"done":true')
        proxy = w.proxy[PROXY_KEY]
        await until(lambda: proxy.reporter.in_flight == 0, LIFECYCLE, "the proxy to finish the request")
        writer.close()
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


async def test_an_answer_at_hand_leaves_with_its_headers_and_a_slow_one_gets_its_headers_at_once(
    http: aiohttp.ClientSession,
) -> None:
    """A small answer whose body came with its headers goes to the client in one send (it took two:
    headers, then body, a loop round and a syscall more per request: bench/proxy.py); an answer with
    no body yet (a model loading) still gets its status and headers at once."""
    go = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await go.wait()
        await response.write(b'{"done":true}\n')
        return response

    async def show(_: web.Request) -> web.Response:
        return web.json_response({"license": "MIT"})

    vm = web.Application()
    vm.router.add_post("/api/generate", slow)
    vm.router.add_post("/api/show", show)
    sends: list[bytes] = []

    async def count_sends(request: web.Request, _: web.StreamResponse) -> None:
        transport = request.transport
        assert transport is not None
        write, writelines = transport.write, transport.writelines

        def counted_write(data: bytes) -> None:
            sends.append(bytes(data))
            write(data)

        def counted_writelines(chunks: list[bytes]) -> None:
            sends.append(b"".join(chunks))
            writelines(chunks)

        transport.write = counted_write  # type: ignore[method-assign,assignment]
        transport.writelines = counted_writelines  # type: ignore[method-assign,assignment]

    vm_runner = web.AppRunner(vm)
    await vm_runner.setup()
    await web.TCPSite(vm_runner, "127.0.0.1", 0).start()
    vm_url = "http://{}:{}".format(*vm_runner.addresses[0][:2])
    app = make_proxy_app(LocalResolver(Upstream(vm_url)), RecordingSink(), ProxySettings())
    app.on_response_prepare.append(count_sends)
    runner, port = await start_proxy(app, "127.0.0.1", 0)
    try:
        async with http.post(f"http://127.0.0.1:{port}/api/show", json={"model": MODEL}) as r:
            assert r.status == 200 and await r.json() == {"license": "MIT"}
        assert len(sends) == 1 and sends[0].endswith(b'{"license": "MIT"}'), sends
        assert app[PROXY_KEY].held_bodies.in_memory == 0  # its body was counted until sent, then let go
        async with http.post(f"http://127.0.0.1:{port}/api/generate", json={"model": MODEL}) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/x-ndjson"
            go.set()
            assert await r.read() == b'{"done":true}\n'
    finally:
        go.set()
        await runner.cleanup()
        await vm_runner.cleanup()
