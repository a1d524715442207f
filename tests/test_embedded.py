"""The embeddable Python API against the Exoscale simulator, sync and async.

ensure → the local URL answers (official ollama client) and the VM answers through TLS with its
key → the idle monitor scales to zero → ensure again wakes the same instance → destroy leaves no
instance and no security group.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import pydoc
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import ollama
import pytest
from waiting import LIFECYCLE, deadline, until, wait_until

from remote_ollama import AsyncRemoteOllama, RemoteOllama
from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.embedded import VM_TLS_SERVER_NAME, InstanceNotReady
from remote_ollama.local.settings import ConfigError
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.objects import GONE_STATES
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.names import API_KEY_HEADER

KEY, SECRET = "EXOembeddedtest", "embedded-test-secret"
MODEL = "granite3.1-dense:8b"
TIMINGS = SimTimings(boot=0.3, stop=0.2, destroy=0.2, operation=0.05, token=0.002)


def live(sim: ExoscaleSimulator) -> list[Any]:
    return [i for i in list(sim.state.instances.values()) if i.state not in GONE_STATES]


def vm_get(remote_url: str, path: str, ctx: ssl.SSLContext, key: str | None) -> tuple[int, Any]:
    """GET on the VM itself: TLS verified against its CA and name, the key header when given."""
    host, port = remote_url.removeprefix("https://").rsplit(":", 1)
    header = f"{API_KEY_HEADER}: {key}\r\n" if key else ""
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=VM_TLS_SERVER_NAME) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: vm\r\n{header}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(keys={KEY: SECRET}, timings=TIMINGS) as s:
        yield s


def test_sync_ensure_idle_wake_destroy(sim_thread: SimulatorThread, tmp_path: Path) -> None:
    sim = sim_thread.sim
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim_thread.url,
        "EXOSCALE_INSTANCE_TYPE": "a5000.small",
        "EXOSCALE_OLLAMA_KEY": "my-own-vm-key-0123456789",
        "OLLAMA_MODEL": MODEL,
        "EXOSCALE_IDLE_TIMEOUT": "1",
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
    }
    cloud = AsyncExoscaleCloud.connect(KEY, SECRET, "at-vie-2", endpoint=sim_thread.url, poll_interval=0.05)
    remote = RemoteOllama.from_env(env, cloud=cloud, poll_interval=0.2, idle_monitor=False)
    assert remote.status()["provisioning_status"] == "idle"
    with remote:
        assert remote.status()["idle_monitor"] is False
        assert not live(sim), "nothing is created before it is asked for"

        url = remote.ensure_instance(timeout=30)
        assert url == remote.url and url.startswith("http://127.0.0.1:")
        answer = ollama.Client(host=url).generate(model=MODEL, prompt="hi")
        assert answer.done and answer.response
        status = remote.status()
        assert status["provisioning_status"] == "ready" and status["instance_type"] == "gpua5000.small"

        # The VM itself: TLS that verifies against its own CA, and the key the user supplied.
        assert remote.vm_api_key == "my-own-vm-key-0123456789"
        ctx = remote.vm_ssl_context()
        assert ctx is not None and remote.remote_url
        code, version = vm_get(remote.remote_url, "/api/version", ctx, "my-own-vm-key-0123456789")
        assert code == 200 and version["version"]
        assert vm_get(remote.remote_url, "/api/version", ctx, None)[0] in (401, 403)
        with pytest.raises(ssl.SSLError):
            vm_get(
                remote.remote_url, "/api/version", ssl.create_default_context(), "my-own-vm-key-0123456789"
            )

        # Without the monitor, idleness stops nothing; with it, the VM scales to zero.
        first_id = remote.instance_id
        assert first_id and [i.id for i in live(sim)] == [first_id]
        remote.record_activity()
        remote.start_idle_monitor()
        wait_until(lambda: live(sim)[0].state == "stopped", LIFECYCLE, "scale to zero")
        wait_until(lambda: remote.status()["provisioning_status"] == "idle", LIFECYCLE, "status idle")
        assert remote.remote_url is None

        # Ensure again: the same instance starts; no second create.
        remote.stop_idle_monitor()
        remote.ensure_instance(timeout=30)
        assert remote.instance_id == first_id
        assert sim.call_count("create-instance") == 1
        assert ollama.Client(host=remote.url).generate(model=MODEL, prompt="again").response

        remote.destroy(timeout=30)
        assert not live(sim)
        assert not sim.state.security_groups
        assert remote.status()["instance_status"] == "none"
    assert not live(sim), "shutdown after destroy creates nothing"


async def test_async_ensure_idle_wake_destroy(tmp_path: Path) -> None:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=TIMINGS) as sim:
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05)
        async with AsyncRemoteOllama(
            api_key=KEY,
            api_secret=SECRET,
            endpoint=sim.url,
            model=[MODEL],
            idle_timeout="1s",
            state_file=str(tmp_path / "state.json"),
            on_exit="destroy",
            cloud=cloud,
            poll_interval=0.2,
            idle_monitor=False,
        ) as remote:
            url = await remote.ensure_instance(timeout=30)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/api/generate", json={"model": MODEL, "prompt": "hi"}) as r:
                    lines = [json.loads(line) async for line in r.content if line.strip()]
                assert r.status == 200 and len(lines) > 1 and lines[-1]["done"]
                # mutual TLS: vm_ssl_context() carries the client certificate; no key unless the user set one
                assert remote.remote_url and remote.vm_api_key is None
                async with http.get(
                    f"{remote.remote_url}/api/tags",
                    ssl=await remote.vm_ssl_context(),
                    server_hostname=VM_TLS_SERVER_NAME,
                ) as r:
                    assert r.status == 200
                    assert MODEL in [m["name"] for m in (await r.json())["models"]]
            first_id = remote.instance_id
            await remote.start_idle_monitor()
            await until(lambda: live(sim) and live(sim)[0].state == "stopped", LIFECYCLE, "scale to zero")
            await remote.ensure_instance(timeout=30)
            assert remote.instance_id == first_id and sim.call_count("create-instance") == 1
            await remote.destroy(timeout=30)
            assert not live(sim) and not sim.state.security_groups
            # Usable after destroy: a request through url creates a fresh VM.
            await remote.stop_idle_monitor()
            await remote.ensure_instance(timeout=30)
            assert remote.instance_id not in (None, first_id)
        # on_exit=destroy on leaving the block
        await sim.wait_for(lambda: not live(sim), deadline(LIFECYCLE), "on_exit destroy")


async def test_ensure_times_out_with_the_reason(tmp_path: Path) -> None:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=TIMINGS) as sim:
        sim.exceed_quota("gpua5000")
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05)
        remote = AsyncRemoteOllama(
            api_key=KEY,
            api_secret=SECRET,
            state_file=str(tmp_path / "s.json"),
            cloud=cloud,
            poll_interval=0.2,
        )
        try:
            with pytest.raises(InstanceNotReady) as err:
                await remote.ensure_instance(timeout=2)
            assert isinstance(err.value, TimeoutError)
            assert "quota" in (err.value.error or "").lower()
            assert (await remote.status())["provisioning_status"] == "error"
        finally:
            await remote.shutdown()
        assert not live(sim)


def test_bad_settings_list_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        RemoteOllama(
            api_key="", api_secret="s", zone="nowhere", instance_type="gpua9000.small", idle_timeout="x"
        )
    assert len(err.value.problems) == 4
    with pytest.raises(TypeError):
        RemoteOllama(api_key="k", api_secret="s", colour="blue")


def test_scale_out_is_refused_not_ignored() -> None:
    """The embedded API runs one VM: max_replicas above 1 (keyword or variable) is a clear error."""
    with pytest.raises(ConfigError) as err:
        RemoteOllama(api_key="k", api_secret="s", max_replicas=3)
    (line,) = err.value.problems
    assert line.startswith("max_replicas (REMOTE_OLLAMA_MAX_REPLICAS)='3'") and "one VM" in line
    with pytest.raises(ConfigError, match="REMOTE_OLLAMA_MAX_REPLICAS='2'"):
        RemoteOllama.from_env(
            {"EXOSCALE_API_KEY": "k", "EXOSCALE_API_SECRET": "s", "REMOTE_OLLAMA_MAX_REPLICAS": "2"}
        )
    one = RemoteOllama(api_key="k", api_secret="s", max_replicas=1, target_in_flight=2)
    assert one.aio.config.spec.target_in_flight == 2


def test_help_teaches_it_and_repr_hides_secrets() -> None:
    text = pydoc.render_doc(RemoteOllama, renderer=pydoc.plaintext)
    for word in ("ensure_instance", "start_idle_monitor", "destroy", "shutdown", "remote_url", "on_exit"):
        assert word in text
    remote = RemoteOllama(api_key="EXOsecretkey", api_secret="very-secret")
    assert "secret" not in repr(remote).lower()


def test_importing_the_package_stays_light() -> None:
    code = "import sys, remote_ollama; print(any(m in sys.modules for m in ('aiohttp', 'exoscale')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_leaving_async_with_right_after_start_idle_monitor_does_not_hang(tmp_path: Path) -> None:
    """The monitor kicks a round while the block exits: the loop must still stop (it once hung)."""
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=TIMINGS) as sim:
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05)
        for attempt in range(3):
            remote = AsyncRemoteOllama(
                api_key=KEY,
                api_secret=SECRET,
                endpoint=sim.url,
                model=[MODEL],
                idle_timeout="10m",
                state_file=str(tmp_path / "state.json"),
                on_exit="keep",
                cloud=cloud,
            )
            async with remote:
                await remote.ensure_instance(timeout=30)  # Ready: the loop waits long for a kick
                await remote.start_idle_monitor()  # ... and gets one
                exiting = asyncio.get_running_loop().time()
            assert asyncio.get_running_loop().time() - exiting < 5, f"exit took long ({attempt})"
            assert not remote.started
        assert sim.call_count("create-instance") == 1


def test_async_api_is_the_same_methods_awaited() -> None:
    """Every method that does I/O or may wait is a coroutine; the sync class has the same names."""
    plain = {"from_env", "from_config"}
    for name, member in inspect.getmembers(AsyncRemoteOllama, inspect.isfunction):
        if name.startswith("_") or name in plain:
            continue
        assert inspect.iscoroutinefunction(member), f"AsyncRemoteOllama.{name} is not a coroutine"
        assert callable(getattr(RemoteOllama, name)), name
    assert inspect.iscoroutinefunction(AsyncRemoteOllama.status)
    assert inspect.iscoroutinefunction(AsyncRemoteOllama.vm_ssl_context)


async def test_the_idle_monitor_starts_with_the_context_manager_unless_disabled(tmp_path: Path) -> None:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=TIMINGS) as sim:
        for choice, expected in ((None, True), (False, False)):
            cloud = AsyncExoscaleCloud.connect(KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05)
            kwargs = {} if choice is None else {"idle_monitor": choice}
            async with AsyncRemoteOllama(
                api_key=KEY,
                api_secret=SECRET,
                endpoint=sim.url,
                state_file=str(tmp_path / "state.json"),
                on_exit="keep",
                cloud=cloud,
                **kwargs,
            ) as remote:
                assert (await remote.status())["idle_monitor"] is expected


async def test_the_embedded_proxy_honours_client_keys_model_management_max_body_and_progress(
    tmp_path: Path,
) -> None:
    """REMOTE_OLLAMA_CLIENT_KEYS, _MODEL_MANAGEMENT, _MAX_BODY and _WAKE_PROGRESS rule the embedded
    endpoint as they rule standalone's (its settings are built the one way the other proxies' are):
    with wake progress on, a generate held while the VM wakes has its body read, so 64 bytes cap it."""
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=TIMINGS) as sim:
        env = {
            "EXOSCALE_API_KEY": KEY,
            "EXOSCALE_API_SECRET": SECRET,
            "EXOSCALE_API_ENDPOINT": sim.url,
            "OLLAMA_MODEL": MODEL,
            "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
            "REMOTE_OLLAMA_ON_EXIT": "destroy",
            "REMOTE_OLLAMA_CLIENT_KEYS": "embedded-client-key",
            "REMOTE_OLLAMA_MODEL_MANAGEMENT": "false",
            "REMOTE_OLLAMA_MAX_BODY": "64",
            "REMOTE_OLLAMA_WAKE_PROGRESS": "true",
        }
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05)
        async with AsyncRemoteOllama.from_env(env, cloud=cloud, poll_interval=0.2) as remote:
            url = await remote.start()
            auth = {"Authorization": "Bearer embedded-client-key"}
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/api/tags") as r:
                    assert r.status == 401 and "error" in await r.json()
                async with http.get(f"{url}/api/tags", headers=auth) as r:
                    assert r.status == 200
                async with http.post(f"{url}/api/pull", json={"model": MODEL}, headers=auth) as r:
                    assert r.status == 403 and "error" in await r.json()
                big = json.dumps({"model": MODEL, "prompt": "x" * 200})
                async with http.post(f"{url}/api/generate", data=big, headers=auth) as r:
                    assert r.status == 413 and "error" in await r.json()
