"""A standalone controller against the Exoscale simulator, for the cold-start tests (the baked
template, the model volume): the world, a wake to Ready, and what a simulated VM's setup did."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from waiting import LIFECYCLE, deadline

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.local.controller import LocalController
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.objects import GONE_STATES, Instance
from remote_ollama.sandbox.exoscale.state import CloudState
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec

KEY, SECRET = "EXOcoldstart00000000000", "cold-start-secret-value-0123456789"
MODEL = "granite3.1-dense:8b"


@contextlib.asynccontextmanager
async def controller_world(
    tmp_path: Path, the_spec: Spec, timings: SimTimings
) -> AsyncIterator[tuple[ExoscaleSimulator, LocalController]]:
    """The simulator and a started controller of `the_spec` in its zone (stopped, VMs kept, after)."""
    async with ExoscaleSimulator({KEY: SECRET}, timings=timings) as sim:
        cloud = AsyncExoscaleCloud.connect(
            KEY, SECRET, the_spec.zone, endpoint=sim.url, poll_interval=0.02, backoff_base=0.01
        )
        controller = LocalController(the_spec, cloud, str(tmp_path / "state.json"), max_backoff=0.2)
        controller.poll_cap = 0.05
        controller.start()
        try:
            yield sim, controller
        finally:
            await controller.stop("keep", timeout=5)


def live(state: CloudState) -> list[Instance]:
    return [i for i in state.instances.values() if i.state not in GONE_STATES]


async def ready(controller: LocalController) -> None:
    await controller.request_wake(datetime.now(UTC))
    await controller.await_ready(asyncio.get_running_loop().time() + deadline(LIFECYCLE))


def steps(sim: ExoscaleSimulator, instance_id: str) -> dict[str, str]:
    """Each setup step's state on the VM's status document."""
    vm = sim.fleet.vms[instance_id] if sim.fleet else None
    assert vm is not None and vm.setup is not None
    return {s["name"]: s["state"] for s in vm.setup.steps}
