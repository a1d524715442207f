"""Contract: the sandbox's simulated Ollama, pinned to 0.17.4, answers as the real 0.17.4 does
(recorded at test time from the real server): same status, content type, framing and JSON keys per
chunk for the requests of the differential test; and a route the real 0.17.4 answers 404 is absent
from the simulated 0.17.4 (ollama_release.FIRST_VERSION is the simulator's route table).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ollama_real.cases import CASES
from ollama_real.compare import Answer, fetch_both
from ollama_real.server import TINY, VERSION, RealOllama

from remote_ollama.sandbox.ollama.server import make_ollama_app
from remote_ollama.vm.ollama_release import FIRST_VERSION

# Cases whose answers depend on the model's own files (the tiny GGUF vs the simulator's catalogue),
# compared for status and content type only.
_MODEL_FILES = {"show"}
# Routes the real 0.17.4 serves that the simulator does not implement (found by these tests).
_ROUTES_NOT_SIMULATED = {("GET", "/api/status"), ("POST", "/api/signout"), ("POST", "/v1/responses")}
_NOT_SIMULATED = {"v1-responses", "v1-responses-stream"}


def keys(value: Any) -> Any:
    """The JSON structure without values: dict keys (recursively), list items' structures."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys(v) for v in value[:1]]
    return type(value).__name__ if value is not None else None


def contract(answer: Answer) -> tuple[Any, ...]:
    """Status, type, framing, and the structures of the first and last chunks (a stream's length
    is the generated text's)."""
    if answer.framing == "sse":
        ends: Any = [
            [(name, keys(data)) for name, data in event] for event in answer.chunks[:1] + answer.chunks[-1:]
        ]
    elif answer.framing in ("ndjson", "json"):
        ends = [keys(c) for c in answer.chunks[:1] + answer.chunks[-1:]]
    else:
        ends = answer.chunks
    return answer.status, answer.content_type, answer.framing, ends


@pytest.fixture
async def simulated() -> AsyncIterator[str]:
    app = make_ollama_app([TINY], token_delay=0.0, version=VERSION)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    warm = {"model": TINY, "prompt": "hi", "stream": False}  # loaded, as the real one's fixture leaves it
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/generate", json=warm) as r:
        assert r.status == 200
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("name", "method", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_the_simulated_ollama_answers_as_the_real_one(
    real_ollama: RealOllama,
    simulated: str,
    ollama_http: aiohttp.ClientSession,
    name: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    if name in _NOT_SIMULATED:
        async with ollama_http.request(method, simulated + path, json=body) as r:
            assert (r.status, await r.text()) == (404, "404 page not found")  # absent, not wrong
        return
    real, sim = await fetch_both(ollama_http, (method, path, body, headers), real_ollama.url, simulated)
    if name in _MODEL_FILES:
        assert (sim.status, sim.content_type) == (real.status, real.content_type)
        return
    assert contract(sim) == contract(real), f"{name}: real {real.brief()}, simulated {sim.brief()}"


@pytest.mark.parametrize(("method", "path"), sorted(FIRST_VERSION), ids=lambda v: str(v))
async def test_the_route_table_matches_the_real_0_17_4(
    real_ollama: RealOllama, simulated: str, ollama_http: aiohttp.ClientSession, method: str, path: str
) -> None:
    concrete = path.replace("{model:.+}", TINY)
    async with ollama_http.request(method, real_ollama.url + concrete, json={}) as r:
        real_404 = r.status == 404 and r.content_type == "text/plain"
    async with ollama_http.request(method, simulated + concrete, json={}) as r:
        sim_404 = r.status == 404 and r.content_type == "text/plain"
    if real_404:
        assert sim_404, f"{method} {path}: the real {VERSION} has no such route, the simulated one has"
    else:  # served by the real one; the simulator may lack it (then it is listed here)
        assert not sim_404 or (method, path) in _ROUTES_NOT_SIMULATED, f"{method} {path} is not simulated"
