"""The simulated Ollama under disconnects and load: a client leaving stops its generation, a
thousand streams at once, OLLAMA_NUM_PARALLEL slots with a bounded queue beyond."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest
from simulated_ollama import serve
from waiting import deadline

from remote_ollama.sandbox.ollama.server import make_ollama_app

CHAT = "llama3.2:1b"


# --- cancellation --------------------------------------------------------------------------------


@pytest.mark.parametrize("handler_cancellation", [False, True])
async def test_stream_disconnect_is_noticed_while_nothing_is_written(handler_cancellation: bool) -> None:
    """The generation stalls after its first token: no write can fail, so only noticing the closed
    connection ends it (how fast: bench/disconnect.py)."""
    async with serve(
        make_ollama_app([CHAT], token_delay=0.01), handler_cancellation=handler_cancellation
    ) as sim:
        sim.state.stall_next_after(1)
        async with aiohttp.ClientSession() as session:
            resp = await session.post(sim.url + "/api/generate", json={"model": CHAT, "prompt": "long"})
            await resp.content.readline()  # the first token arrived; no other will ever be written
            resp.close()
            cancel = await sim.state.wait_cancelled(timeout=deadline(30))
        assert (cancel.path, cancel.model, cancel.chunks_sent) == ("/api/generate", "llama3.2:1b", 1)
        assert sim.state.active_generations == 0


async def test_non_streaming_disconnect_is_noticed() -> None:
    async with serve(make_ollama_app([CHAT], token_delay=0.002)) as sim:
        sim.state.stall_next_after(3)  # a reply that never ends: only the disconnect can stop it
        async with aiohttp.ClientSession() as session:
            body = {"model": CHAT, "messages": [{"role": "user", "content": "x"}], "stream": False}
            request = asyncio.ensure_future(session.post(sim.url + "/api/chat", json=body))
            await sim.state.wait_active(1)
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            cancel = await sim.state.wait_cancelled(timeout=deadline(30))
        assert cancel.path == "/api/chat" and sim.state.completed_generations == 0


async def test_a_thousand_concurrent_streams() -> None:
    async with serve(make_ollama_app([CHAT], token_delay=0.02)) as sim:
        sim.state.reply_length = 5
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                async with session.post(
                    sim.url + "/api/generate", json={"model": CHAT, "prompt": str(i)}
                ) as r:
                    return len((await r.read()).splitlines())

            counts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(1000))), deadline(60))
        assert counts == [6] * 1000
        assert sim.state.completed_generations == 1000 and not sim.state.cancellations


# --- saturation: OLLAMA_NUM_PARALLEL slots, a bounded queue beyond ---------------------------------


async def test_num_parallel_streams_run_at_once_and_the_rest_queue() -> None:
    """With OLLAMA_NUM_PARALLEL=2 six streams of 10 tokens at 20 tokens/s take three rounds, two at a
    time, and every one completes: saturation is real, as on a GPU."""
    async with serve(make_ollama_app([CHAT], token_delay=0.05, num_parallel=2)) as sim:
        sim.state.reply_length = 10
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> int:
                async with session.post(
                    sim.url + "/api/generate", json={"model": CHAT, "prompt": str(i)}
                ) as r:
                    return len((await r.read()).splitlines())

            started = time.monotonic()
            counts = await asyncio.gather(*(one(i) for i in range(6)))
        assert counts == [11] * 6 and sim.state.completed_generations == 6
        assert sim.state.peak_active == 2
        assert time.monotonic() - started >= 3 * 10 * 0.05


async def test_beyond_the_queue_ollama_answers_server_busy() -> None:
    async with serve(make_ollama_app([CHAT], token_delay=0.5, num_parallel=1)) as sim:
        sim.state.max_queue = 1
        sim.state.reply_length = 4
        async with aiohttp.ClientSession() as session:
            body = {"model": CHAT, "prompt": "x"}
            first = asyncio.ensure_future(session.post(sim.url + "/api/generate", json=body))
            await sim.state.wait_active(1, timeout=deadline(30))
            second = asyncio.ensure_future(session.post(sim.url + "/api/generate", json=body))
            await sim.state.wait_until(lambda: sim.state.queued == 1, timeout=deadline(30))
            async with session.post(sim.url + "/api/generate", json=body) as third:
                assert third.status == 503
                assert await third.json() == {
                    "error": "server busy, please try again.  maximum pending requests exceeded"
                }
            for pending in (first, second):
                response = await pending
                assert response.status == 200 and (await response.read()).count(b'"done":true') == 1
