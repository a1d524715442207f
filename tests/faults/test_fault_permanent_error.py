"""A held request does not wait out the hold timeout for an error retrying cannot fix (no quota):
it gets the 503 with the reason as soon as one lifecycle round has seen that error; once the quota
is raised, the next request is served."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from standalone_world import MODEL, StandaloneWorld, standalone_world
from waiting import LIFECYCLE, deadline, until

from remote_ollama.core.backoff import RECHECK_EVERY
from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings

HOLD = 3600.0  # far past the client's deadline: an answer within it was not held to the hold timeout


@contextlib.asynccontextmanager
async def quota_zero(
    tmp_path: Path, scenario: str, max_backoff: float
) -> AsyncIterator[tuple[StandaloneWorld, aiohttp.ClientSession, str]]:
    """A standalone world without GPU quota behind a proxy: (world, client, its /api/generate URL)."""
    async with standalone_world(tmp_path, max_backoff=max_backoff) as w:
        w.scenario = scenario
        w.sim.exceed_quota("gpua5000")
        w.inject()
        c = w.controller
        runner, port = await start_proxy(
            make_proxy_app(c, c, ProxySettings(hold_timeout=HOLD)), "127.0.0.1", 0
        )
        try:
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=deadline(LIFECYCLE))
            ) as http:
                yield w, http, f"http://127.0.0.1:{port}/api/generate"
        finally:
            await runner.cleanup()


async def test_quota_error_fails_held_requests_fast_with_the_reason(tmp_path: Path) -> None:
    assert deadline(LIFECYCLE) < HOLD
    async with quota_zero(tmp_path, "quota: held requests fail fast", max_backoff=60.0) as (w, http, url):
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


async def test_the_first_request_after_the_quota_is_raised_is_served_without_waiting_out_the_backoff(
    tmp_path: Path,
) -> None:
    """A refused request may ask the cloud once more (at most once per RECHECK_EVERY, so a client
    retrying in a loop cannot hammer the API): raising the quota needs no wait for the next round."""
    scenario = "quota raised: the next request is served"
    async with quota_zero(tmp_path, scenario, max_backoff=HOLD) as (w, http, url):  # no round before HOLD

        async def generate() -> tuple[int, dict[str, object]]:
            async with http.post(url, json={"model": MODEL, "prompt": "x", "stream": False}) as resp:
                return resp.status, await resp.json()

        status, body = await generate()
        assert status == 503 and body["reason"] == "QuotaExceeded", body
        calls = w.sim.call_count()
        w.controller.failures.checked_at -= RECHECK_EVERY  # due: the next refused request re-checks
        for _ in range(50):  # a client retrying in a loop: refused at once, the API asked once
            status, body = await generate()
            assert status == 503 and "gpua5000" in str(body["error"]), body
        w.note = f"50 refused requests made {w.sim.call_count() - calls} cloud calls"
        assert 0 < w.sim.call_count() - calls <= 10, w.note  # one re-check, still refused
        assert w.live() == []
        w.sim.set_quota("gpua5000", 4)  # raised; no wake, no round due before HOLD
        w.controller.failures.checked_at -= RECHECK_EVERY  # the user took RECHECK_EVERY to raise it
        status, body = await generate()  # held while the VM comes up, then served
        assert status == 200, body
