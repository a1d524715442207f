"""Wake within a second of the cloud: once the VM's Ollama answers, Ready follows within 1 s, in
both shells, while the Exoscale API is not polled faster than the lifecycle's own rechecks.

The simulated VM's cloud-init takes 2.5 s after `running`, so the 5 s transition recheck would
land seconds after Ollama answers; the direct Ollama watch must not.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import wait_until

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.local.controller import LocalController
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

KEY, SECRET = "EXOwaketest", "wake-test-secret"
SLOW_CLOUD_INIT = SimTimings(boot=0.3, stop=0.2, destroy=0.2, operation=0.05, cloud_init=2.5, token=0.002)


async def test_standalone_is_ready_within_a_second_of_ollama_answering(tmp_path: Path) -> None:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=SLOW_CLOUD_INIT) as sim:
        spec = parse_spec({"idle": {"stopAfter": "10m"}}, require_credentials=False)
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, spec.zone, endpoint=sim.url, poll_interval=0.05)
        ctl = LocalController(spec, cloud, str(tmp_path / "state.json"), start_down=False)
        ctl.start()
        try:
            loop = asyncio.get_running_loop()

            def serving() -> bool:
                return any(vm.serving for vm in (sim.fleet.vms.values() if sim.fleet else ()))

            await sim.wait_for(serving, 30, "the VM's Ollama listening")
            answered = loop.time()
            await ctl.await_ready(answered + 10)
            assert loop.time() - answered < 1.0, f"Ready {loop.time() - answered:.2f}s after Ollama answered"
            assert ctl.state_phase() is Phase.READY or ctl.state().ready
            gets = sim.call_count("get-instance")
        finally:
            await ctl.stop("keep", 5)
        # the rounds came from the lifecycle's rechecks and the one kick, not a faster cloud poll
        assert gets <= 8, gets


def test_operator_is_ready_within_a_second_of_ollama_answering(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW_CLOUD_INIT) as world:
        sim: SimulatorThread = world.sim
        world.apply(credentials_secret())
        world.apply(remote_ollama(idle={"stopAfter": "10m"}))
        answered: list[float] = []

        def watch() -> None:
            while not answered:
                if any(vm.serving for vm in (sim.sim.fleet.vms.values() if sim.sim.fleet else ())):
                    answered.append(time.monotonic())
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        wait_until(lambda: answered, 40, "the VM's Ollama listening")
        world.wait_phase("Ready")
        latency = time.monotonic() - answered[0]
        assert latency < 1.5, f"Ready seen {latency:.2f}s after Ollama answered"  # incl. kubectl polling
