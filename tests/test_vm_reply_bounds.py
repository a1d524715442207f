"""A VM cannot exhaust the shared operator's memory (issue 18): its image is the tenant's choice, so
its replies are read with a cap (a huge /api/tags is refused) and a pull's progress line by line,
each line capped, within a total deadline.

The hostile VM is a TLS server with the VM's own credentials (so the operator's mutual TLS accepts
it); the operator's side is the real `Reconciler` probing and pulling.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from memory_data import memory_store

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import Action, ActionKind
from remote_ollama.engine import vm_tasks
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.engine.target import Target
from remote_ollama.sandbox.fleet import LoopbackPool
from remote_ollama.sandbox.vm_front import server_ssl_context
from remote_ollama.spec.names import VM_PORT
from remote_ollama.vm.pki import generate_vm_credentials, make_vm_identity

MiB = 1 << 20
BOMB = 64 * MiB  # the issue measured a 400 MiB /api/tags: the operator reached 7.1 GiB


class Hostile:
    """What the hostile VM sent, per route."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.closed: dict[str, asyncio.Event] = {}

    def count(self, route: str, n: int) -> None:
        self.sent[route] = self.sent.get(route, 0) + n

    def done(self, route: str) -> asyncio.Event:
        return self.closed.setdefault(route, asyncio.Event())


def hung_up(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def hostile_app(hostile: Hostile) -> web.Application:
    chunk = b'{"name":"x"},' * (MiB // 4 // 13)

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"version": "0.9.0"})

    async def tags(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            await resp.write(b'{"models":[')
            while hostile.sent.get("tags", 0) < BOMB and not hung_up(request):
                await resp.write(chunk)
                hostile.count("tags", len(chunk))
                await asyncio.sleep(0.005)  # as a network would: the operator reads as it comes
            await resp.write(b'{"name":"x"}]}')
        finally:
            hostile.done("tags").set()
        return resp

    async def pull(request: web.Request) -> web.StreamResponse:
        kind = (await request.json())["model"]
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        try:
            while hostile.sent.get(kind, 0) < BOMB and not hung_up(request):
                if kind == "endless-line":  # one line that never ends
                    await resp.write(chunk)
                    hostile.count(kind, len(chunk))
                    await asyncio.sleep(0.005)
                else:  # small progress lines, forever
                    await resp.write(b'{"status":"pulling"}\n')
                    hostile.count(kind, 21)
                    await asyncio.sleep(0.05)
        finally:
            hostile.done(kind).set()
        return resp

    app = web.Application()
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/pull", pull)
    return app


@pytest.fixture
async def vm() -> AsyncIterator[tuple[Reconciler, ObservedInstance, Hostile]]:
    cert, key = make_vm_identity()
    creds = generate_vm_credentials().pinned_to(cert)
    pool = LoopbackPool(VM_PORT)
    ip = pool.allocate_ip()
    hostile = Hostile()
    runner = web.AppRunner(hostile_app(hostile), access_log=None)
    await runner.setup()
    ctx = server_ssl_context(cert.encode(), key.encode(), creds.ca_pem.encode())
    await web.TCPSite(runner, ip, VM_PORT, ssl_context=ctx).start()
    cloud = AsyncExoscaleCloud.connect("EXOx", "y", "at-vie-2", endpoint="http://127.0.0.1:9")
    rec = Reconciler(cloud, Target("uid", "cluster", "vm", "sg"), memory_store(creds.to_secret_data()))
    instance = ObservedInstance(id="hostile", state="running", public_ip=ip, zone="at-vie-2")
    try:
        yield rec, instance, hostile
    finally:
        await rec.close()
        await runner.cleanup()
        pool.release_ip(ip)


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def peak_rss() -> Iterator[dict[str, int]]:
    """The highest resident set seen (every 5 ms) above what it was when the test began."""
    base, seen, stop = rss(), {"growth": 0}, threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            seen["growth"] = max(seen["growth"], rss() - base)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join()


async def test_a_huge_tags_reply_is_refused_and_memory_stays_bounded(
    vm: Any, peak_rss: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    rec, instance, hostile = vm
    assert await asyncio.wait_for(rec.vm.probe(instance), 60) is None  # not healthy: nothing is routed
    await asyncio.wait_for(hostile.done("tags").wait(), 30)  # the operator hung up
    assert hostile.sent["tags"] < 8 * MiB, "the operator kept reading"
    assert peak_rss["growth"] < 64 * MiB, f"operator RSS grew {peak_rss['growth'] / MiB:.0f} MiB"
    assert "GET /api/tags on instance hostile: more than 1048576 bytes; not read" in caplog.text
    assert rec.vm.answered == {}  # nothing of it reaches status.ollama


@pytest.mark.parametrize("kind", ["endless-line", "endless-progress"])
async def test_a_pull_that_never_ends_is_abandoned(
    vm: Any, kind: str, monkeypatch: pytest.MonkeyPatch, peak_rss: dict[str, int]
) -> None:
    rec, instance, hostile = vm
    monkeypatch.setattr(vm_tasks, "PULL_DEADLINE", 2.0)
    rec.vm.start_pulls(instance, Action(ActionKind.PULL_MODELS, models=(kind,)))
    await asyncio.wait_for(rec.vm._pulls[kind], 60)
    await asyncio.wait_for(hostile.done(kind).wait(), 30)  # the operator hung up
    assert hostile.sent[kind] < 8 * MiB
    assert peak_rss["growth"] < 64 * MiB, f"operator RSS grew {peak_rss['growth'] / MiB:.0f} MiB"
