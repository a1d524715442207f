"""Bench: how fast a client hanging up stops the model, directly and through the proxy.

A generation stalls after its first token (the simulated Ollama writes nothing more), so only
noticing the closed connection ends it. Measured from the client's abort to the simulated Ollama
recording the cancellation, for a client connected to the simulator directly (the baseline: its own
watcher, as Ollama's) and through the proxy (streaming and not). The goal, which the tests assert by
event order only: through the proxy, p50 <= 100 ms and at most the baseline's + 100 ms.

    python bench/disconnect.py [--samples 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from proxy_world import MODELS, world
from simulated_ollama import serve

from remote_ollama.sandbox.ollama.server import make_ollama_app
from remote_ollama.sandbox.ollama.state import OllamaState

MODEL = MODELS[0]
GOAL = 0.1


async def one(state: OllamaState, url: str, stream: bool) -> float:
    """Open a generation that stalls after its first token, hang up, time the cancellation."""
    state.stall_next_after(1)
    seen = len(state.cancellations)
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = json.dumps({"model": MODEL, "prompt": "x", "stream": stream}).encode()
    writer.write(
        f"POST /api/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    await state.wait_active(1)
    if stream:
        await reader.readuntil(b"}\n")
    writer.transport.abort()
    gone = time.monotonic()
    cancel = await state.wait_cancelled(seen + 1)
    writer.close()
    return cancel.noticed_at - gone


async def measure(samples: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    async with serve(make_ollama_app(MODELS, token_delay=0.005)) as sim:
        results["direct"] = [await one(sim.state, sim.url, True) for _ in range(samples)]
    async with world(token_delay=0.005) as w:
        for stream in (True, False):
            name = "proxy, streaming" if stream else "proxy, not streaming"
            results[name] = [await one(w.state, w.url, stream) for _ in range(samples)]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    results = asyncio.run(measure(args.samples))
    print(f"client abort -> generation cancelled, {args.samples} samples each (ms)")
    print(f"{'path':<24}{'p50':>8}{'p99':>8}{'max':>8}")
    p50 = {}
    for name, values in results.items():
        values.sort()
        p50[name] = statistics.median(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{name:<24}{p50[name] * 1e3:>8.1f}{p99 * 1e3:>8.1f}{values[-1] * 1e3:>8.1f}")
    worst = max(p50[k] for k in p50 if k != "direct")
    met = worst <= GOAL and worst <= p50["direct"] + GOAL
    print(
        f"goal: through the proxy p50 <= {GOAL * 1e3:.0f} ms and <= direct + {GOAL * 1e3:.0f} ms: "
        f"{'met' if met else 'NOT met'} ({worst * 1e3:.1f} ms, direct {p50['direct'] * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
