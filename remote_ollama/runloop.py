"""Run the serving commands on uvloop when it is installed.

Not for speed (CPU per request measured the same) but for memory: asyncio's own TLS transport
allocates a 256 KiB buffer per connection, so 1000 streams through the proxy (each a TLS
connection to the VM) took 364 MiB of RSS on asyncio against 115 MiB on uvloop
(`pytest tests/faults/test_fault_proxy_load.py`, both in one session).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # e.g. Windows: plain asyncio works, with more memory per TLS connection
        return asyncio.run(main)
    return uvloop.run(main)
