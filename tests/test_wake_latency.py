"""Ready comes from watching the VM's Ollama, not from the lifecycle's next recheck, in both
shells, while the Exoscale API is not polled faster than the lifecycle's own rechecks.

The simulated VM's cloud-init takes 2.5 s after `running`; the lifecycle's rechecks while the VM
comes up are pushed out past every deadline here, so only the direct Ollama watch can make it Ready.
How fast (goal: within 1 s of Ollama answering) is measured by bench/cold_start.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, deadline

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.core import lifecycle
from remote_ollama.local.controller import LocalController
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

KEY, SECRET = "EXOwaketest", "wake-test-secret"
SLOW_CLOUD_INIT = SimTimings(boot=0.3, stop=0.2, destroy=0.2, operation=0.05, cloud_init=2.5, token=0.002)


@contextlib.contextmanager
def only_the_watch() -> Iterator[None]:
    """While the VM comes up the lifecycle looks again only at its steady horizon (minutes, past
    every deadline here): Ready within a deadline can only come from the Ollama watch's kick."""
    assert deadline(LIFECYCLE) < lifecycle.POLL_STEADY
    saved = lifecycle.POLL_TRANSITION, lifecycle.POLL_PROBE
    lifecycle.POLL_TRANSITION = lifecycle.POLL_PROBE = 3600.0
    try:
        yield
    finally:
        lifecycle.POLL_TRANSITION, lifecycle.POLL_PROBE = saved


async def test_standalone_is_ready_when_ollama_answers_not_at_the_next_recheck(tmp_path: Path) -> None:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=SLOW_CLOUD_INIT) as sim:
        spec = parse_spec({"idle": {"stopAfter": "10m"}}, require_credentials=False)
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, spec.zone, endpoint=sim.url, poll_interval=0.05)
        ctl = LocalController(spec, cloud, str(tmp_path / "state.json"), start_down=False)
        try:
            with only_the_watch():
                ctl.start()
                await ctl.await_ready(asyncio.get_running_loop().time() + deadline(LIFECYCLE))
            assert ctl.state_phase() is Phase.READY and serving(sim)
            gets = sim.call_count("get-instance")
        finally:
            await ctl.stop("keep", deadline(30))
        # the rounds came from the create, the watch's kick and warm-up, not a faster cloud poll
        assert gets <= 8, gets


def test_operator_is_ready_when_ollama_answers_not_at_the_next_recheck(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW_CLOUD_INIT) as world:
        world.apply(credentials_secret())
        with only_the_watch():
            world.apply(remote_ollama(idle={"stopAfter": "10m"}))
            world.wait_phase("Ready")
        assert serving(world.sim.sim)


def serving(sim: ExoscaleSimulator) -> bool:
    return any(vm.serving for vm in (sim.fleet.vms.values() if sim.fleet else ()))
