"""A VM that vanished between two checks: the first request that cannot reach it makes the
lifecycle look at once (a wake request), instead of every client getting 502 until the next check."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from standalone_world import MODEL, standalone_world
from waiting import LIFECYCLE, until

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings


async def test_unreachable_vm_triggers_a_check_and_a_replacement(tmp_path: Path) -> None:
    async with standalone_world(tmp_path) as w:
        w.scenario, w.note = "VM unreachable between checks", "502 triggers an immediate check"
        c = w.controller
        runner, port = await start_proxy(make_proxy_app(c, c, ProxySettings(hold_timeout=20)), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}/api/generate"
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=body) as resp:  # cold start, held, answered
                    assert resp.status == 200
                old = c.saved.memory.instance_id
                assert old is not None
                c.poll_cap = 3600.0  # the loop would not look again by itself during this test
                before = c.decision
                await until(
                    lambda: c.decision is not before, 2, "one more round, now followed by a long wait"
                )
                w.sim.vanish(old)
                w.inject()
                async with http.post(url, json=body) as resp:
                    assert resp.status == 502
                    assert "unreachable" in (await resp.json())["error"]
                # the 502 asked for a check: the gone VM is noticed and replaced without waiting an hour
                new = await until(
                    lambda: [i.id for i in w.live() if i.id != old], LIFECYCLE, "a replacement VM"
                )
                async with http.post(url, json=body) as resp:
                    assert resp.status == 200, await resp.text()
                assert [i.id for i in w.live()] == new
            await until(lambda: w.recovered() == len(w.faults()) == 1, what="Ready on the replacement")
        finally:
            await runner.cleanup()
