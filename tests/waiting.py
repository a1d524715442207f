"""Waiting on conditions with deadlines (never sleep-and-hope): one implementation for every test,
and the one factor that scales every deadline of the suite."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# A deadline only bounds a wait on an event, so it costs nothing when the event comes: the figures
# in the tests are generous for a busy 2-core machine, and a slower one (an emulated CPU, a crowded
# runner) multiplies them all with REMOTE_OLLAMA_TEST_SLOWDOWN. Timing goals live in bench/.
SLOWDOWN = float(os.environ.get("REMOTE_OLLAMA_TEST_SLOWDOWN") or 1.0)
LIFECYCLE = 60.0  # a wait on a lifecycle step of the simulated cloud (Ready, Stopped, gone)


def deadline(seconds: float) -> float:
    """`seconds` scaled by the suite's one factor: every wait on an event goes through it."""
    return seconds * SLOWDOWN


def _poller(predicate: Callable[[], T], timeout: float, what: str) -> Callable[[], T | None]:
    """One look at `predicate`: its value when truthy, None to look again, AssertionError naming
    `what` once `timeout` seconds (scaled by `deadline`) have passed."""
    timeout = deadline(timeout)
    end = time.monotonic() + timeout

    def poll() -> T | None:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate!r} (last: {value!r})"
            )
        return None

    return poll


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.02
) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    poll = _poller(predicate, timeout, what)
    while (value := poll()) is None:
        time.sleep(interval)
    return value


async def until(
    predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.01
) -> T:
    """`wait_until` for async tests: yields to the event loop between polls."""
    poll = _poller(predicate, timeout, what)
    while (value := poll()) is None:
        await asyncio.sleep(interval)
    return value
