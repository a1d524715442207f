"""Request bodies cost the proxy bounded memory (issue 18), measured on a proxy subprocess:
a held body is inspected for `stream` and `model` without building a JSON bomb, and small bodies
read whole while the VM is up count in the held-body budget (past it they are streamed)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from proxy_process import ProxyProcess, proxy_process, tls_upstream
from proxy_world import MODELS

from remote_ollama.proxy.held_body import held_fields
from remote_ollama.sandbox.ollama.server import make_ollama_app

MiB = 1 << 20


def bomb(size: int) -> bytes:
    """`{"model": "m", "x": [[],[],...]}`: 20 MiB of it parsed whole took the proxy +525 MiB."""
    head, tail = b'{"model": "granite3.1-dense:8b", "x": [', b"[]]}"
    return head + b"[]," * ((size - len(head) - len(tail)) // 3) + tail


async def test_a_held_json_bomb_is_not_built(tmp_path: Path) -> None:
    body = bomb(20 * MiB)
    async with (
        tls_upstream(make_ollama_app(MODELS)) as up,
        proxy_process(up.url, tmp_path, "--down") as proxy,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http,
    ):
        base = proxy.status_kib("VmRSS") / 1024
        headers = {"X-Remote-Ollama-Progress": "true", "Content-Type": "application/json"}
        async with http.post(f"{proxy.url}/api/generate", data=body, headers=headers) as r:
            assert r.status == 200
            first = json.loads(await r.content.readline())  # read once the body was inspected
        peak = proxy.status_kib("VmHWM") / 1024
    assert first.get("model") == "granite3.1-dense:8b" and first.get("done") is False, first
    # the body itself is held (20 MiB, within maxHeldBodyBytes); what was built from it is not
    assert peak - base < 20 + 48, f"proxy RSS {base:.0f} -> peak {peak:.0f} MiB for a 20 MiB bomb"


def read_bytes(proxy: ProxyProcess) -> int:
    for line in Path(f"/proc/{proxy.proc.pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


async def test_slow_small_bodies_count_in_the_held_body_budget(tmp_path: Path) -> None:
    """150 clients each send 255 KiB of a 256 KiB prompt and stall, while the VM is up: read whole,
    they took +49 MiB; counted in a 2 MiB budget, all but a few are streamed to the VM instead."""
    n, size, sent = 150, 256 * 1024, 255 * 1024
    async with (
        tls_upstream(make_ollama_app(MODELS)) as up,
        proxy_process(up.url, tmp_path, "--max-body", str(MiB)) as proxy,
    ):
        base = proxy.status_kib("VmRSS") / 1024
        before = read_bytes(proxy)
        port = int(proxy.url.rsplit(":", 1)[1])
        writers, readers = [], []
        head = (
            f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        for _ in range(n):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + b'{"prompt": "' + b"x" * (sent - 12))
            writers.append(writer)
            readers.append(reader)
        for writer in writers:
            await writer.drain()
        deadline = time.monotonic() + 60
        while read_bytes(proxy) - before < n * sent:  # every byte sent has reached the proxy
            assert time.monotonic() < deadline, "the proxy did not read the bodies"
            await asyncio.sleep(0.05)
        grown = proxy.status_kib("VmRSS") / 1024 - base
        refused = await asyncio.wait_for(readers[-1].read(4096), 30)  # past the budget: told at once
        for writer in writers:
            writer.close()
    assert grown < 24, f"proxy RSS grew {grown:.0f} MiB for {n} stalled {size // 1024} KiB bodies"
    status_line, _, rest = refused.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 503") and b"Retry-After" in rest, refused
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"].startswith("too many request bodies"), refused


def test_held_fields_read_only_what_they_need() -> None:
    big = bomb(2 * MiB)
    assert held_fields(big) == (True, "granite3.1-dense:8b")
    assert held_fields(b'{"model": "m", "stream": false, "x": ' + b"[]," * 20000 + b"[]]}") == (False, "m")
    assert held_fields(b'{"model": "m", "messages": [{"role": "user"}], "stream": false}') == (False, "m")
    assert held_fields(b"[1, 2]") == (False, "") and held_fields(b"not json") == (False, "")
    assert held_fields(b"") == (True, "")


async def test_a_huge_polling_answer_from_the_vm_is_not_read_whole(tmp_path: Path) -> None:
    """The VM runs the tenant's image: a 64 MiB /api/tags is cut at 1 MiB and the client gets the
    last list the proxy saw (Ollama-shaped) instead."""
    chunk = b'{"name":"x"},' * (MiB // 4 // 13)

    async def tags(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"models":[')
        for _ in range(256):  # 64 MiB
            if request.transport is None or request.transport.is_closing():
                break
            await resp.write(chunk)
            await asyncio.sleep(0.005)
        return resp

    app = web.Application()
    app.router.add_get("/api/tags", tags)
    async with (
        tls_upstream(app) as up,
        proxy_process(up.url, tmp_path) as proxy,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        base = proxy.status_kib("VmRSS") / 1024
        async with http.get(f"{proxy.url}/api/tags") as r:
            answer = await r.json()
        peak = proxy.status_kib("VmHWM") / 1024
    assert "models" in answer and len(answer["models"]) < 1000, str(answer)[:200]
    assert peak - base < 48, f"proxy RSS {base:.0f} -> peak {peak:.0f} MiB for a 64 MiB /api/tags"
