"""Faults on the block-storage calls of spec.coldStart.modelVolume: 5xx bursts and timed-out
requests (carried out by the cloud, answered after the client gave up) on create, attach, detach
and delete volume, over a cycle that makes the volume with the first VM, keeps it across a destroy,
attaches it to the next VM and deletes it with the resource. The resource recovers (the error in
/status, backed off, then a clean round), one volume only ever exists, and no VM is deleted while
the volume is still attached to it (its setup's mount would be cut from under Ollama)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standalone_world import LateAnswerSimulator, StandaloneWorld, spec, standalone_world
from summary import record
from waiting import until

from remote_ollama.cloud.errors import CloudError
from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.sandbox.exoscale.wire import BASE_PATH, match_operation, split_zone
from remote_ollama.spec.model import Spec
from remote_ollama.spec.sections import ColdStart, ModelVolume

ZONE = "ch-gva-2"  # block storage is offered there
RETRIES = 3
VOLUME_OPERATIONS = (
    "create-block-storage-volume",
    "attach-block-storage-volume-to-instance",
    "detach-block-storage-volume",
    "delete-block-storage-volume",
)


def volume_spec(**idle: Any) -> Spec:
    cold = ColdStart(template="off", model_volume=ModelVolume(enabled=True, size=10))
    return dataclasses.replace(spec(**idle), zone=ZONE, cold_start=cold)


class VolumeWatch(LateAnswerSimulator):
    """Notes every delete-instance of a VM that still has a volume attached, and the most volumes
    that existed at once."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.deleted_attached: list[str] = []
        self.most_volumes = 0

    def count(self) -> int:
        self.most_volumes = max(self.most_volumes, len(volumes.of(self.states[ZONE]).volumes))
        return self.most_volumes

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = match_operation(request.method, split_zone(request.path)[1][len(BASE_PATH) :])
        if route and route[0] == "delete-instance":
            instance_id = request.path.rstrip("/").rsplit("/", 1)[-1]
            if any(v.instance_id == instance_id for v in volumes.of(self.states[ZONE]).volumes.values()):
                self.deleted_attached.append(instance_id)
        self.count()
        response = await super()._handle(request)
        self.count()
        return response


async def destroy(w: StandaloneWorld, timeout: float = 20.0) -> int:
    """The resource deleted as the operator's delete handler does: `destroy_all` retried (backed
    off) until the cloud agrees; returns the failed attempts."""
    await w.controller.stop("keep", timeout=5)
    failed = 0
    async with asyncio.timeout(timeout):
        while True:
            try:
                await w.controller.reconciler.destroy_all()
                return failed
            except CloudError:
                failed += 1
                await asyncio.sleep(0.05)


async def volume_cycle(w: StandaloneWorld, timeout: float = 20.0) -> int:
    """First VM with a new volume; destroyed for idle (volume detached, kept); the next VM with the
    same volume attached; the resource deleted (volume detached and deleted)."""
    w.controller.spec = volume_spec()
    await w.wake()
    await w.ready(timeout)
    store = volumes.of(w.sim.states[ZONE])
    (first,) = store.volumes.values()
    w.controller.spec = volume_spec(destroy_after=0.0)
    w.controller.request_sleep()
    await w.none_live(timeout)
    await until(lambda: first.instance_id is None, timeout, "the volume detached")
    await w.wake()
    await w.ready(timeout)
    (vm,) = w.live()
    await until(lambda: first.instance_id == vm.id, timeout, "the same volume on the next VM")
    await until(lambda: "error" not in w.controller.status(), timeout, "a clean round")
    return await destroy(w, timeout)


def check(w: StandaloneWorld, sim: VolumeWatch) -> None:
    assert volumes.of(sim.states[ZONE]).volumes == {}, "the volume goes with the resource"
    assert sim.count() == 1, "one volume only ever existed"
    assert sim.deleted_attached == [], "a VM was deleted with the volume still attached"
    assert w.duplicates == 0 and w.live() == []


@pytest.mark.parametrize("burst", ["absorbed", "surfaced"])
@pytest.mark.parametrize("operation", VOLUME_OPERATIONS)
async def test_5xx_burst_on_a_volume_call(operation: str, burst: str, tmp_path: Path) -> None:
    n = RETRIES if burst == "absorbed" else RETRIES + 2
    async with standalone_world(tmp_path, retries=RETRIES, sim_class=VolumeWatch, zone=ZONE) as w:
        assert isinstance(w.sim, VolumeWatch)
        w.sim.fail_next(n, 503, operation=operation)
        rule = w.sim.state.faults.fail_rules[-1]
        failed = await volume_cycle(w)
        assert rule.remaining == 0, f"the {operation} burst was not consumed"
        errors = [s["error"] for s in w.statuses if "error" in s]
        if burst == "surfaced" and operation != "delete-block-storage-volume":
            assert errors and all("unavailable" in e.lower() for e in errors), w.statuses
        elif burst == "surfaced":
            assert failed >= 1  # the deletion failed once, and was carried out when retried
        else:
            assert not errors and failed == 0, "a burst within the retries must not be seen"
        check(w, w.sim)
    record(f"5xx x{n} {operation}", injected=n, recovered=n, leaked=len(w.live()), duplicates=w.duplicates)


@pytest.mark.parametrize("operation", VOLUME_OPERATIONS)
async def test_timeouts_on_a_volume_call(operation: str, tmp_path: Path) -> None:
    """The call is carried out but its answer comes after the client gave up (up to twice): the
    retries must neither make a second volume nor take the done attach or detach for a refusal."""
    async with standalone_world(tmp_path, timeout=0.25, retries=4, sim_class=VolumeWatch, zone=ZONE) as w:
        assert isinstance(w.sim, VolumeWatch)
        w.sim.answer_late(operation, 2, 0.6)
        await volume_cycle(w, timeout=30)
        assert w.sim.late[operation][0] < 2, f"no {operation} answered late"
        await until(lambda: w.sim.delaying == 0, 10, "the late answers sent")  # nothing may come back
        check(w, w.sim)
        assert "VolumeUnsupported" not in str(w.controller.status())
    late = 2 - w.sim.late[operation][0]  # a retry that found the call done was not made again
    record(
        f"timeout x{late} {operation}",
        injected=late,
        recovered=late,
        leaked=len(w.live()),
        duplicates=w.duplicates,
    )
