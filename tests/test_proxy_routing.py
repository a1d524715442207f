"""Routing through the proxy to several simulated Ollamas (issue 19): a request goes to the replica
that has its model loaded when loads are equal, to the least busy one when that replica is at its
target; the proxy learns what is loaded from /api/ps and from what replicas answered."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator

import aiohttp
from simulated_ollama import Sim, serve

from remote_ollama.proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, RouteKey, Upstream, UpstreamState
from remote_ollama.proxy.loaded import LoadedModels
from remote_ollama.proxy.local import RecordingSink
from remote_ollama.proxy.routing import Router
from remote_ollama.proxy.upstream import UpstreamPool
from remote_ollama.sandbox.ollama.server import make_ollama_app

CHAT, OTHER = "granite3.1-dense:8b", "qwen3:4b"
TARGET = 1  # requests in flight one replica carries (OLLAMA_NUM_PARALLEL=1)


class Replicas:
    """A replicated endpoint's resolver as the proxy sees it: every replica Ready, none coming."""

    def __init__(self, router: Router, upstreams: list[Upstream]) -> None:
        self.router, self.upstreams = router, upstreams

    def state(self, key: RouteKey | None = None) -> UpstreamState:
        picked = self.router.pick(self.upstreams, TARGET, more_coming=False, key=key)
        return UpstreamState("Ready", picked is not None, upstream=picked)

    async def await_ready(self, deadline: float) -> Upstream:
        picked = self.state().upstream
        assert picked is not None
        return picked


@contextlib.asynccontextmanager
async def endpoint() -> AsyncIterator[tuple[str, list[Sim], Router, LoadedModels]]:
    async with (
        serve(make_ollama_app([CHAT, OTHER], token_delay=0.05)) as a,
        serve(make_ollama_app([CHAT, OTHER], token_delay=0.05)) as b,
    ):
        router = Router()
        resolver = Replicas(router, [Upstream(a.url), Upstream(b.url)])
        app = make_proxy_app(resolver, RecordingSink(), ProxySettings(), router=router)
        runner, port = await start_proxy(app, "127.0.0.1", 0)
        try:
            resolver.state()  # the router sees both Ready, as after any pick
            yield f"http://127.0.0.1:{port}", [a, b], router, LoadedModels(router, app[PROXY_KEY].pool)
        finally:
            await runner.cleanup()


def served(sims: list[Sim]) -> list[int]:
    return [s.state.requests["/api/generate"] for s in sims]


async def generate(http: aiohttp.ClientSession, url: str, model: str) -> list[dict[str, object]]:
    async with http.post(f"{url}/api/generate", json={"model": model, "prompt": "hi"}) as r:
        assert r.status == 200
        return [json.loads(line) for line in (await r.read()).splitlines()]


async def test_equal_loads_go_to_the_replica_holding_the_model_and_at_target_the_least_busy_wins() -> None:
    async with endpoint() as (url, sims, router, looker), aiohttp.ClientSession() as http:
        a, b = sims
        b.state.loaded[OTHER] = time.time() + 600  # the second replica has it in memory (/api/ps)
        a.state.reply_length = b.state.reply_length = 3
        await looker.look()
        assert router.loaded == {a.url: frozenset(), b.url: frozenset({OTHER})}

        lines = await generate(http, url, OTHER)
        assert lines[-1]["done"] is True and served(sims) == [0, 1]  # not the first, the holder

        # the holder at its target: the least outstanding one takes the next, model or not
        b.state.reply_length = 200  # ten seconds of tokens
        async with http.post(f"{url}/api/generate", json={"model": OTHER, "prompt": "long"}) as long:
            assert long.status == 200
            await long.content.readline()  # streaming from the second replica now
            assert served(sims) == [0, 2] and router.count(b.url) == 1
            await generate(http, url, OTHER)
            assert served(sims) == [1, 2]


async def test_a_replica_that_answered_a_model_is_preferred_for_it() -> None:
    async with endpoint() as (url, sims, router, _), aiohttp.ClientSession() as http:
        a, b = sims
        a.state.reply_length = b.state.reply_length = 2
        await generate(http, url, OTHER)  # nobody has it: the first replica loads it
        assert served(sims) == [1, 0] and router.loaded == {a.url: frozenset({OTHER})}
        async with http.post(f"{url}/api/generate", json={"model": CHAT, "prompt": "x"}) as r:
            await r.read()
        assert served(sims) == [2, 0]  # equal loads, no holder: the first again (it learns CHAT)
        router.loaded.pop(a.url)
        router.learn(b.url, CHAT)
        await generate(http, url, CHAT)
        assert served(sims) == [2, 1]


async def test_prefix_affinity_sends_a_conversation_back_to_its_replica() -> None:
    async with endpoint() as (url, sims, router, _), aiohttp.ClientSession() as http:
        router.routing = "prefixAffinity"
        for sim in sims:
            sim.state.reply_length = 2

        async def turn(name: str, turns: int) -> int:
            """One turn of conversation `name` (its history so far): the index of the replica it went to."""
            messages = [{"role": "user", "content": f"conversation {name}: tell me about it"}]
            messages += [{"role": "assistant", "content": "..."}, {"role": "user", "content": "more"}] * turns
            before = [s.state.requests["/api/chat"] for s in sims]
            async with http.post(f"{url}/api/chat", json={"model": CHAT, "messages": messages}) as r:
                assert r.status == 200
                await r.read()
            after = [s.state.requests["/api/chat"] for s in sims]
            return next(i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b)

        names = [f"c{i}" for i in range(12)]
        first = {name: await turn(name, 0) for name in names}
        assert set(first.values()) == {0, 1}  # the conversations spread over both replicas
        for turns in (1, 2):
            assert {name: await turn(name, turns) for name in names} == first  # each returns home


async def test_each_replica_keeps_its_upstream_session() -> None:
    """Requests alternating between replicas reuse each one's kept-alive connections; a new CA at
    one replica's address replaces that replica's session only."""
    pool = UpstreamPool()
    a, b = Upstream("https://127.0.10.1:11435"), Upstream("https://127.0.10.2:11435")
    first = pool.acquire(a)
    pool.release(first)
    other = pool.acquire(b)
    pool.release(other)
    again = pool.acquire(a)
    pool.release(again)
    assert again is first and not first.retired and not other.retired
    renewed = pool.acquire(Upstream(a.url, ssl.create_default_context()))
    assert renewed is not first and first.retired and not other.retired
    pool.release(renewed)
    await pool.close()


async def test_a_routed_request_asks_the_router_once() -> None:
    """The body's key is read first, then the one pick (it was picked without the key, then again)."""
    async with endpoint() as (url, sims, router, _), aiohttp.ClientSession() as http:
        for sim in sims:
            sim.state.reply_length = 2
        keys: list[RouteKey | None] = []
        pick = router.pick

        def counted(*args: object, **kwargs: object) -> Upstream | None:
            keys.append(kwargs.get("key"))  # type: ignore[arg-type]
            return pick(*args, **kwargs)  # type: ignore[arg-type]

        router.pick = counted  # type: ignore[method-assign]
        await generate(http, url, OTHER)
        assert [key.model if key else None for key in keys] == [OTHER]
