"""In a cluster, the VM's setup shows in the resource's status, and a failed step is Ready=False
SetupFailed naming it, with a Warning Event, and the request waiting for that VM is answered at once
by the operator's own proxy (started from the Deployment the operator created)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import aiohttp
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama, wait_until

from remote_ollama.core.lifecycle import POLL_PROBE
from remote_ollama.sandbox.exoscale.timings import SimTimings

TIMINGS = SimTimings(
    boot=0.3, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, token=0.005, docker=1.0, image=4.0
)
FAILURE = "Error response from daemon: manifest for ollama/ollama:9.9 not found"


def status(world: OperatorWorld) -> dict[str, Any]:
    return dict(((world.get("remoteollama", "granite") or {}).get("status")) or {})


def condition(world: OperatorWorld, kind: str) -> dict[str, Any]:
    return next((c for c in status(world).get("conditions") or [] if c["type"] == kind), {})


async def ask(url: str) -> tuple[int, dict[str, Any], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/generate", json={"model": "granite3.1-dense:8b", "prompt": "hi"}) as resp,
    ):
        return resp.status, await resp.json(), time.monotonic()


def test_setup_steps_show_and_a_failed_step_is_setup_failed(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=TIMINGS) as world:
        assert world.sim.sim.fleet is not None
        world.sim.sim.fleet.fail_steps["image"] = FAILURE
        world.apply(credentials_secret())
        world.apply(remote_ollama(wake={"holdTimeout": "300s"}, idle={"stopAfter": "10m"}))
        url = world.start_proxy()
        wait_until(
            lambda: (status(world).get("setup") or {}).get("step") == "image",
            60,
            "status.setup at the image step",
        )
        assert condition(world, "VMSetup")["reason"] == "SetupInProgress"
        assert "setup step image (running)" in status(world)["message"]

        answers: list[tuple[int, dict[str, Any], float]] = []
        held = threading.Thread(target=lambda: answers.append(asyncio.run(ask(url))))
        held.start()
        wait_until(
            lambda: condition(world, "Ready").get("reason") == "SetupFailed", 60, "Ready=False SetupFailed"
        )
        seen = time.monotonic()
        ready = condition(world, "Ready")
        assert ready["status"] == "False" and ready["message"].startswith("VM setup step 'image' failed:")
        assert FAILURE in ready["message"]
        assert status(world)["phase"] == "Failed" and status(world)["setup"]["state"] == "failed"
        held.join(30)
        code, body, at = answers[0]
        assert code == 503 and body["reason"] == "SetupFailed" and body["provisioning"] is False, body
        assert at - seen < POLL_PROBE, "the held request is answered once the status says SetupFailed"

        def warning() -> list[dict[str, Any]]:
            items = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
            return [e for e in items if e.get("reason") == "SetupFailed" and e.get("type") == "Warning"]

        found = wait_until(warning, 30, "a Warning Event SetupFailed")
        assert "image" in found[0]["message"] and FAILURE in found[0]["message"]
        wait_until(lambda: world.instances() == [], 30, "the VM whose setup failed is deleted")
