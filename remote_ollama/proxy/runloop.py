"""Run the serving commands on uvloop when it is installed.

Not for speed (CPU per request measured the same) but for memory: asyncio's own TLS transport
allocates a 256 KiB buffer per connection, so 1000 streams through the proxy (each a TLS
connection to the VM) took 364 MiB of RSS on asyncio against 115 MiB on uvloop
(`pytest tests/faults/test_fault_proxy_load.py`, both in one session).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # e.g. Windows: plain asyncio works, with more memory per TLS connection
        return asyncio.run(main)
    return uvloop.run(main)


async def wait_at_most(awaitable: Awaitable[Any], timeout: float) -> None:
    """Await `awaitable` for at most `timeout` seconds; a timeout is not an error.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives just as the
    awaited event fires, so a loop waiting on a kick could never be stopped (AsyncRemoteOllama's
    exit hung right after `start_idle_monitor()` kicked its loop).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await awaitable


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
