"""Debounced activity reporting: real requests mark the instance as used without flooding the sink.

At most one `touch` per `interval` and never two writes in flight; a request in flight counts as
activity for its whole duration (a 20-minute generation is re-touched on every tick), and a wake
request is written at once (coalesced while one is already being written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from remote_ollama.proxy.interfaces import ActivitySink
from remote_ollama.spec.schedule import utcnow

log = logging.getLogger(__name__)


class ActivityReporter:
    def __init__(
        self,
        sink: ActivitySink,
        interval: float = 15.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sink = sink
        self.interval = interval
        self._monotonic = monotonic
        self._wallclock = wallclock
        self.in_flight = 0
        self._pending: datetime | None = None  # activity seen but not yet written
        self._last_write: float | None = None
        self._write: asyncio.Task[None] | None = None
        self._wake: asyncio.Task[None] | None = None
        self._last_wake: float | None = None
        self._urgent = False  # write as soon as the write in progress (if any) is done
        self._told_in_flight = 0  # the count in the last write
        # told at once (before any request waits) when a wake request is written, with its time
        self.on_wake: Callable[[datetime], None] | None = None

    # -- activity -----------------------------------------------------------------------------
    def begin(self) -> None:
        """A real request started. When the lifecycle was last told none were in flight, this is
        written at once (not debounced), so it never takes the VM away under a running request."""
        self.in_flight += 1
        if self._told_in_flight == 0:
            self._urgent = True
        self.note()

    def end(self) -> None:
        """A real request finished; its end is activity too (idle time counts from here)."""
        self.in_flight -= 1
        self.note()

    def note(self) -> None:
        self._pending = self._wallclock()
        self._maybe_write()

    def tick(self) -> None:
        """Called every interval: keeps requests in flight counted and flushes held-back activity."""
        if self.in_flight > 0:
            self._pending = self._wallclock()
        self._maybe_write()

    def _maybe_write(self) -> None:
        if self._pending is None or (self._write is not None and not self._write.done()):
            return
        now = self._monotonic()
        if not self._urgent and self._last_write is not None and now - self._last_write < self.interval:
            return
        at, self._pending, self._last_write, self._urgent = self._pending, None, now, False
        self._told_in_flight = self.in_flight
        touch = self._sink.touch(at, self.in_flight)
        self._write = asyncio.get_running_loop().create_task(self._guard(touch, "touch"))

    # -- wake ---------------------------------------------------------------------------------
    def request_wake(self) -> None:
        """Write a wake request now, unless one is being written or was written within the interval."""
        if self._wake is not None and not self._wake.done():
            return
        now = self._monotonic()
        if self._last_wake is not None and now - self._last_wake < self.interval:
            return
        self._last_wake = now
        at = self._wallclock()
        if self.on_wake is not None:
            self.on_wake(at)
        self._wake = asyncio.get_running_loop().create_task(self._guard(self._sink.request_wake(at), "wake"))

    def instance_ready(self) -> None:
        """The VM is up: the next time it is down, wake at once again."""
        self._last_wake = None

    # -- plumbing -----------------------------------------------------------------------------
    async def _guard(self, write: Awaitable[None], what: str) -> None:
        try:
            await write
            if what == "touch" and self._urgent:  # the first request began while this was written
                asyncio.get_running_loop().call_soon(self._maybe_write)
        except Exception as exc:  # a failed write must not break requests; the next tick retries
            log.warning("activity %s write failed: %s", what, exc)
            if what == "touch":
                self._told_in_flight = 0  # unknown: the next request that begins is written at once
                self._last_write = None
                self._pending = self._pending or self._wallclock()
            else:
                self._last_wake = None

    async def settle(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        for task in (self._write, self._wake):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def run(self) -> None:
        """The ticker: every interval, until cancelled."""
        while True:  # a finer grain than the interval, so a due write is at most a third late
            await asyncio.sleep(self.interval / 3)
            self.tick()
