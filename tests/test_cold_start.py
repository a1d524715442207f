"""spec.coldStart.template: the set-up VM's disk is baked into a private template at its first stop,
the next VM is created from it and its setup skips what is there; a setup change bakes a new one
(and deletes the old); the resource's deletion deletes it. Against the Exoscale simulator, whose
snapshot and template calls follow the API v2 document bundled with python-exoscale."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cold_start_world import MODEL, controller_world, live, ready, steps
from waiting import until

from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import ActionKind, Activity, Memory, Observation
from remote_ollama.local.controller import LocalController
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_SPEC_HASH, STANDALONE_CLUSTER, template_prefix
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase
from remote_ollama.vm.cloudinit import setup_hash

TIMINGS = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.02, token=0.001, snapshot=0.1, template=0.1)
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def spec(**over: object) -> Spec:
    raw: dict[str, object] = {"models": [MODEL], "idle": {"stopAfter": "10m"}, "diskSize": 50}
    raw.update(over)
    return parse_spec(raw, require_credentials=False)


async def stopped_and_baked(
    sim: ExoscaleSimulator, controller: LocalController, image: str | None = None
) -> None:
    """Scaled to zero by stop; then its disk is the one template (of this setup), the snapshot gone."""
    controller.request_sleep()
    await until(lambda: [i.state for i in live(sim.state)] == ["stopped"], 30, "the VM stopped")
    await until(
        lambda: (
            [t.name[-12:] for t in sim.state.templates.values()] == [setup_hash(image)]
            and not sim.state.snapshots
        ),
        30,
        "the one template, of this setup",
    )


async def test_baked_reused_rebaked_on_a_setup_change_and_deleted_with_the_resource(tmp_path: Path) -> None:
    async with controller_world(tmp_path, spec(), TIMINGS) as (sim, controller):
        await ready(controller)
        first = live(sim.state)[0]
        stock = first.template_id
        assert steps(sim, first.id)["driver"] == "done" and steps(sim, first.id)["image"] == "done"
        await stopped_and_baked(sim, controller)
        (baked,) = sim.state.templates.values()
        owner = controller.saved.owner_id
        assert baked.name == f"{template_prefix(STANDALONE_CLUSTER, owner)}{setup_hash()}"
        assert baked.size == 50 and first.id in {
            i.id for i in live(sim.state)
        }  # the VM itself stays (stopped)
        gb = round(50 * 1024**3 / 1e9, 1)
        await until(
            lambda: controller.status()["cost"].get("templateStorageGB") == gb, 10, "its storage in cost"
        )
        assert controller.status()["cost"]["templateMonthlySpend"] > 0

        # destroyed (idle.destroyAfter), then woken: the new VM boots from the template
        controller.spec = spec(idle={"stopAfter": "10m", "destroyAfter": 0})
        controller.request_sleep()
        await until(lambda: not live(sim.state), 30, "the stopped VM destroyed")
        await ready(controller)
        second = live(sim.state)[0]
        assert second.template_id == baked.id and second.id != first.id
        done = steps(sim, second.id)
        assert (done["driver"], done["docker"], done["image"], done[f"model:{MODEL}"]) == ("present",) * 4
        assert done["nginx"] == "done" and done["ollama"] == "done"  # per-VM certificates, a new container
        assert len(sim.state.templates) == 1, "a template boot does not bake again"

        # a new Ollama image is a new setup: the VM is replaced from the stock template, then re-baked
        image = "ollama/ollama:0.33.0"
        controller.spec = spec(ollama={"image": image})
        await controller.request_wake(datetime.now(UTC))
        await until(lambda: [i.id for i in live(sim.state) if i.id != second.id], 30, "the replacing VM")
        await until(lambda: controller.saved.memory.instance_id not in (None, second.id), 30, "it is in use")
        await ready(controller)
        (third,) = live(sim.state)
        assert third.template_id == stock and steps(sim, third.id)["image"] == "done"
        await stopped_and_baked(sim, controller, image)
        (rebaked,) = sim.state.templates.values()
        assert rebaked.id != baked.id and rebaked.name.endswith(setup_hash(image))

        # the resource goes: its template goes with it
        await controller.stop("destroy", timeout=20)
        assert sim.state.templates == {} and not live(sim.state)


async def test_no_template_over_exoscales_100_gb_or_when_off(tmp_path: Path) -> None:
    for the_spec in (spec(diskSize=200), spec(coldStart={"template": "off"})):
        async with controller_world(tmp_path / str(id(the_spec)), the_spec, TIMINGS) as (sim, controller):
            await ready(controller)
            controller.request_sleep()
            await until(lambda: [i.state for i in live(sim.state)] == ["stopped"], 30, "the VM stopped")
            for _ in range(5):  # a few rounds while stopped
                await controller.step()
            assert sim.state.templates == {} and not any(c.operation == "create-snapshot" for c in sim.calls)


def test_a_vm_destroyed_for_idleness_is_stopped_once_to_be_baked() -> None:
    s = spec(idle={"stopAfter": "1m", "destroyAfter": 0})
    running = ObservedInstance(
        id="i-1", state="running", public_ip="127.0.10.2", labels={LABEL_SPEC_HASH: s.instance_hash()}
    )
    mem = Memory(created_at=T0, phase=Phase.READY, instance_id="i-1", ready_at=T0, set_up_instance="i-1")
    later = T0 + timedelta(minutes=5)

    def decide_with(
        baked: bool | None, instance: ObservedInstance, memory: Memory = mem
    ) -> tuple[ActionKind, ...]:
        return decide(Observation(s, instance, Activity(), memory, later, baked=baked)).kinds

    assert decide_with(False, running) == (ActionKind.STOP_INSTANCE,)
    assert decide_with(True, running) == (ActionKind.DELETE_INSTANCE,)
    assert decide_with(None, running) == (ActionKind.DELETE_INSTANCE,)
    stopped = dataclasses.replace(running, state="stopped")
    down = dataclasses.replace(mem, phase=Phase.STOPPED, scaled_down_at=later)
    assert decide_with(False, stopped, down) == (ActionKind.BAKE_TEMPLATE, ActionKind.DELETE_INSTANCE)
    # only the VM whose setup completed is baked
    assert decide_with(False, stopped, dataclasses.replace(down, set_up_instance="i-0")) == (
        ActionKind.DELETE_INSTANCE,
    )
