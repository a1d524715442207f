"""spec.coldStart.modelVolume: Ollama's model directory on a block-storage volume made with the
first VM, kept when the VM is destroyed, attached to the next one (whose setup finds the models
present), deleted with the resource; where Exoscale refuses block storage (zone, instance family),
a condition says so and the VM is made as today. Against the Exoscale simulator, whose
block-storage calls follow the API v2 document bundled with python-exoscale."""

from __future__ import annotations

from pathlib import Path

from cold_start_world import MODEL, controller_world, live, ready, steps
from waiting import until

from remote_ollama.sandbox.exoscale import volumes
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.state import CloudState
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_CLUSTER, LABEL_OWNER, STANDALONE_CLUSTER
from remote_ollama.spec.parse import parse_spec

TIMINGS = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.02, token=0.001, volume_attach=0.1)
OFFERED = "ch-gva-2"  # Exoscale's documentation lists block storage there (not in at-vie-2)


def spec(zone: str = OFFERED, **over: object) -> Spec:
    raw: dict[str, object] = {
        "models": [MODEL],
        "zone": zone,
        "idle": {"stopAfter": "10m", "destroyAfter": 0},  # scaled to zero by destroying
        "diskSize": 50,
        # no template: what survives the destroy is the volume's doing alone
        "coldStart": {"template": "off", "modelVolume": {"enabled": True, "size": 20}},
    }
    raw.update(over)
    return parse_spec(raw, require_credentials=False)


def zone(sim: ExoscaleSimulator, name: str = OFFERED) -> CloudState:
    return sim.states[name]


async def test_the_volume_is_made_kept_across_a_destroy_reused_and_deleted_with_the_resource(
    tmp_path: Path,
) -> None:
    async with controller_world(tmp_path, spec(), TIMINGS) as (sim, controller):
        await ready(controller)
        state = zone(sim)
        (first,) = live(state)
        (volume,) = volumes.of(state).volumes.values()
        owner = controller.saved.owner_id
        assert volume.labels[LABEL_OWNER] == owner and volume.labels[LABEL_CLUSTER] == STANDALONE_CLUSTER
        assert volume.name.endswith("-models") and volume.size == 20
        assert (volume.instance_id, volume.state) == (first.id, "attached")
        done = steps(sim, first.id)
        assert (done["volume"], done[f"model:{MODEL}"]) == ("done", "done")  # blank: formatted, pulled
        assert controller.status()["model_volume"]["reason"] == "VolumeReady"
        gb = round(20 * 1024**3 / 1e9, 1)
        await until(lambda: controller.status()["cost"].get("volumeStorageGB") == gb, 10, "its storage")
        assert controller.status()["cost"]["volumeMonthlySpend"] > 0

        # scaled to zero by a destroy: the VM goes, the volume stays (detached)
        controller.request_sleep()
        await until(lambda: not live(state), 30, "the VM destroyed")
        assert list(volumes.of(state).volumes.values()) == [volume]
        assert volume.instance_id is None and volume.state == "detached"
        assert any(c.operation == "detach-block-storage-volume" for c in sim.calls)

        # the next VM (a stock template: every package step again) gets the same volume, models
        # present; a larger size grows it while it is detached (volumes only grow)
        controller.spec = spec(coldStart={"template": "off", "modelVolume": {"enabled": True, "size": 30}})
        await ready(controller)
        (second,) = live(state)
        assert second.id != first.id and volume.instance_id == second.id and volume.size == 30
        done = steps(sim, second.id)
        assert done["driver"] == "done"
        assert (done["volume"], done[f"model:{MODEL}"]) == ("present", "present")
        assert [c.operation for c in sim.calls].count("create-block-storage-volume") == 1

        # the resource goes: its volume goes with it
        await controller.stop("destroy", timeout=20)
        assert volumes.of(state).volumes == {} and not live(state)


async def test_where_block_storage_is_not_offered_a_condition_says_so_and_the_vm_is_made_as_today(
    tmp_path: Path,
) -> None:
    async with controller_world(tmp_path, spec(zone="at-vie-2"), TIMINGS) as (sim, controller):
        await ready(controller)
        (vm,) = live(zone(sim, "at-vie-2"))
        assert "volume" not in steps(sim, vm.id) and steps(sim, vm.id)[f"model:{MODEL}"] == "done"
        shown = controller.status()["model_volume"]
        assert (shown["ready"], shown["reason"]) == (False, "VolumeUnsupported")
        assert "at-vie-2" in shown["message"] and "pulled to the VM's disk" in shown["message"]
        assert controller.status()["cost"].get("volumeStorageGB") is None
        assert all(volumes.of(s).volumes == {} for s in sim.states.values())


async def test_an_instance_family_refused_a_volume_gets_a_vm_as_today(tmp_path: Path) -> None:
    """The attach is refused (Exoscale's documentation once said "all but GPU"): the VM made for the
    volume is deleted at once and the next one made without it; the volume is kept (another type
    may use it) and goes with the resource."""
    async with controller_world(tmp_path, spec(), TIMINGS) as (sim, controller):
        volumes.of(zone(sim)).refused_families.add("gpua5000")
        await ready(controller)
        (vm,) = live(zone(sim))
        assert "volume" not in steps(sim, vm.id)
        assert controller.status()["model_volume"]["reason"] == "VolumeUnsupported"
        assert "gpua5000" in controller.status()["model_volume"]["message"]
        assert [c.operation for c in sim.calls].count("create-instance") == 2
        (kept,) = volumes.of(zone(sim)).volumes.values()
        assert kept.instance_id is None
        await controller.stop("destroy", timeout=20)
        assert volumes.of(zone(sim)).volumes == {}


def test_off_by_default() -> None:
    """A volume is billed for as long as the resource exists, VM or not: it is asked for."""
    assert parse_spec({"models": [MODEL]}, require_credentials=False).cold_start.model_volume.enabled is False


async def test_an_attach_lost_to_an_outage_is_done_at_a_later_round(tmp_path: Path) -> None:
    """The VM made for the volume is labelled with it: attach calls failing past the retries (a
    round's error, backed off) are made again at the next rounds until the volume is on the VM."""
    async with controller_world(tmp_path, spec(), TIMINGS) as (sim, controller):
        sim.fail_next(10, 503, operation="attach-block-storage-volume-to-instance")
        await ready(controller)
        state = zone(sim)
        (vm,) = live(state)
        (volume,) = volumes.of(state).volumes.values()
        assert volume.instance_id == vm.id and steps(sim, vm.id)["volume"] == "done"
        attaches = [c for c in sim.calls if c.operation == "attach-block-storage-volume-to-instance"]
        assert len(attaches) == 11 and [c.operation for c in sim.calls].count("create-instance") == 1
