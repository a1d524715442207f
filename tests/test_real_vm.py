"""The data path on a real VM's software: Debian's nginx run with the exact site config of the
user-data and the key its key script makes (real openssl), in front of the real Ollama 0.17.4 (tiny model). Only the Exoscale
API is simulated. What nginx answers here is what production answers; the simulated VM and the
proxy are held to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from subprocess_world import standalone_program
from yarl import URL

from remote_ollama.engine.credentials import first_contact
from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink
from remote_ollama.sandbox.exoscale.catalog import InstanceTypeEntry
from remote_ollama.sandbox.exoscale.objects import Instance
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.sandbox.vm import SimulatedVM
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
from remote_ollama.vm.pki import (
    VMCredentials,
    client_ssl_context,
    generate_vm_credentials,
    pem_of,
    vm_certificate_problem,
)

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


async def pinned(url: str, creds: VMCredentials, deadline: float = 20) -> VMCredentials:
    """The first contact, as the operator makes it: the certificate nginx serves (the one the
    user-data's key script made) pinned; retried while nginx is still starting."""
    host, port = URL(url).host or "", URL(url).port or VM_PORT
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while (der := await first_contact(host, creds, port)) is None:
        assert loop.time() < end, f"nothing answers TLS at {url}"
        await asyncio.sleep(0.05)
    assert vm_certificate_problem(der) is None
    return creds.pinned_to(pem_of(der))


async def test_real_nginx_answers_client_certificate_refusals_with_a_400_page(
    vm: str, creds: VMCredentials
) -> None:
    key = {API_KEY_HEADER: creds.api_key or ""}
    trusted = await pinned(vm, creds)
    status, kind, body = await _get(vm, trusted.client_context(), key)
    assert (status, kind) == (200, "application/json") and VERSION in body  # the real Ollama behind it
    status, kind, body = await _get(vm, client_ssl_context(trusted.cert_pem), key)  # no certificate
    assert (status, kind) == (400, "text/html") and f"<title>{NO_CERT}</title>" in body
    foreign = generate_vm_credentials()  # a certificate of another resource's CA
    status, kind, body = await _get(vm, client_ssl_context(trusted.cert_pem, foreign.client_cert_pem,
                                                           foreign.client_key_pem), key)  # fmt: skip
    assert (status, kind) == (400, "text/html") and f"<title>{BAD_CERT}</title>" in body
    status, kind, body = await _get(vm, trusted.client_context(), {API_KEY_HEADER: "wrong-key-0123456789"})
    assert status == 401 and '"missing or wrong X-Ollama-Key"' in body


async def test_the_real_vm_keeps_its_key_across_a_restart_and_a_spoof_is_refused(
    creds: VMCredentials, real_ollama: RealOllama, tmp_path: Path
) -> None:
    """The key the VM made at first boot stays on its disk (a stop and start serves the pinned
    certificate); another VM at that address, booted from the same user-data, made its own key and
    is refused by the pinned client."""
    key = {API_KEY_HEADER: creds.api_key or ""}
    fleet = RealVMFleet(tmp_path, real_ollama.port, port=free_port())
    ip = fleet.allocate_ip()
    instance = _instance(creds, ip)
    url = f"https://{ip}:{fleet.port}"
    try:
        fleet.booted(instance)
        trusted = await pinned(url, creds)
        fleet.halted(instance)
        fleet.booted(instance)  # stopped and started: the same disk
        assert (await pinned(url, creds)).cert_pem == trusted.cert_pem
        assert (await _get(url, trusted.client_context(), key))[0] == 200
        fleet.halted(instance)
        fleet.booted(dataclasses.replace(instance, id="i-spoof"))  # a copy of the user-data, elsewhere
        assert (await pinned(url, creds)).cert_pem != trusted.cert_pem
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get(url, trusted.client_context(), key, deadline=0)
    finally:
        fleet.close()


async def test_the_simulated_vm_sends_nginx_s_page_for_a_missing_certificate(
    vm: str, creds: VMCredentials
) -> None:
    """The sandbox's VM answers what the real nginx answers (status, type, the page itself)."""
    key = {API_KEY_HEADER: creds.api_key or ""}
    real = await _get(vm, client_ssl_context((await pinned(vm, creds)).cert_pem), key)
    timings = SimTimings(cloud_init=0.0, pull=0.0)
    ip, port = "127.0.0.1", free_port()
    sim = SimulatedVM("i-sim", ip, _instance(creds, ip).user_data, port=port, timings=timings)
    await sim.boot()
    try:
        url = f"https://{ip}:{port}"
        simulated = await _get(url, client_ssl_context((await pinned(url, creds)).cert_pem), key)
    finally:
        await sim.shutdown()
    assert simulated == real


@pytest.fixture
async def proxy_to(creds: VMCredentials) -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(url: str, client: VMCredentials) -> str:
        trusted = await pinned(url, creds)
        ssl = client_ssl_context(trusted.cert_pem, client.client_cert_pem, client.client_key_pem)
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
    await _get(vm, (await pinned(vm, creds)).client_context(), {API_KEY_HEADER: creds.api_key or ""})  # up
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
        trusted = await pinned(url, creds)
        status, kind, page = await _get(url, trusted.client_context(), {API_KEY_HEADER: creds.api_key or ""})
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
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": real_sim.url,
        "EXOSCALE_IDLE_TIMEOUT": "10m",
        "OLLAMA_MODEL": TINY,
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        "REMOTE_OLLAMA_ON_EXIT": "destroy",
    }
    prog = standalone_program(tmp_path, env)
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
