"""Request hold: a request that finds the VM down asks for a wake and waits for it, within bounds.

Past `max_held_requests` waiting, or after `hold_timeout`, the answer is a 503 body with
Retry-After, so clients that retry do so politely.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass

from aiohttp import web

from remote_ollama.proxy.activity import ActivityReporter
from remote_ollama.proxy.interfaces import NotReady, ProxySettings, Upstream, UpstreamResolver
from remote_ollama.proxy.metrics import ProxyMetrics
from remote_ollama.spec.schedule import utcnow


class HoldRejected(NotReady):
    """The request may not wait (or waited in vain); see `NotReady` for `refused` and `retry_at`."""


def not_ready_response(exc: NotReady, retry_after: int) -> web.Response:
    """The 503 of a request that cannot be held. A refusal is no provisioning: Retry-After is the time to its end, or absent."""
    body: dict[str, object] = {"error": exc.message, "provisioning": not exc.refused, "status": exc.phase}
    if exc.reason:
        body["reason"] = exc.reason
    headers = {"Retry-After": str(retry_after)}
    if exc.refused:
        headers = {}
        if exc.retry_at is not None:
            wait = (exc.retry_at - utcnow()).total_seconds()
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return web.json_response(body, status=503, headers=headers)


@dataclass(eq=False)  # one per proxy: compared by identity
class Hold:
    resolver: UpstreamResolver
    reporter: ActivityReporter
    settings: ProxySettings
    metrics: ProxyMetrics
    held: int = 0
    # When the first request of the current wake began to wait (loop clock); None between wakes.
    wake_started: float | None = None

    async def admit(self) -> Upstream:
        """The upstream, at once when ready, else after waiting for it (raises `HoldRejected`)."""
        if self.resolver.state().ready:
            self.reporter.instance_ready()
            return await self._wait(asyncio.get_running_loop().time() + self.settings.hold_timeout)
        started = self.enter()
        try:
            return await self._wait(started + self.settings.hold_timeout)
        finally:
            self.leave(started)

    def enter(self) -> float:
        """Start holding one request (wakes the VM); raises `HoldRejected` when it may not wait."""
        state = self.resolver.state()
        phase = state.phase
        self.reporter.request_wake()
        if self.settings.immediate_503:
            doing = "started" if state.instance else "created"
            raise HoldRejected(phase, f"{state.down_words()}; it is being {doing}, retry shortly")
        if self.held >= self.settings.max_held_requests:
            raise HoldRejected(
                phase, f"too many requests waiting for the remote instance ({self.held}); retry shortly"
            )
        self.held += 1
        self.metrics.held.inc()
        now = asyncio.get_running_loop().time()
        if self.wake_started is None:
            self.wake_started = now
        return now

    def leave(self, started: float) -> None:
        self.held -= 1
        self.metrics.held.dec()
        self.metrics.hold_seconds.observe(asyncio.get_running_loop().time() - started)
        if self.held == 0 and not self.resolver.state().ready:
            self.wake_started = None  # every held request gave up: this wake served nobody

    def first_byte(self) -> None:
        """A held request's answer begins: the first one of a wake is the wake's "first request served"."""
        if self.wake_started is not None:
            self.metrics.wake_first_request.observe(asyncio.get_running_loop().time() - self.wake_started)
            self.wake_started = None

    async def wait(self, started: float) -> Upstream:
        return await self._wait(started + self.settings.hold_timeout)

    async def _wait(self, deadline: float) -> Upstream:
        try:
            # The resolver should honour the deadline; this bound holds even if it does not.
            async with asyncio.timeout_at(deadline + 0.5):
                upstream = await self.resolver.await_ready(deadline)
        except NotReady as exc:
            raise HoldRejected(
                exc.phase, exc.message, refused=exc.refused, retry_at=exc.retry_at, reason=exc.reason
            ) from None
        except TimeoutError:
            phase = self.resolver.state().phase
            raise HoldRejected(
                phase, f"remote instance not ready after {self.settings.hold_timeout:g}s ({phase})"
            ) from None
        self.reporter.instance_ready()
        return upstream


def progress_line(payload: dict[str, object]) -> bytes:
    return json.dumps(payload).encode() + b"\n"
