"""The first hour in operator mode (issue 21), on the real kube-apiserver test world: an unreachable
Exoscale API answers held requests, the real Go `ollama` CLI works on first contact and after a wake,
and a chat UI connecting to a stopped VM neither wakes it nor counts as activity."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cluster.fixtures import KubeNamespace
from go_ollama import MODEL, GoOllama, call, connect_sequence, first_contact, with_a_vm_and_after_a_wake
from ollama_real.server import build_ollama
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from ports import free_port

from remote_ollama.spec.names import ANN_IN_FLIGHT, ANN_LAST_ACTIVITY, ANN_WAKE_REQUESTED

ACTIVITY = (ANN_LAST_ACTIVITY, ANN_WAKE_REQUESTED, ANN_IN_FLIGHT)


def annotations(world: OperatorWorld) -> dict[str, str]:
    obj = world.get("remoteollama", "granite") or {}
    found = (obj.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in found.items() if k in ACTIVITY}


def asleep(world: OperatorWorld) -> bool:
    return all(i.state == "stopped" for i in world.instances()) and world.phase() != "Ready"


def test_unreachable_exoscale_api_answers_held_requests_503_naming_the_host(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dead = free_port()  # nothing listens there
    with operator_world(
        kube, monkeypatch, extra_env={"EXOSCALE_API_ENDPOINT": f"http://127.0.0.1:{dead}/v2"}
    ) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama(wake={"holdTimeout": "300s"}))
        url = world.start_proxy()

        async def ask() -> tuple[int, dict[str, str], Any]:
            timeout = aiohttp.ClientTimeout(total=90)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                return await call(
                    http, "POST", url + "/api/generate", b'{"model":"granite3.1-dense:8b","prompt":"hi"}'
                )

        started = time.monotonic()
        status, headers, body = asyncio.run(ask())
        waited = time.monotonic() - started
        assert status == 503, body
        assert waited < 35, f"held {waited:.0f}s"
        assert body["reason"] == "CloudUnavailable" and body["provisioning"] is False, body
        assert f"127.0.0.1:{dead}" in body["error"] and "unavailable" in body["error"], body
        assert int(headers["Retry-After"]) == 15, headers  # the grace: the next wake request gets a new round
        assert f"reaching 127.0.0.1:{dead}" in caplog.text  # the log names the host
        assert world.instances() == []


@pytest.fixture(scope="module")
def real_ollama_cli() -> Path:
    return build_ollama()


def test_the_real_ollama_cli_and_a_chat_ui_connecting_to_a_stopped_vm(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch, real_ollama_cli: Path, tmp_path: Path
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        # A new resource brings its VM up at once: first contact is made while it is suspended
        world.apply(remote_ollama(modelManagement=True, suspend=True))
        url = world.start_proxy()
        cli = GoOllama(real_ollama_cli, url, tmp_path)
        first_contact(cli, lambda: world.instances() == [])
        world.apply(remote_ollama(modelManagement=True))
        with_a_vm_and_after_a_wake(
            cli,
            lambda: asleep(world),
            lambda: world.wait_phase("Stopped", timeout=90) and None,
            model_management=True,
        )
        world.wait_phase("Stopped", timeout=90)
        (instance,) = world.instances()
        assert instance.state == "stopped"
        before = annotations(world)

        async def connect() -> tuple[dict[str, Any], tuple[int, dict[str, str], Any]]:
            async with aiohttp.ClientSession() as http:
                seen = await connect_sequence(http, url)
                return seen, await call(http, "GET", url + "/v1/models/" + MODEL)

        seen, one = asyncio.run(connect())
        # truthful: the VM's own list and description, kept while it is stopped
        (listed,) = [m for m in seen["/api/tags"]["models"] if m["name"] == MODEL]
        assert len(listed["digest"]) == 64 and listed["size"] > 0 and listed["modified_at"], listed
        assert seen[f"show {MODEL}"]["details"]["family"], seen[f"show {MODEL}"]
        assert seen["/api/ps"] == {"models": []}  # nothing loaded on a stopped VM
        assert seen["/api/version"] == {"version": "0.35.1"}
        assert MODEL in [m["id"] for m in seen["/v1/models"]["data"]]
        assert one[0] == 200 and one[2]["id"] == MODEL
        # no wake, no activity
        assert annotations(world) == before
        assert [i.state for i in world.instances()] == ["stopped"] and world.phase() == "Stopped"
