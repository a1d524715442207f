"""Many concurrent streaming clients through one proxy process: every stream complete, no error,
memory reported (1 000 clients take a few seconds here, so no slow marker is needed)."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from pathlib import Path

import aiohttp
from proxy_process import proxy_process, tls_upstream
from proxy_world import MODELS
from summary import record

from remote_ollama.sandbox.ollama.server import make_ollama_app


async def stream_many(n: int, tmp_path: Path) -> tuple[int, int, float, float]:
    """(complete streams, errors, seconds, proxy RSS MiB at peak) for `n` concurrent clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * n + 256)), hard))
    async with (
        tls_upstream(make_ollama_app(MODELS, token_delay=0.01)) as up,
        proxy_process(up.url, tmp_path) as proxy,
    ):
        complete = errors = 0
        peak = proxy.rss_mib()
        gate = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def client(i: int) -> None:
                nonlocal complete, errors
                await gate.wait()
                body = {"model": MODELS[0], "prompt": f"tell me about {i}", "options": {"num_predict": 20}}
                try:
                    async with http.post(f"{proxy.url}/api/generate", json=body) as r:
                        lines = [json.loads(line) async for line in r.content if line.strip()]
                    ok = r.status == 200 and lines and lines[-1].get("done") is True and len(lines) > 1
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    ok = False
                if ok:
                    complete += 1
                else:
                    errors += 1

            tasks = [asyncio.create_task(client(i)) for i in range(n)]
            started = time.monotonic()
            gate.set()
            pending = set(tasks)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=0.2)
                peak = max(peak, proxy.rss_mib())
            seconds = time.monotonic() - started
            # The proxy still serves afterwards, and counted no 5xx of its own.
            async with http.get(f"{proxy.url}/api/tags") as r:
                assert r.status == 200
            ok = await proxy.metric(http, "remote_ollama_proxy_requests_total", code="200")
            fivexx = await proxy.metric(http, "remote_ollama_proxy_requests_total", code="502")
            assert (ok, fivexx) == (n + 1, 0)
    return complete, errors, seconds, peak


async def test_1000_concurrent_streaming_clients(tmp_path: Path) -> None:
    complete, errors, seconds, peak = await stream_many(1000, tmp_path)
    record("1000 concurrent streams", errors=errors, rss_mib=peak, note=f"{seconds:.1f}s, proxy subprocess")
    assert (complete, errors) == (1000, 0)
    assert peak < 400, f"proxy RSS {peak:.0f} MiB for 1000 streams"
