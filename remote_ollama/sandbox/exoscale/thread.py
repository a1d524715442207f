"""An `ExoscaleSimulator` on its own event loop in a daemon thread, for synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator

T = TypeVar("T")


class SimulatorThread:
    """Runs an ExoscaleSimulator on its own event loop in a daemon thread, for synchronous code."""

    def __init__(self, **kwargs: Any):
        self.sim = ExoscaleSimulator(**kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="exoscale-sim", daemon=True)

    @property
    def url(self) -> str:
        return self.sim.url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._thread.start()
        return self.run(self.sim.start(host, port))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T] | Awaitable[T], timeout: float = 60.0) -> T:
        """Run a coroutine on the simulator's loop and return its result."""

        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout=timeout)

    def offline(self) -> None:
        self.run(self.sim.go_offline())

    def online(self) -> None:
        self.run(self.sim.go_online())

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
