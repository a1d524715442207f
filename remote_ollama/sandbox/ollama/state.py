"""What a test can read from, and do to, a simulated Ollama: models, counters, faults, cancellations.

Client disconnects are noticed two ways, so the simulator works whatever the runner's settings:
one shared watcher polls the transports of the generations in flight every `POLL_INTERVAL` (cheap
even with a thousand streams: one attribute check each), and a runner started with
`handler_cancellation=True` cancels the handler, which `Generation` records as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from remote_ollama.sandbox.ollama.http import BadRequest
from remote_ollama.sandbox.ollama.models import ModelRecord, normalize_name

POLL_INTERVAL = 0.01
# Ollama's answer when more than OLLAMA_MAX_QUEUE requests wait for a slot (server/sched.go ErrMaxQueue)
SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"


class ClientGone(Exception):
    """The client disconnected; the handler stops and answers nothing more."""

    def __init__(self, response: web.StreamResponse | None = None) -> None:
        super().__init__("client disconnected")
        self.response = response


class Wire(NamedTuple):
    """How one API streams a reply: a token's chunk, the error chunk of a mid-stream fault, and
    what goes before the first token (if anything)."""

    chunk: Callable[[str], bytes]
    fault: Callable[[str], bytes]
    opening: Callable[[], bytes] | None = None


class MidStreamFault(Exception):
    """An injected failure after some chunks were already sent."""


@dataclass(frozen=True)
class Cancellation:
    """A generation stopped because its client went away; `noticed_at` is `time.monotonic()`."""

    generation_id: int
    path: str
    model: str
    chunks_sent: int
    noticed_at: float


@dataclass
class Failure:
    status: int
    body: Any
    remaining: int


class Generation:
    """One model run in flight. Its waits end early (with `ClientGone`) when the client leaves."""

    def __init__(self, state: OllamaState, request: web.Request, model: str, gen_id: int) -> None:
        self.state = state
        self.request = request
        self.model = model
        self.id = gen_id
        self.chunks_sent = 0
        self.response: web.StreamResponse | None = None
        self.gone = False
        self.fail_after: int | None = None
        self.stall_after: int | None = None
        self._waiter: asyncio.Future[None] | None = None

    def client_connected(self) -> bool:
        transport = self.request.transport
        return transport is not None and not transport.is_closing()

    def notice_gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        self.state.record_cancellation(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ClientGone(self.response))

    async def sleep(self, delay: float) -> None:
        """Sleep without a task per wait; a disconnect wakes it with `ClientGone`."""
        if self.gone:
            raise ClientGone(self.response)
        if delay <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(delay, _resolve, waiter) if delay != math.inf else None
        self._waiter = waiter
        try:
            await waiter
        finally:
            if handle is not None:
                handle.cancel()
            self._waiter = None

    async def tokens(self, tokens: Sequence[str], *, cold: bool = True) -> AsyncIterator[str]:
        """Yield tokens at the simulated speed; raise `MidStreamFault` where a test asked for one.

        A `cold` model (not loaded before this request) first takes `load_delay` to load, as Ollama.
        """
        if cold:
            await self.sleep(self.state.load_delay)
        for index, token in enumerate(tokens):
            if self.fail_after is not None and index >= self.fail_after:
                raise MidStreamFault(self.state.mid_stream_message)
            if self.stall_after is not None and index >= self.stall_after:
                await self.sleep(math.inf)  # only the client leaving ends it
            await self.sleep(self.state.token_delay)
            yield token
        if self.fail_after is not None and self.fail_after >= len(tokens):
            raise MidStreamFault(self.state.mid_stream_message)

    async def reply(
        self, response: web.StreamResponse, tokens: Sequence[str], wire: Wire, *, cold: bool, streaming: bool
    ) -> list[str] | None:
        """The tokens of one reply, as sent; when `streaming` each goes out as `wire.chunk(token)`
        (after `wire.opening()`, before the first). A mid-stream fault goes out as `wire.fault`: None."""
        chunk, fault, opening = wire
        sent: list[str] = []
        try:
            async for token in self.tokens(tokens, cold=cold):
                if streaming and not sent and opening is not None:
                    await self.write(response, opening())
                sent.append(token)
                if streaming:
                    await self.write(response, chunk(token))
        except MidStreamFault as exc:
            await self.write(response, fault(str(exc)))
            return None
        return sent

    async def write(self, response: web.StreamResponse, data: bytes) -> None:
        """Write one chunk (preparing the response on the first, as Ollama sends headers late)."""
        if self.gone:
            raise ClientGone(self.response)
        try:
            if not response.prepared:
                await response.prepare(self.request)
                self.response = response
            await response.write(data)
        except ConnectionError as exc:
            self.notice_gone()
            raise ClientGone(response) from exc
        self.chunks_sent += 1


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class OllamaState:
    """Observable and steerable state of one simulated Ollama server."""

    version: str
    token_delay: float
    pull_delay: float
    models: dict[str, ModelRecord] = field(default_factory=dict)
    loaded: dict[str, float] = field(default_factory=dict)  # model -> expiry (time.time())
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size
    requests: Counter[str] = field(default_factory=Counter)
    last_body: dict[str, Any] = field(default_factory=dict)
    last_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    cancellations: list[Cancellation] = field(default_factory=list)
    completed_generations: int = 0
    extra_origins: list[str] = field(default_factory=list)
    load_delay: float = 0.0
    reply_length: int | None = None
    # OLLAMA_NUM_PARALLEL: generations run at once, each at 1/token_delay tokens/s; more wait in a
    # queue of at most max_queue (OLLAMA_MAX_QUEUE), then 503. None: no limit (the simulator's default).
    num_parallel: int | None = None
    max_queue: int = 512
    queued: int = 0
    peak_active: int = 0
    _slots: asyncio.Semaphore | None = None
    mid_stream_message: str = "an error was encountered while running the model: simulated failure"
    _failures: dict[str, Failure] = field(default_factory=dict)
    _mid_stream_after: int | None = None
    _stall_after: int | None = None
    _active: set[Generation] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event | None = None
    _watcher: asyncio.Task[None] | None = None

    # --- fault hooks -------------------------------------------------------------------------
    def set_models(self, names: Iterable[str]) -> None:
        """Replace the models present (as if pulled before the test)."""
        self.models = {r.name: r for r in (ModelRecord.make(n) for n in names)}
        self.loaded = {m: t for m, t in self.loaded.items() if m in self.models}

    def fail_next(self, path: str, status: int, body: Any = None, *, times: int = 1) -> None:
        """Answer the next `times` requests to `path` with `status` and `body` (dict/list → JSON)."""
        if body is None:
            body = {"error": f"simulated failure ({status})"}
        self._failures[path] = Failure(status, body, times)

    def take_failure(self, path: str) -> Failure | None:
        failure = self._failures.get(path)
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            del self._failures[path]
        return failure

    def error_mid_stream_after(self, n_chunks: int, message: str | None = None) -> None:
        """Make the next streaming generation fail after `n_chunks` content chunks (status stays 200)."""
        self._mid_stream_after = n_chunks
        if message is not None:
            self.mid_stream_message = message

    def stall_next_after(self, n_tokens: int) -> None:
        """Make the next generation stop after `n_tokens` tokens and write nothing more until its
        client leaves (a model stuck mid-reply): only noticing the disconnect ends it."""
        self._stall_after = n_tokens

    # --- lookups -----------------------------------------------------------------------------
    def find(self, name: str) -> ModelRecord | None:
        return self.models.get(normalize_name(name)) if name else None

    def add_model(self, name: str) -> ModelRecord:
        record = ModelRecord.make(name)
        self.models[record.name] = record
        return record

    def blob_present(self, digest: str) -> bool:
        return digest in self.blobs

    def running(self) -> list[tuple[ModelRecord, float]]:
        now = time.time()
        self.loaded = {m: t for m, t in self.loaded.items() if t > now and m in self.models}
        return [(self.models[m], t) for m, t in self.loaded.items()]

    # --- generations and cancellation ----------------------------------------------------------
    @property
    def active_generations(self) -> int:
        return len(self._active)

    @contextlib.asynccontextmanager
    async def generation(
        self, request: web.Request, model: str, *, streaming: bool
    ) -> AsyncIterator[Generation]:
        async with self._slot(), self._running(request, model, streaming=streaming) as gen:
            yield gen

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of OLLAMA_NUM_PARALLEL slots, waited for in a queue bounded as Ollama's."""
        if self.num_parallel is None:
            yield
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.num_parallel)
        if self._slots.locked() and self.queued >= self.max_queue:
            raise BadRequest(503, SERVER_BUSY)
        self.queued += 1
        self._notify()
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        try:
            yield
        finally:
            self._slots.release()

    @contextlib.asynccontextmanager
    async def _running(
        self, request: web.Request, model: str, *, streaming: bool
    ) -> AsyncIterator[Generation]:
        gen = Generation(self, request, model, next(self._ids))
        if streaming and self._mid_stream_after is not None:
            gen.fail_after, self._mid_stream_after = self._mid_stream_after, None
        gen.stall_after, self._stall_after = self._stall_after, None
        self._active.add(gen)
        self.peak_active = max(self.peak_active, len(self._active))
        self._ensure_watcher()
        self._notify()
        try:
            yield gen
        except asyncio.CancelledError:
            gen.notice_gone()  # runner with handler_cancellation=True
            raise
        finally:
            self._active.discard(gen)
            if not gen.gone:
                self.completed_generations += 1
            self._notify()

    def record_cancellation(self, gen: Generation) -> None:
        self.cancellations.append(
            Cancellation(gen.id, gen.request.path, gen.model, gen.chunks_sent, time.monotonic())
        )
        self._notify()

    async def wait_cancelled(self, count: int = 1, timeout: float = 30.0) -> Cancellation:
        """Wait until `count` cancellations were recorded; return the latest."""
        await self.wait_until(lambda: len(self.cancellations) >= count, timeout)
        return self.cancellations[-1]

    async def wait_active(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until at least `count` generations are in flight."""
        await self.wait_until(lambda: len(self._active) >= count, timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while self._active:
            await asyncio.sleep(POLL_INTERVAL)
            for gen in list(self._active):
                if not gen.gone and not gen.client_connected():
                    gen.notice_gone()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
