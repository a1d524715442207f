"""A held request does not wait out the hold timeout for an error retrying cannot fix (no quota):
it gets the 503 with the reason as soon as one lifecycle round has seen that error."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
from standalone_world import MODEL, standalone_world
from summary import record

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings


async def test_quota_error_fails_held_requests_fast_with_the_reason(tmp_path: Path) -> None:
    async with standalone_world(tmp_path, max_backoff=60.0) as w:
        w.sim.exceed_quota("gpua5000")
        c = w.controller
        runner, port = await start_proxy(make_proxy_app(c, c, ProxySettings(hold_timeout=30)), "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(2):  # the first request finds the error, the second one already knows it
                    started = time.monotonic()
                    async with http.post(
                        f"http://127.0.0.1:{port}/api/generate", json={"model": MODEL, "prompt": "x"}
                    ) as resp:
                        body = await resp.json()
                        waited = time.monotonic() - started
                    # no retry can help until the quota is raised: no Retry-After, the reason says why
                    assert resp.status == 503 and "Retry-After" not in resp.headers, body
                    assert body["provisioning"] is False and body["reason"] == "QuotaExceeded", body
                    assert "quota" in body["error"].lower() and "gpua5000" in body["error"], body
                    assert waited < 10, (
                        f"held {waited:.1f}s for an error that cannot clear (hold timeout 30s)"
                    )
        finally:
            await runner.cleanup()
        assert w.live() == []
    record(
        "quota: held requests fail fast",
        injected=1,
        recovered=1,
        leaked=0,
        duplicates=w.duplicates,
        note=f"503 with the reason after {waited:.2f}s, not 30s",
    )
