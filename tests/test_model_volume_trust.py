"""Which model volume is ours (issue 18's trust rules for spec.coldStart.modelVolume): only the
volume whose id was recorded at create where tenants cannot write (standalone: the state file; the
operator: its Secret) is attached, grown, detached or deleted. A look-alike with our labels and
name, which anyone in the organisation can make, would become Ollama's model directory: it is never
attached. A create whose answer was lost is found again by its creation token; deletion removes the
recorded volume of every zone the resource's VMs ran in (spec.placements)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cold_start_world import KEY, SECRET, controller_world, live, ready, steps
from memory_data import memory_store
from test_model_volume import OFFERED, TIMINGS, spec, zone
from waiting import until

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.engine.credentials import CredentialStore
from remote_ollama.engine.volume_record import VolumeRecord, volumes_data
from remote_ollama.engine.volumes import ModelVolumes
from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_CREATION,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    STANDALONE_CLUSTER,
)

OTHER = "de-fra-1"  # a second zone with block storage


def owner_labels(owner: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE, LABEL_OWNER: owner, LABEL_CLUSTER: STANDALONE_CLUSTER}


def touched(sim: ExoscaleSimulator, volume_id: str) -> list[str]:
    """The calls that named this volume (attach, detach, resize, delete, get)."""
    return [c.operation for c in sim.calls if volume_id in c.path]


async def test_a_look_alike_volume_with_our_labels_and_name_is_never_attached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another org member plants a volume with our owner labels and our volume's name before the
    first VM (and another while our volume is detached): our VM gets a volume of its own, recorded
    at create, every time; the look-alikes get no call and a warning names them."""
    caplog.set_level(logging.WARNING)
    async with controller_world(tmp_path, spec(), TIMINGS) as (sim, controller):
        store = volumes.of(zone(sim))
        labels = owner_labels(controller.saved.owner_id)
        name = f"{controller.reconciler.target.name}-models"
        warnings: list[tuple[str, str]] = []  # what the operator posts as Warning Events
        controller.reconciler.warn = lambda reason, message: warnings.append((reason, message))
        planted = store.create(name, 20, labels)["reference"]["id"]
        await until(lambda: store.volumes[planted].state == "detached", 5, "the look-alike made")

        await ready(controller)
        (vm,) = live(zone(sim))
        assert store.volumes[planted].instance_id is None, "the look-alike is our VM's model directory"
        (ours,) = (v for v in store.volumes.values() if v.id != planted)
        assert ours.instance_id == vm.id
        assert steps(sim, vm.id)["volume"] == "done"  # a blank volume of our own, formatted
        assert touched(sim, planted) == []
        assert any(r == "UnrecordedVolumeIgnored" and planted in m for r, m in warnings), warnings
        assert any(
            "UnrecordedVolumeIgnored" in r.getMessage() and planted in r.getMessage() for r in caplog.records
        )

        controller.request_sleep()  # destroyed: our volume detached and kept
        await until(lambda: not live(zone(sim)), 30, "the VM destroyed")
        second = store.create(name, 20, labels)["reference"]["id"]
        await ready(controller)
        (vm,) = live(zone(sim))
        assert ours.instance_id == vm.id and steps(sim, vm.id)["volume"] == "present"
        assert touched(sim, planted) == touched(sim, second) == []

        await controller.stop("destroy", timeout=20)
        assert ours.id not in store.volumes  # ours goes with the resource, the others are not ours
        assert set(store.volumes) == {planted, second}


def volumes_in(sim: ExoscaleSimulator, zone_name: str, store: CredentialStore, owner: str) -> ModelVolumes:
    cloud = AsyncExoscaleCloud.connect(
        KEY, SECRET, zone_name, endpoint=sim.url, poll_interval=0.02, backoff_base=0.01
    )
    return ModelVolumes(cloud, store, "ro-granite", owner_labels(owner))


async def test_a_create_whose_answer_was_lost_is_found_by_its_token_and_a_copy_is_not(tmp_path: Path) -> None:
    """A crash between the create call and recording the id leaves the token recorded: the next
    round takes the oldest volume carrying it (a copy of the token can only be younger), records
    its id and makes no second volume."""
    async with ExoscaleSimulator({KEY: SECRET}, timings=TIMINGS) as sim:
        store = volumes.of(sim.states[OFFERED])
        labels = {**owner_labels("o-1"), LABEL_CREATION: "t0ken"}
        made = store.create("ro-granite-models", 20, labels)["reference"]["id"]
        store.volumes[made].created_at = "2026-01-01T00:00:00Z"
        copy = store.create("ro-granite-models", 20, labels)["reference"]["id"]
        record = memory_store(volumes_data({OFFERED: VolumeRecord(None, "t0ken")}))
        found = await volumes_in(sim, OFFERED, record, "o-1").for_create(spec())
        assert found is not None and found.id == made
        assert await record.volumes() == {OFFERED: VolumeRecord(made, "t0ken")}
        assert sim.call_count("create-block-storage-volume") == 0 and touched(sim, copy) == []


async def test_deletion_removes_the_volume_of_every_zone_the_resource_used(tmp_path: Path) -> None:
    """With spec.placements a VM may run in several zones, each making its volume there: the
    record lists them all and deletion (from whichever zone is current) removes each one, and only
    those recorded."""
    async with ExoscaleSimulator({KEY: SECRET}, timings=TIMINGS) as sim:
        record = memory_store()
        here, there = volumes_in(sim, OFFERED, record, "o-1"), volumes_in(sim, OTHER, record, "o-1")
        made: dict[str, Any] = {}
        for where, vols in ((OFFERED, here), (OTHER, there)):
            volume = await vols.for_create(spec(zone=where))
            assert volume is not None
            made[where] = volume.id
        assert set(await record.volumes()) == {OFFERED, OTHER}
        look_alike = volumes.of(sim.states[OTHER]).create("ro-granite-models", 20, owner_labels("o-1"))
        clouds = {OTHER: there.cloud}

        async def elsewhere(name: str) -> Any:
            return clouds.get(name)

        await volumes_in(sim, OFFERED, record, "o-1").delete(elsewhere)
        assert made[OFFERED] not in volumes.of(sim.states[OFFERED]).volumes
        assert list(volumes.of(sim.states[OTHER]).volumes) == [look_alike["reference"]["id"]]
        assert await record.volumes() == {}
