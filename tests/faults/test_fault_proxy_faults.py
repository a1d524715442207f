"""The proxy under faults: upstream killed mid-stream, the VM going down while requests are held,
slow-loris clients, malformed HTTP, oversized headers, a client that never reads (bounded memory)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from proxy_process import proxy_process, tls_upstream
from proxy_world import MODELS, world
from summary import record
from waiting import deadline, until

from remote_ollama.proxy.app import PROXY_KEY
from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.sandbox.ollama.server import make_ollama_app

MODEL = MODELS[0]


async def test_upstream_killed_mid_stream_ends_streams_cleanly_and_the_proxy_keeps_serving(
    tmp_path: Path,
) -> None:
    async with (
        tls_upstream(make_ollama_app(MODELS, token_delay=0.02)) as up,
        proxy_process(up.url, tmp_path) as proxy,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
    ):
        outcomes: list[str] = []
        first_lines = asyncio.Semaphore(0)

        async def client() -> None:
            body = {"model": MODEL, "prompt": "long", "options": {"num_predict": 500}}
            lines: list[dict[str, Any]] = []
            try:
                async with http.post(f"{proxy.url}/api/generate", json=body) as r:
                    assert r.status == 200
                    async for raw in r.content:
                        if not lines:
                            first_lines.release()
                        lines.append(json.loads(raw))
            except aiohttp.ClientPayloadError:
                outcomes.append("closed")
                return
            if lines and "error" in lines[-1]:
                outcomes.append("error line")
            elif lines and lines[-1].get("done"):
                outcomes.append("complete")  # would mean the cut came too late
            else:
                outcomes.append("truncated silently")

        clients = [asyncio.create_task(client()) for _ in range(20)]
        for _ in clients:
            await asyncio.wait_for(first_lines.acquire(), 10)
        cut = up.cut_connections()
        await asyncio.wait_for(asyncio.gather(*clients), deadline(30))
        # As many requests again after the cut: each must work as before.
        served = 0
        for _ in clients:
            body = {"model": MODEL, "prompt": "again", "stream": False}
            async with http.post(f"{proxy.url}/api/generate", json=body) as r:
                served += r.status == 200 and (await r.json())["done"] is True
        record(
            "upstream killed mid-stream",
            injected=len(outcomes),
            recovered=served,
            errors=len(clients) - served,
            rss_mib=proxy.rss_mib(),
            note=f"{sorted(set(outcomes))}, then {served} requests served",
        )
        assert cut >= 1
        assert set(outcomes) <= {"closed", "error line"}, outcomes
        assert served == len(clients)


async def ask(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], Any]:
    body = {"model": MODEL, "prompt": "x", "stream": False}
    async with http.post(f"{url}/api/generate", json=body) as r:
        return r.status, dict(r.headers), await r.json()


async def test_held_requests_get_the_503_body_when_the_vm_stays_down_then_work_when_it_is_back() -> None:
    settings = ProxySettings(hold_timeout=0.5, retry_after=7)
    async with world(settings) as w, aiohttp.ClientSession() as http:
        w.resolver.set_down("Stopping")  # the VM went away
        answers = await asyncio.wait_for(asyncio.gather(*(ask(http, w.url) for _ in range(10))), deadline(30))
        for status, headers, body in answers:
            assert status == 503 and headers["Retry-After"] == "7"
            assert body["provisioning"] is True and body["status"] == "Stopping" and body["error"]
        w.resolver.set_ready(w.upstream)  # back: the clients' retries are served
        retried = await asyncio.gather(*(ask(http, w.url) for _ in answers))
        served = sum(status == 200 for status, _, _ in retried)
        record("VM down past the hold", injected=len(answers), recovered=served, errors=len(answers))
        assert served == len(answers)


async def test_requests_held_while_the_vm_is_down_are_served_when_it_returns() -> None:
    async with world(ProxySettings(hold_timeout=3600), ready=False) as w, aiohttp.ClientSession() as http:
        w.resolver.set_down("Starting")
        hold = w.proxy[PROXY_KEY].hold
        held = [asyncio.create_task(ask(http, w.url)) for _ in range(10)]
        await until(lambda: hold.held == len(held) or any(t.done() for t in held), what="all 10 held")
        assert hold.held == len(held) and not any(t.done() for t in held)
        assert w.state.requests["/api/generate"] == 0, "nothing reached the VM while it was down"
        w.resolver.set_ready(w.upstream)
        answers = await asyncio.wait_for(asyncio.gather(*held), deadline(30))
        served = sum(status == 200 and body["done"] is True for status, _, body in answers)
        record("VM down while held", injected=len(held), recovered=served, errors=len(held) - served)
        assert served == len(held) and hold.held == 0


async def _raw(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


async def test_slow_loris_and_malformed_http_do_not_hurt_other_clients() -> None:
    timeout = aiohttp.ClientTimeout(total=deadline(30))  # hurt: a request stuck behind them
    async with world() as w, aiohttp.ClientSession(timeout=timeout) as http:
        port = int(w.url.rsplit(":", 1)[1])
        # 100 clients sending their headers a byte at a time, never finishing.
        loris: list[asyncio.StreamWriter] = []
        for _ in range(100):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            loris.append(writer)

        async def drip() -> None:
            while True:
                for writer in loris:
                    writer.write(b"X")
                await asyncio.sleep(0.05)

        dripping = asyncio.create_task(drip())
        try:
            started, served = time.monotonic(), 0
            for _ in loris:  # one request per slow client, served beside them all
                async with http.post(f"{w.url}/api/generate", json={"model": MODEL, "stream": False}) as r:
                    served += r.status == 200
            served_in = time.monotonic() - started

            garbage = [
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # TLS to a plain port
                b"GET / HTTP/9.9\r\n\r\n",
                b"NOT HTTP AT ALL\r\n\r\n",
                b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
                b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
                b"GET /\x00\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            ]
            codes = []
            for payload in garbage:  # each one answered 4xx or closed, then the next client is served
                answer = await _raw(port, payload)
                codes.append(answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.") else b"")
                async with http.get(f"{w.url}/api/tags") as r:
                    served += r.status == 200
        finally:
            dripping.cancel()
            for writer in loris:
                writer.close()
    faults = len(loris) + len(garbage)
    record(
        "slow-loris x100 + malformed x7",
        injected=faults,
        recovered=served,
        errors=faults - served,
        note=f"{len(loris)} requests in {served_in:.2f}s beside them",
    )
    assert served == faults
    assert all(c.startswith(b"4") or c == b"" for c in codes), list(zip(codes, garbage, strict=True))


def firehose_app(state: dict[str, int]) -> web.Application:
    """An upstream that streams NDJSON as fast as it can be taken, counting what got through."""

    async def generate(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        line = json.dumps({"model": MODEL, "response": "x" * 1000, "done": False}).encode() + b"\n"
        chunk = line * 64
        try:
            while state["sent"] < 1 << 30:
                await response.write(chunk)
                state["sent"] += len(chunk)
        except (ConnectionError, RuntimeError):
            state["cut"] = 1
        return response

    app = web.Application()
    app.router.add_post("/api/generate", generate)
    return app


async def test_a_client_that_never_reads_is_backpressured_and_memory_stays_bounded(tmp_path: Path) -> None:
    state = {"sent": 0, "cut": 0}
    async with (
        tls_upstream(firehose_app(state)) as up,
        proxy_process(up.url, tmp_path) as proxy,
        aiohttp.ClientSession() as http,
    ):
        base = proxy.rss_mib()
        port = int(proxy.url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
        # Never read. Wait until the upstream is throttled: nothing more gets through for 0.5 s.
        end = time.monotonic() + deadline(30)
        last, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 0.5:
            assert time.monotonic() < end, f"the upstream was never throttled ({state['sent']} B)"
            if state["sent"] != last:
                last, still_since = state["sent"], time.monotonic()
            await asyncio.sleep(0.05)
        peak = proxy.rss_mib()
        stalled_at = state["sent"]
        assert stalled_at < 64 << 20, f"{stalled_at >> 20} MiB went through to a client that reads nothing"
        assert peak - base < 64, f"proxy RSS grew {peak - base:.0f} MiB"
        # Others are served meanwhile; the stuck client leaving frees the upstream.
        async with http.get(f"{proxy.url}/healthz") as r:
            assert r.status == 200
        sock.close()
        await until(lambda: state["cut"] == 1, what="the upstream released once the client left")
        record(
            "client never reads",
            injected=1,
            recovered=state["cut"],
            rss_mib=peak,
            note=f"upstream throttled at {stalled_at / 2**20:.1f} MiB, RSS +{peak - base:.1f} MiB",
        )
