"""The data path on a real VM's software: Debian's nginx run with the exact site config and
certificates of the user-data, in front of the real Ollama 0.17.4 (tiny model). Only the Exoscale
API is simulated. What nginx answers here is what production answers; the simulated VM and the
proxy are held to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ollama_real.real_vm import RealVMFleet
from ollama_real.server import TINY, VERSION, RealOllama
from ports import free_port
from subprocess_world import Program, clean_env

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink
from remote_ollama.sandbox.exoscale.api import SimulatorThread
from remote_ollama.sandbox.exoscale.catalog import InstanceTypeEntry
from remote_ollama.sandbox.exoscale.state import Instance, SimTimings
from remote_ollama.sandbox.vm import SimulatedVM
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
from remote_ollama.vm.pki import VMCredentials, client_ssl_context, generate_vm_credentials

KEY, SECRET = "EXOrealvmtest", "real-vm-test-secret"
NO_CERT = "400 No required SSL certificate was sent"
BAD_CERT = "400 The SSL certificate error"


@pytest.fixture(scope="module")
def creds() -> VMCredentials:
    return generate_vm_credentials(api_key="vm-key-chosen-0123456789abcdef")


def _instance(creds: VMCredentials, ip: str) -> Instance:
    gpu = InstanceTypeEntry("gpua5000", "small", 8, 32, 1)  # unused by the VM
    data = encode_user_data(render_user_data(creds, [TINY]))
    return Instance("i-real", "real", gpu, "tpl", 50, "running", "now", data, public_ip=ip)


@pytest.fixture
def vm(real_ollama: RealOllama, creds: VMCredentials, tmp_path: Path) -> Iterator[str]:
    """One instance's nginx from its user-data; yields its https URL once it answers."""
    fleet = RealVMFleet(tmp_path, real_ollama.port, port=free_port())
    ip = fleet.allocate_ip()
    instance = _instance(creds, ip)
    fleet.booted(instance)
    url = f"https://{ip}:{fleet.port}"
    try:
        yield url
    finally:
        fleet.close()


async def _get(
    url: str, ssl: Any, headers: dict[str, str] | None = None, deadline: float = 20
) -> tuple[int, str, str]:
    """(status, content type, body) of GET /api/version; retried while nginx is still starting."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{url}/api/version", ssl=ssl, server_hostname=VM_TLS_SERVER_NAME,
                         headers=headers or {}) as r,
            ):  # fmt: skip
                return r.status, r.content_type, await r.text()
        except aiohttp.ClientConnectorError:
            if loop.time() > end:
                raise
            await asyncio.sleep(0.05)


async def test_real_nginx_answers_client_certificate_refusals_with_a_400_page(
    vm: str, creds: VMCredentials
) -> None:
    key = {API_KEY_HEADER: creds.api_key or ""}
    status, kind, body = await _get(vm, creds.client_context(), key)
    assert (status, kind) == (200, "application/json") and VERSION in body  # the real Ollama behind it
    status, kind, body = await _get(vm, client_ssl_context(creds.ca_pem), key)  # no certificate
    assert (status, kind) == (400, "text/html") and f"<title>{NO_CERT}</title>" in body
    foreign = generate_vm_credentials()  # a certificate of another resource's CA
    status, kind, body = await _get(vm, client_ssl_context(creds.ca_pem, foreign.client_cert_pem,
                                                           foreign.client_key_pem), key)  # fmt: skip
    assert (status, kind) == (400, "text/html") and f"<title>{BAD_CERT}</title>" in body
    status, kind, body = await _get(vm, creds.client_context(), {API_KEY_HEADER: "wrong-key-0123456789"})
    assert status == 401 and '"missing or wrong X-Ollama-Key"' in body


async def test_the_simulated_vm_sends_nginx_s_page_for_a_missing_certificate(
    vm: str, creds: VMCredentials
) -> None:
    """The sandbox's VM answers what the real nginx answers (status, type, the page itself)."""
    key = {API_KEY_HEADER: creds.api_key or ""}
    real = await _get(vm, client_ssl_context(creds.ca_pem), key)
    timings = SimTimings(cloud_init=0.0, pull=0.0)
    ip, port = "127.0.0.1", free_port()
    sim = SimulatedVM("i-sim", ip, _instance(creds, ip).user_data, port=port, timings=timings)
    await sim.boot()
    try:
        simulated = await _get(f"https://{ip}:{port}", client_ssl_context(creds.ca_pem), key)
    finally:
        await sim.shutdown()
    assert simulated == real


@pytest.fixture
async def proxy_to(creds: VMCredentials) -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(url: str, client: VMCredentials) -> str:
        ssl = client_ssl_context(creds.ca_pem, client.client_cert_pem, client.client_key_pem)
        upstream = Upstream(url, ssl, creds.api_key, VM_TLS_SERVER_NAME)
        app = make_proxy_app(LocalResolver(upstream), RecordingSink(), ProxySettings())
        runner, port = await start_proxy(app, "127.0.0.1", 0)
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("path", ["/api/chat", "/api/tags"])  # streamed, and a polling route
async def test_a_refused_client_certificate_reaches_the_user_as_an_ollama_error(
    vm: str, creds: VMCredentials, proxy_to: Any, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _get(vm, creds.client_context(), {API_KEY_HEADER: creds.api_key or ""})  # nginx is up
    proxy = await proxy_to(vm, generate_vm_credentials())  # a proxy holding another CA's certificate
    body = {"model": TINY, "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level(logging.WARNING):
        async with aiohttp.ClientSession() as http:
            method = http.post if path == "/api/chat" else http.get
            async with method(f"{proxy}{path}", json=body if path == "/api/chat" else None) as r:
                answer = await r.json()
                assert (r.status, r.content_type) == (502, "application/json")
    assert set(answer) == {"error"} and "client certificate" in answer["error"] and "<" not in answer["error"]
    assert any("client certificate refused" in rec.getMessage() for rec in caplog.records)


async def test_nginx_without_its_ollama_reaches_the_user_as_an_ollama_error(
    creds: VMCredentials, proxy_to: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A booted VM whose Ollama is not up yet (or crashed): nginx's 502 page becomes a JSON 502."""
    fleet = RealVMFleet(tmp_path, free_port(), port=free_port())  # nothing listens on Ollama's port
    ip = fleet.allocate_ip()
    fleet.booted(_instance(creds, ip))
    url = f"https://{ip}:{fleet.port}"
    try:
        status, kind, page = await _get(url, creds.client_context(), {API_KEY_HEADER: creds.api_key or ""})
        assert (status, kind) == (502, "text/html") and "<title>502 Bad Gateway</title>" in page
        proxy = await proxy_to(url, creds)
        with caplog.at_level(logging.WARNING):
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{proxy}/api/generate", json={"model": TINY}) as r,
            ):
                assert (r.status, r.content_type) == (502, "application/json")
                answer = await r.json()
        assert set(answer) == {"error"} and "Ollama is not answering" in answer["error"]
        assert any("Ollama behind nginx is down" in rec.getMessage() for rec in caplog.records)
    finally:
        fleet.close()


# -- standalone end to end on the real VM ----------------------------------------------------------


@pytest.fixture
def real_sim(real_ollama: RealOllama, tmp_path: Path) -> Iterator[SimulatorThread]:
    fleet = RealVMFleet(tmp_path / "vms", real_ollama.port)
    timings = SimTimings(boot=0.5, stop=0.2, destroy=0.2, operation=0.05)
    with SimulatorThread(keys={KEY: SECRET}, timings=timings, machines=fleet) as s:
        try:
            yield s
        finally:
            fleet.close()


def test_standalone_serves_the_real_ollama_through_the_real_nginx(
    real_sim: SimulatorThread, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": real_sim.url,
        "EXOSCALE_IDLE_TIMEOUT": "10m",
        "OLLAMA_MODEL": TINY,
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        "REMOTE_OLLAMA_ON_EXIT": "destroy",
    }
    prog = Program(["standalone", "--host", "127.0.0.1", "--port", str(port)], clean_env(env),
                   tmp_path / "standalone.log", port=port)  # fmt: skip
    try:
        prog.wait_listening()
        code, headers, body = prog.request(
            "POST", "/api/generate", {"model": TINY, "prompt": "hello", "stream": False,
                                      "options": {"num_predict": 3}}, timeout=90)  # fmt: skip
        assert code == 200, (body, prog.output())
        assert body["model"] == TINY and body["done"] is True and isinstance(body["response"], str)
        assert headers["Content-Type"].startswith("application/json")
        code, _, version = prog.get("/api/version")
        assert (code, version) == (200, {"version": VERSION})
        status = prog.wait_status(lambda s: s["provisioning_status"] == "ready", 30, "ready")
        assert status["remote_url"].endswith(f":{VM_PORT}")
        assert prog.terminate(timeout=30) == 0
    finally:
        prog.kill()
