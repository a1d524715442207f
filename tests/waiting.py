"""Waiting on conditions with deadlines (never sleep-and-hope): one implementation for every test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate!r} (last: {value!r})"
            )
        time.sleep(interval)


async def until(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.01
) -> T:
    """`wait_until` for async tests: yields to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate!r} (last: {value!r})"
            )
        await asyncio.sleep(interval)
