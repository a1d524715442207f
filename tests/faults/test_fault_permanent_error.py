"""A held request does not wait out the hold timeout for an error retrying cannot fix (no quota):
it gets the 503 with the reason as soon as one lifecycle round has seen that error."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
from standalone_world import MODEL, standalone_world
from waiting import LIFECYCLE, deadline, until

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings

HOLD = 3600.0  # far past the client's deadline: an answer within it was not held to the hold timeout


async def test_quota_error_fails_held_requests_fast_with_the_reason(tmp_path: Path) -> None:
    assert deadline(LIFECYCLE) < HOLD
    async with standalone_world(tmp_path, max_backoff=60.0) as w:
        w.scenario = "quota: held requests fail fast"
        w.sim.exceed_quota("gpua5000")
        w.inject()
        c = w.controller
        runner, port = await start_proxy(
            make_proxy_app(c, c, ProxySettings(hold_timeout=HOLD)), "127.0.0.1", 0
        )
        url = f"http://127.0.0.1:{port}/api/generate"
        try:
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=deadline(LIFECYCLE))
            ) as http:
                for _ in range(2):  # the first request finds the error, the second one already knows it
                    started = time.monotonic()
                    async with http.post(url, json={"model": MODEL, "prompt": "x"}) as resp:
                        body = await resp.json()
                    w.note = f"503 with the reason after {time.monotonic() - started:.2f}s, not {HOLD:g}s"
                    # no retry can help until the quota is raised: no Retry-After, the reason says why
                    assert resp.status == 503 and "Retry-After" not in resp.headers, body
                    assert body["provisioning"] is False and body["reason"] == "QuotaExceeded", body
                    assert "quota" in body["error"].lower() and "gpua5000" in body["error"], body
                assert w.live() == []
                w.sim.set_quota("gpua5000", 4)  # raised, and a wake asked for: requests are served
                await w.wake()
                async with http.post(url, json={"model": MODEL, "prompt": "x", "stream": False}) as resp:
                    assert resp.status == 200, await resp.text()
            await until(lambda: w.recovered() == len(w.faults()) == 1, what="Ready once the quota is raised")
        finally:
            await runner.cleanup()
