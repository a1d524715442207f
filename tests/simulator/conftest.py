"""Fixtures of the Exoscale simulator tests: a simulator per test, an SDK client on it, TLS material,
and the SDK's polling made fast."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import exoscale.api.v2
import pytest
from exoscale.api.v2 import Client
from sim_api_world import FAST, KEY, SECRET, TLSMaterial

from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.thread import SimulatorThread


@pytest.fixture(autouse=True)
def fast_sdk_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """client.wait() sleeps 3 s between polls; the simulator's operations finish in 20 ms."""
    monkeypatch.setattr(exoscale.api.v2, "_sleep", lambda start_time: time.sleep(0.01))


@pytest.fixture
async def sim() -> AsyncIterator[ExoscaleSimulator]:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=FAST) as simulator:
        yield simulator


@pytest.fixture
def client(sim: ExoscaleSimulator) -> Client:
    return Client(KEY, SECRET, zone="at-vie-2", url=sim.zone_url())


@pytest.fixture(scope="module")
def tls() -> TLSMaterial:
    return TLSMaterial()


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(keys={KEY: SECRET}, timings=FAST, vms=False) as thread:
        yield thread
