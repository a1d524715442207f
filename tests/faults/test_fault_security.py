"""Security promises: per-VM CA and client key, and the VM's own server key (mutual TLS), random and rotated on
re-create; the proxy trusts that VM's pinned certificate only; the security group admits only allowedSourceCIDRs on 11435; no secret in logs or /status;
the proxy never forwards a client's X-Ollama-Key; client keys are compared in constant time."""

from __future__ import annotations

import dataclasses
import hmac
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from proxy_world import API_KEY, MODELS, make_pki, world
from standalone_world import FAST, KEY, SECRET, full_cycle, spec, standalone_world
from summary import record
from waiting import LIFECYCLE, until

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.sandbox.vm import SimulatedVM
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME


async def test_vm_key_and_ca_are_random_per_vm_and_rotated_on_recreate(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        async with standalone_world(tmp_path / run) as w:
            for _ in range(2):  # create, destroy, create again
                await w.wake()
                await w.ready()
                creds = w.controller.files.load().credentials
                assert creds is not None
                seen.append(dict(creds))
                w.controller.spec = spec(destroy_after=0.0)
                w.controller.request_sleep()
                await w.none_live()
                w.controller.spec = spec()
            assert w.state_file.stat().st_mode & 0o777 == 0o600
    for field in ("ca.crt", "tls.crt", "client.crt", "client.key"):
        values = [c[field] for c in seen]
        assert len(set(values)) == len(values) == 4, f"{field} repeated across VMs"
    assert all("api-key" not in c for c in seen), "a bearer secret without EXOSCALE_OLLAMA_KEY"
    assert all("tls.key" not in c for c in seen), "the VM's server key left the VM"
    record("key/CA rotation (4 VMs)", note="4 distinct CAs, pinned VM certificates and client keys")


async def test_the_proxy_trusts_the_vms_own_ca_only() -> None:
    async with world() as w, aiohttp.ClientSession() as http:
        other = make_pki()  # a proxy pinned to another VM's certificate (or a VM that is an impostor)
        for ssl_ctx in (other.client_context(), None):
            w.resolver.set_ready(Upstream(w.upstream_url, ssl_ctx, API_KEY, VM_TLS_SERVER_NAME))
            before = dict(w.state.last_headers)
            async with http.post(f"{w.url}/api/generate", json={"model": MODELS[0], "stream": False}) as r:
                assert r.status == 502, await r.text()
                assert "error" in await r.json()
            assert w.state.last_headers == before, "the request reached a VM it should not trust"
        w.resolver.set_ready(w.upstream)
        async with http.post(f"{w.url}/api/generate", json={"model": MODELS[0], "stream": False}) as r:
            assert r.status == 200


async def test_security_group_admits_only_the_allowed_cidrs_on_the_vm_port(tmp_path: Path) -> None:
    allowed = ("203.0.113.0/24", "2001:db8::/32")
    async with standalone_world(
        tmp_path, the_spec=dataclasses.replace(spec(), allowed_source_cidrs=allowed)
    ) as w:
        await w.wake()
        await w.ready()
        (inst,) = w.live()
        (sg,) = [g for g in w.sim.state.security_groups.values() if g.id in inst.security_group_ids]
        assert inst.security_group_ids == [sg.id], "no other group (e.g. default) on the VM"
        inbound = sorted(
            (r.protocol, r.network, r.start_port, r.end_port)
            for r in sg.rules
            if r.flow_direction == "ingress"
        )
        assert inbound == sorted(("tcp", c, VM_PORT, VM_PORT) for c in allowed)

        # Someone opens SSH by hand and the CIDRs change: the next create puts the group right.
        sg.rules.append(
            dataclasses.replace(sg.rules[0], id="manual", network="0.0.0.0/0", start_port=22, end_port=22)
        )
        w.controller.spec = dataclasses.replace(
            spec(destroy_after=0.0), allowed_source_cidrs=("198.51.100.7/32",)
        )
        # a round already under way decided with the old spec: let one finish before asking
        before = w.controller.decision
        await until(lambda: w.controller.decision is not before, LIFECYCLE, "a round with the new spec")
        w.controller.request_sleep()
        await w.none_live()
        w.controller.spec = dataclasses.replace(spec(), allowed_source_cidrs=("198.51.100.7/32",))
        await w.wake()
        await w.ready()
        inbound = [
            (r.protocol, r.network, r.start_port, r.end_port)
            for r in sg.rules
            if r.flow_direction == "ingress"
        ]
        assert inbound == [("tcp", "198.51.100.7/32", VM_PORT, VM_PORT)]


async def test_no_secret_in_logs_or_status_over_a_full_lifecycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: set[str] = {SECRET}
    outputs: list[str] = []
    async with standalone_world(tmp_path) as w:
        c = w.controller
        runner, port = await start_proxy(
            # activity written every second: the request's end (in flight 0) reaches the lifecycle
            # well within full_cycle's sleep wait, however fast the wake was
            make_proxy_app(c, c, ProxySettings(status_extra=c.status, activity_interval=1.0)),
            "127.0.0.1",
            0,
        )
        try:
            async with aiohttp.ClientSession() as http:
                w.sim.fail_next(2, 503, operation="create-instance")  # error paths log too
                body = {"model": MODELS[0], "prompt": "hi", "stream": False}
                async with http.post(f"http://127.0.0.1:{port}/api/generate", json=body) as r:
                    assert r.status == 200
                for path in ("/status", "/metrics", "/healthz", "/readyz"):
                    async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                        outputs.append(await r.text())
                creds = c.files.load().credentials or {}
                secrets |= {_pem_body(creds["client.key"])}
                await full_cycle(w)  # sleep, wake, destroy: every log line of the lifecycle
                creds = c.files.load().credentials or {}
                secrets |= {_pem_body(creds["client.key"])}
                async with http.get(f"http://127.0.0.1:{port}/status") as r:
                    outputs.append(await r.text())
        finally:
            await runner.cleanup()
        outputs.append(repr(c.status()))
    logged = "\n".join(
        [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records] + [caplog.text]
    )
    assert len(caplog.records) > 20
    for secret in secrets:
        assert secret not in logged, "a secret reached the logs"
        for out in outputs:
            assert secret not in out, "a secret reached /status or /metrics"
    assert KEY not in "\n".join(outputs)
    record(
        "secret scan",
        note=f"{len(secrets)} secrets vs {len(caplog.records)} log records, {len(outputs)} outputs",
    )


def _pem_body(pem: str) -> str:
    lines = [line for line in pem.strip().splitlines() if not line.startswith("-----")]
    return "".join(lines)[:40]


@pytest.mark.parametrize("name", [API_KEY_HEADER, API_KEY_HEADER.lower(), API_KEY_HEADER.upper()])
async def test_the_proxy_never_forwards_a_clients_vm_key(name: str) -> None:
    async with world() as w, aiohttp.ClientSession() as http:
        headers = {name: "client-forged-key", "Connection": f"keep-alive, {name}"}
        async with http.get(f"{w.url}/api/tags", headers=headers) as r:
            assert r.status == 200
        seen = {k.lower(): v for k, v in w.state.last_headers["/api/tags"].items()}
        assert seen[API_KEY_HEADER.lower()] == API_KEY, "the client's key is replaced by the VM's"
        # Without a VM key to send, a client's key (even the right one) is dropped, not passed on.
        w.resolver.set_ready(dataclasses.replace(w.upstream, api_key=None))
        async with http.get(f"{w.url}/api/tags", headers={name: API_KEY}) as r:
            assert r.status == 401, "the VM saw the client's X-Ollama-Key"


async def test_client_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module the proxy calls it through
    settings = ProxySettings(client_api_keys=frozenset({"right-key-0123456789"}))
    async with world(settings) as w, aiohttp.ClientSession() as http:
        async with http.get(f"{w.url}/api/tags", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        good = {"Authorization": "Bearer right-key-0123456789"}
        async with http.get(f"{w.url}/api/tags", headers=good) as r:
            assert r.status == 200
        seen = {k.lower() for k in w.state.last_headers.get("/api/tags", {})}
        assert "authorization" not in seen, "the client's key is the proxy's, not the VM's"
    assert len(compared) >= 2


async def test_a_look_alike_built_from_the_user_data_at_the_vms_address_gets_no_request(
    tmp_path: Path,
) -> None:
    """An organisation member reads the user-data (get-instance) the moment the VM is created and
    boots a copy of it at the VM's address once that VM is gone (a destroy frees its IP; here: the
    VM is powered off). Before: that user-data held the VM's server key, so the copy served the very
    certificate the proxy trusted and got the prompts. Now the copy makes its own key and the proxy,
    pinned to the VM's certificate since the first contact, refuses it."""
    async with standalone_world(tmp_path) as w:
        c = w.controller
        runner, port = await start_proxy(make_proxy_app(c, c, ProxySettings(hold_timeout=5)), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}/api/generate"
        body = {"model": MODELS[0], "prompt": "hi", "stream": False}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=body) as r:
                    assert r.status == 200
                (inst,) = w.live()
                copied = (inst.replaced_user_data or [inst.user_data])[0]  # as it was at create
                vm = w.sim.vm(inst.id)
                assert vm is not None and inst.public_ip
                pinned = (c.saved.credentials or {})["tls.crt"]
                await vm.shutdown()
                c.poll_cap = 3600.0  # the lifecycle does not look again on its own during this test
                look_alike = SimulatedVM("look-alike", inst.public_ip, copied, port=VM_PORT, timings=FAST)
                await look_alike.boot()
                try:
                    assert look_alike.serving and look_alike.disk is not None
                    async with http.post(url, json=body) as r:
                        refused = r.status
                        assert r.status == 502, await r.text()
                    assert look_alike.disk.cert_pem.decode() != pinned
                    assert (c.saved.credentials or {})["tls.crt"] == pinned, "the pin never moves"
                finally:
                    await look_alike.shutdown()
        finally:
            await runner.cleanup()
    record("look-alike from user-data", note=f"{refused}: refused, pinned certificate")
