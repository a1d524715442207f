"""Standalone: a request longer than stopAfter plus the activity interval is never cut by scale-to-zero.

The activity heartbeat alone cannot save it here (its interval is longer than stopAfter): the proxy's
in-flight count, reported at once when the request begins, keeps the VM up until it ends; then the
VM is stopped for idleness as usual. Real seconds, not minutes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
from standalone_world import MODEL, spec, standalone_world
from waiting import until

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.sandbox.exoscale.timings import SimTimings

STOP_AFTER, INTERVAL = 1.0, 3.0
SLOW = SimTimings(boot=0.2, stop=0.1, destroy=0.1, operation=0.02, token=0.7)


async def test_a_long_generation_is_never_cut_then_idle_stops(tmp_path: Path) -> None:
    async with standalone_world(tmp_path, the_spec=spec(stop_after=STOP_AFTER), timings=SLOW) as w:
        w.scenario = "long request vs idle stop"
        c = w.controller
        settings = ProxySettings(hold_timeout=30, activity_interval=INTERVAL)
        runner, port = await start_proxy(make_proxy_app(c, c, settings), "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"http://127.0.0.1:{port}/api/generate", json={"model": MODEL, "prompt": "tell me"}
                ) as resp:
                    assert resp.status == 200
                    # from the first token on (the VM is up), time the rest of the stream
                    first = await resp.content.readline()
                    streaming_from = time.monotonic()
                    w.inject()  # a request longer than stopAfter + the activity interval begins
                    lines = [first] + [line async for line in resp.content if line.strip()]
                took = time.monotonic() - streaming_from
            chunks = [json.loads(line) for line in lines]
            assert chunks[-1]["done"] is True, chunks[-1]
            assert took > STOP_AFTER + INTERVAL, f"the stream took only {took:.1f}s: not a long request"
            stops = [call for call in w.sim.calls if call.operation == "stop-instance"]
            assert stops == [], "the VM was stopped under a running request"
            w.note = f"{took:.1f}s stream, stopAfter {STOP_AFTER:g}s, interval {INTERVAL:g}s: not cut"
            await w.instance_in("stopped")  # and idleness still scales to zero afterwards
            await until(lambda: w.recovered() == len(w.faults()) == 1, what="Stopped, cleanly, afterwards")
        finally:
            await runner.cleanup()
