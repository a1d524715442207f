"""In-process implementations of the proxy's interfaces: for standalone mode, the bench and tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from remote_ollama.proxy.interfaces import NotReady, Refusal, RouteKey, Upstream, UpstreamState
from remote_ollama.proxy.runloop import wait_at_most
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import Phase


class LocalResolver:
    """An `UpstreamResolver` that whoever runs the lifecycle in this process sets directly."""

    def __init__(self, upstream: Upstream | None = None, phase: str | None = None) -> None:
        self._upstream = upstream
        self._phase = phase or (Phase.READY if upstream else Phase.STOPPED)
        self._refusal: Refusal | None = None  # why waiting is pointless (e.g. a budget cap): answer at once
        self._instance = True
        self._detail = ""
        self._changed = asyncio.Event()
        self._state: UpstreamState | None = None  # built once per change: the request path only reads it

    def set_ready(self, upstream: Upstream) -> None:
        self._upstream, self._phase, self._refusal = upstream, Phase.READY, None
        self._wake_waiters()

    def set_down(self, phase: str, *, instance: bool = True, detail: str = "") -> None:
        """Not ready; `detail` says what the wake is doing (shown in wake progress lines)."""
        self._upstream, self._phase, self._refusal, self._instance = None, phase, None, instance
        self._detail = detail
        self._wake_waiters()

    def set_refusing(self, phase: str, refusal: Refusal) -> None:
        """Down and not coming up soon: held and new requests fail at once with `refusal.message`."""
        self._upstream, self._phase, self._refusal = None, phase, refusal
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        self._state = None
        self._changed.set()
        self._changed = asyncio.Event()

    def state(self, key: RouteKey | None = None) -> UpstreamState:
        if self._state is None:
            up = self._upstream is not None
            self._state = UpstreamState(
                phase=self._phase,
                ready=up,
                instance=up or self._instance,
                upstream=self._upstream,
                detail="" if up else self._detail,
            )
        return self._state

    def refused(self) -> NotReady | None:
        """What a held request is answered while refusing (None: not refusing)."""
        refusal = self._refusal
        if refusal is None:
            return None
        retry_at = refusal.retry_at
        if retry_at is None and refusal.retry_in is not None:
            retry_at = utcnow() + timedelta(seconds=refusal.retry_in)
        return NotReady(self._phase, refusal.message, refused=True, retry_at=retry_at, reason=refusal.reason)

    async def await_ready(self, deadline: float) -> Upstream:
        loop = asyncio.get_running_loop()
        while self._upstream is None:
            refusal = self.refused()
            if refusal is not None:
                raise refusal
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotReady(self._phase, f"remote instance not ready in time ({self._phase})")
            await wait_at_most(self._changed.wait(), remaining)
        return self._upstream


class RecordingSink:
    """An `ActivitySink` that remembers what it was told (and can be told to run a callback)."""

    def __init__(self) -> None:
        self.touches: list[datetime] = []
        self.in_flight = 0  # as last reported
        self.wakes: list[datetime] = []
        self.woken = asyncio.Event()

    async def touch(self, at: datetime, in_flight: int = 0) -> None:
        self.touches.append(at)
        self.in_flight = in_flight

    async def request_wake(self, at: datetime) -> None:
        self.wakes.append(at)
        self.woken.set()
