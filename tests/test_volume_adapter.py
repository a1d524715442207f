"""The adapter's block-storage verbs against the simulator: a create whose answer was lost adopts
the volume it made (no twin), and detach, delete and a volume snapshot's delete of what is already
gone are done."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud
from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings

KEY, SECRET = "EXOvolumeadapter0000000", "volume-adapter-secret-0123456789"
ZONE = "ch-gva-2"
LABELS = {"managed-by": "remote-ollama", "remote-ollama-owner": "o-1", "remote-ollama-cluster": "c-1"}


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(keys={KEY: SECRET}, zone=ZONE, timings=SimTimings(operation=0.02), vms=False) as s:
        yield s


def cloud(url: str) -> ExoscaleCloud:
    return ExoscaleCloud(
        KEY,
        SECRET,
        ZONE,
        endpoint=url,
        poll_interval=0.02,
        backoff_base=0.01,
        sleep=lambda s: time.sleep(0.02),
    )


def test_a_create_whose_answer_was_lost_adopts_its_volume(
    sim_thread: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = cloud(sim_thread.url)
    original = adapter.volumes._call
    lost = threading.Event()

    def call(operation: str, **kwargs: Any) -> Any:
        if operation == "create_block_storage_volume" and not lost.is_set():
            lost.set()
            original(operation, **{k: v for k, v in kwargs.items() if k != "before_retry"})  # it was made
            sim_thread.sim.fail_next(1, status=504, operation="create-block-storage-volume")
        return original(operation, **kwargs)  # ...the answer to the retry is a 504: look first

    monkeypatch.setattr(adapter.volumes, "_call", call)
    made = adapter.volumes.create_volume("granite-models", 10, LABELS)
    store = volumes.of(sim_thread.sim.state)
    assert list(store.volumes) == [made["id"]] and made["name"] == "granite-models"
    assert adapter.volumes.volumes(LABELS) == [store.volumes[made["id"]].to_api()]


def test_what_is_gone_is_done(sim_thread: SimulatorThread) -> None:
    adapter = cloud(sim_thread.url)
    made = adapter.volumes.create_volume("granite-models", 10, LABELS)
    adapter.volumes.delete_volume(made["id"])
    assert volumes.of(sim_thread.sim.state).volumes == {}
    adapter.volumes.delete_volume(made["id"])  # absent: already deleted
    adapter.volumes.detach_volume(made["id"])
    adapter.volumes.delete_volume_snapshot("00000000-0000-4000-8000-000000000000")
