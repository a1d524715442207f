"""First contact: what a client sees before any VM answers, in every mode, without waking one.

`ollama list`, `ollama ps` and `ollama -v` (GET /api/version) must work on a fresh install, and a
chat UI that lists models on connect must be able to pick one and chat from a cold start.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import httpx
import ollama
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from ports import free_port
from proxy_world import world
from subprocess_world import Program, clean_env, sandbox_program, standalone_program
from test_standalone import KEY, SECRET, live_instances
from test_standalone import sim as sim
from waiting import LIFECYCLE, wait_until

from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.proxy.polling import CACHED_HEADER
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.vm.ollama_release import DEFAULT_OLLAMA_VERSION

MODEL = "granite3.1-dense:8b"


async def raw_get(url: str) -> tuple[int, dict[str, str], object]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, dict(r.headers), json.loads(await r.read())


async def test_no_vm_yet_answers_the_spec_models_the_pinned_version_and_nothing_loaded() -> None:
    settings = ProxySettings(models=("granite3.1-dense:8b", "nomic-embed-text"), ollama_version="0.35.1")
    async with world(settings, ready=False) as w:
        w.resolver.set_down("Stopped")
        client = ollama.AsyncClient(host=w.url)
        # no digest before the VM answered, so nothing listed (`ollama list` prints digest[:12]);
        # the OpenAI-style list names the spec's models
        assert (await client.list()).models == []
        _, _, openai_list = await raw_get(w.url + "/v1/models")
        assert [m["id"] for m in openai_list["data"]] == ["granite3.1-dense:8b", "nomic-embed-text:latest"]
        assert (await client.ps()).models == []
        status, headers, body = await raw_get(w.url + "/api/version")
        assert (status, body, headers[CACHED_HEADER]) == (200, {"version": "0.35.1"}, "true")
        status, headers, _ = await raw_get(w.url + "/api/tags")
        assert headers[CACHED_HEADER] == "true"
        async with aiohttp.ClientSession() as http, http.head(w.url + "/api/tags") as r:
            assert r.status == 200
        assert w.sink.wakes == [] and w.sink.touches == []

        # once a VM answered: its real details; once it is down again, nothing is loaded
        w.resolver.set_ready(w.upstream)
        await client.generate(model=MODEL, prompt="", keep_alive="10m")  # loads it
        assert [m.model for m in (await client.ps()).models] == [MODEL]
        real = await client.list()
        assert all(m.digest for m in real.models)
        w.resolver.set_down("Stopped")
        assert (await client.ps()).models == []  # never a stale "loaded" model
        assert await client.list() == real
        _, headers, body = await raw_get(w.url + "/api/version")
        assert body == {"version": w.state.version} and headers[CACHED_HEADER] == "true"


def test_sandbox_lists_models_without_waking_then_chats_from_cold(tmp_path: Path) -> None:
    prog = sandbox_program(tmp_path, "--idle", "1m")
    try:
        prog.wait_listening()
        client = ollama.Client(host=prog.url, timeout=60)
        # a chat UI connecting: list the models, ask what is loaded and the version
        assert client.list().models == []
        assert [m["id"] for m in prog.request("GET", "/v1/models", None, 10)[2]["data"]] == [MODEL]
        assert client.ps().models == []
        status, _, version = prog.request("GET", "/api/version", None, 10)
        assert (status, version) == (200, {"version": DEFAULT_OLLAMA_VERSION})
        assert prog.request("GET", "/status", None, 10)[2]["instance_status"] == "none"  # no wake
        # ... then the user picks the listed model and chats: the VM is created, the answer streams
        picked = prog.request("GET", "/v1/models", None, 10)[2]["data"][0]["id"]
        chunks = list(client.chat(model=picked, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert chunks[-1].done and "".join(c.message.content or "" for c in chunks).strip()
        assert all(m.digest for m in client.list().models)  # the VM's own answer now
    finally:
        prog.kill()


def test_standalone_first_contact_creates_nothing(sim: SimulatorThread, tmp_path: Path) -> None:
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "OLLAMA_MODEL": f"{MODEL},nomic-embed-text",
        "OLLAMA_IMAGE": "ollama/ollama:0.14.2",
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        "REMOTE_OLLAMA_FIRST_REQUEST": "503",
    }
    prog = standalone_program(tmp_path, env)
    try:
        prog.wait_listening()
        client = ollama.Client(host=prog.url, timeout=30)
        assert client.list().models == []
        listed = prog.request("GET", "/v1/models", None, 10)[2]["data"]
        assert [m["id"] for m in listed] == [MODEL, "nomic-embed-text:latest"]
        assert client.ps().models == []
        assert prog.request("GET", "/api/version", None, 10)[2] == {"version": "0.14.2"}
        assert live_instances(sim) == [] and sim.sim.state.security_groups == {}
        # the first real request: the words say there is no VM yet, not that it is "stopped"
        code, _, body = prog.request("POST", "/api/generate", {"model": MODEL, "prompt": "hi"}, 10)
        assert code == 503 and body["error"] == "no remote instance yet; it is being created, retry shortly"
    finally:
        prog.kill()


def test_operator_mode_first_contact_and_a_restarted_proxy_answers_as_the_vm_did(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama(suspend=True, idle={"stopAfter": "10m"}))
        world.wait_phase("Stopped")
        url = world.start_proxy()
        client = ollama.Client(host=url, timeout=30)
        assert client.list().models == []
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == [MODEL]
        assert client.ps().models == []
        assert httpx.get(url + "/api/version").json() == {"version": DEFAULT_OLLAMA_VERSION}
        assert world.instances() == []  # polling woke nothing
        status = httpx.get(url + "/status").json()  # the /status fields, in operator mode too
        assert (status["provisioning_status"], status["idle_timeout"]) == ("idle", 600)

        world.apply(remote_ollama(suspend=False, idle={"stopAfter": "10m"}))
        # the user picks the listed model and chats: the request wakes a new VM and is answered
        picked = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        reply = client.chat(model=picked, messages=[{"role": "user", "content": "hi"}], stream=False)
        assert reply.message.content
        obj = world.wait_phase("Ready")
        wait_until(
            lambda: ((world.get("remoteollama", "granite") or {}).get("status") or {}).get("ollama"),
            10,
            "status.ollama",
        )
        seen = (world.get("remoteollama", "granite") or {})["status"]["ollama"]
        assert seen["version"] == DEFAULT_OLLAMA_VERSION
        assert [m["name"] for m in seen["models"]] == [MODEL] and seen["models"][0]["digest"]
        assert obj["status"]["phase"] == "Ready"

        world.apply(remote_ollama(suspend=True, idle={"stopAfter": "10m"}))
        world.wait_phase("Stopped")
        world.stop_procs()
        url = world.start_proxy()  # a new proxy process: it never saw the VM itself
        client = ollama.Client(host=url, timeout=30)
        listed = client.list().models
        assert [m.model for m in listed] == [MODEL] and listed[0].digest == seen["models"][0]["digest"]
        assert client.ps().models == []


async def test_wording_tells_no_instance_yet_from_stopped() -> None:
    async with world(ProxySettings(immediate_503=True), ready=False) as w:
        for exists, words in ((False, "no remote instance yet"), (True, "remote instance is stopped")):
            w.resolver.set_down("Stopped", instance=exists)
            async with (
                aiohttp.ClientSession() as http,
                http.post(w.url + "/api/generate", json={"model": MODEL}) as r,
            ):
                assert r.status == 503
                assert (await r.json())["error"].startswith(words)


def test_standalone_vm_runs_the_chosen_older_ollama_and_lacks_its_missing_routes(
    sim: SimulatorThread,
    tmp_path: Path,
) -> None:
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "OLLAMA_MODEL": MODEL,
        "OLLAMA_IMAGE": "ollama/ollama:0.13.5",  # before /v1/messages (0.14.0)
        "OLLAMA_ENV": "OLLAMA_NUM_PARALLEL=2",
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
    }
    prog = standalone_program(tmp_path, env)
    try:
        prog.wait_listening()
        code, _, answer = prog.request(
            "POST", "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}, 60
        )
        assert code == 200 and answer["done"]
        code, headers, version = prog.request("GET", "/api/version", None, 10)
        assert version == {"version": "0.13.5"} and CACHED_HEADER not in headers  # the VM's own answer
        missing = httpx.post(
            prog.url + "/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": []}
        )
        assert missing.status_code == 404  # Ollama 0.13.5 has no Anthropic route
        (vm,) = live_instances(sim)
        machine = sim.sim.vm(vm.id)
        assert machine is not None and machine.serving and machine.user_data
        assert '"-e" "OLLAMA_NUM_PARALLEL=2"' in base64.b64decode(machine.user_data).decode()  # OLLAMA_ENV
    finally:
        prog.kill()


def test_a_restarted_standalone_answers_as_the_vm_did_while_it_sleeps(
    sim: SimulatorThread,
    tmp_path: Path,
) -> None:
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "OLLAMA_MODEL": MODEL,
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        "REMOTE_OLLAMA_ON_EXIT": "stop",
    }

    def start() -> Program:
        port = free_port()
        args = ["standalone", "--host", "127.0.0.1", "--port", str(port)]
        prog = Program(args, clean_env(env), tmp_path / f"s{port}.log", port=port)
        prog.wait_listening()
        return prog

    first = start()
    try:
        code, _, _ = first.request(
            "POST", "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}, 60
        )
        assert code == 200
        seen = ollama.Client(host=first.url).list().models
        assert seen[0].digest
        assert first.terminate(timeout=25) == 0  # stops the VM
    finally:
        first.kill()
    wait_until(lambda: [i.state for i in live_instances(sim)] == ["stopped"], LIFECYCLE, "the VM stopped")
    second = start()
    try:
        client = ollama.Client(host=second.url, timeout=10)
        assert client.list().models == seen  # the VM's own list, from the state file
        assert client.ps().models == []
        assert [i.state for i in live_instances(sim)] == ["stopped"]  # nothing woke it
    finally:
        second.kill()
