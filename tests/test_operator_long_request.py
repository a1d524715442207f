"""Operator mode: a request longer than spec.idle.stopAfter plus spec.activityInterval, through the
proxy the operator's Deployment starts, is never cut by scale-to-zero (the proxy writes
remoteollama.dev/in-flight at once when it begins); afterwards idleness stops the VM as usual."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, wait_until

from remote_ollama.sandbox.exoscale.timings import SimTimings

STOP_AFTER, INTERVAL = 1.0, 3.0
SLOW = SimTimings(boot=0.3, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1, token=0.7)


def test_a_long_generation_is_never_cut(kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama(idle={"stopAfter": "1s"}, activityInterval="3s", warmUp=False))
        # the request goes in at once: whether it finds the VM coming up or already stopped for idle
        # (a loaded machine may be slower than stopAfter), the proxy holds it until the VM is Ready
        url = world.start_proxy()
        with (
            httpx.Client(timeout=120) as http,
            http.stream(
                "POST", f"{url}/api/generate", json={"model": "granite3.1-dense:8b", "prompt": "tell me"}
            ) as resp,
        ):
            assert resp.status_code == 200
            lines = resp.iter_lines()
            first = next(lines)
            stops_before = world.sim.sim.call_count("stop-instance")
            streaming_from = time.monotonic()
            chunks = [json.loads(first)] + [json.loads(line) for line in lines if line.strip()]
            took = time.monotonic() - streaming_from
        assert chunks[-1]["done"] is True, chunks[-1]
        assert took > STOP_AFTER + INTERVAL, f"the stream took only {took:.1f}s: not a long request"
        assert world.sim.sim.call_count("stop-instance") == stops_before, (
            "the VM was stopped under a running request"
        )
        world.wait_phase("Stopped")
        obj = world.get("remoteollama", "granite")
        assert obj is not None and obj["metadata"]["annotations"]["remoteollama.dev/in-flight"] == "0"
        wait_until(lambda: [i.state for i in world.instances()] == ["stopped"], LIFECYCLE, "instance stopped")
