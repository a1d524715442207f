"""The Exoscale simulator, driven by the real python-exoscale SDK, and the simulated GPU VMs behind it.

What a caller of the real cloud would see: signed requests, catalogue lookups, async operations,
quota and capacity errors, and a VM that serves TLS with the certificate from its user-data.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import exoscale.api.v2
import pytest
import requests
import yaml
from exoscale.api.exceptions import (
    ExoscaleAPIAuthException,
    ExoscaleAPIClientException,
    ExoscaleAPIException,
    ExoscaleAPIServerException,
)
from exoscale.api.v2 import Client
from exoscale_auth import ExoscaleV2Auth

from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator, SimulatorThread
from remote_ollama.sandbox.exoscale.state import SimTimings
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.pki import generate_vm_credentials

KEY, SECRET = "EXOtestkey", "test-secret"
VM_KEY = "vm-api-key-0123456789"
MODELS = ["granite3.1-dense:8b", "llama3.2:1b"]
FAST = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.02)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_sdk_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """client.wait() sleeps 3 s between polls; the simulator's operations finish in 20 ms."""
    monkeypatch.setattr(exoscale.api.v2, "_sleep", lambda start_time: time.sleep(0.01))


@pytest.fixture
async def sim() -> AsyncIterator[ExoscaleSimulator]:
    async with ExoscaleSimulator(keys={KEY: SECRET}, timings=FAST) as simulator:
        yield simulator


@pytest.fixture
def client(sim: ExoscaleSimulator) -> Client:
    return Client(KEY, SECRET, zone="at-vie-2", url=sim.zone_url())


class TLSMaterial:
    """A throwaway CA and a server certificate for VM_TLS_SERVER_NAME, as the operator would make."""

    def __init__(self) -> None:
        creds = generate_vm_credentials()
        self.ca_pem, self.cert_pem, self.key_pem = creds.ca_pem, creds.cert_pem, creds.key_pem

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem)
        return ctx

    def user_data(self, api_key: str = VM_KEY, models: list[str] = MODELS) -> str:
        files = [
            {"path": "/etc/remote-ollama/tls.crt", "content": self.cert_pem, "permissions": "0644"},
            {
                "path": "/etc/remote-ollama/tls.key",
                "content": base64.b64encode(self.key_pem.encode()).decode(),
                "encoding": "b64",
                "permissions": "0600",
            },
            {"path": "/etc/remote-ollama/api-key", "content": api_key + "\n", "permissions": "0600"},
            {"path": "/etc/remote-ollama/models", "content": "".join(m + "\n" for m in models)},
        ]
        text = "#cloud-config\n" + yaml.safe_dump({"write_files": files})
        return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def tls() -> TLSMaterial:
    return TLSMaterial()


# -- helpers ---------------------------------------------------------------------------------------


async def sdk(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """The SDK is synchronous: run it off the loop that serves the simulator."""
    return await asyncio.to_thread(fn, **kwargs)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def instance_state(client: Client, instance_id: str, state: str) -> None:
    async def reached() -> bool:
        return bool((await sdk(client.get_instance, id=instance_id))["state"] == state)

    await until(reached, f"instance {instance_id} {state}")


async def lookup_ids(client: Client, type_name: str = "gpua5000.small") -> tuple[str, str]:
    family, size = type_name.split(".")
    types = (await sdk(client.list_instance_types))["instance-types"]
    itype = next(t for t in types if t["family"] == family and t["size"] == size)
    templates = (await sdk(client.list_templates, visibility="public"))["templates"]
    template = next(t for t in templates if t["name"] == "Linux Ubuntu 22.04 LTS 64-bit")
    return itype["id"], template["id"]


async def create_instance(client: Client, user_data: str | None = None, **extra: Any) -> str:
    type_id, template_id = await lookup_ids(client, extra.pop("type_name", "gpua5000.small"))
    args: dict[str, Any] = {
        "name": "remote-ollama-ai-granite",
        "instance_type": {"id": type_id},
        "template": {"id": template_id},
        "disk_size": 100,
        "labels": {"managed-by": "remote-ollama", "remote-ollama-owner": "uid-1"},
        "public_ip_assignment": "inet4",
    }
    if user_data is not None:
        args["user_data"] = user_data
    args.update(extra)
    op = await sdk(client.create_instance, **args)
    assert op["state"] == "pending"
    await sdk(client.wait, operation_id=op["id"])
    return str(op["reference"]["id"])


async def vm_get(
    ip: str, tls: TLSMaterial, path: str = "/api/tags", key: str | None = VM_KEY
) -> tuple[int, bytes]:
    headers = {API_KEY_HEADER: key} if key is not None else {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(
            f"https://{ip}:{VM_PORT}{path}",
            headers=headers,
            ssl=tls.client_context(),
            server_hostname=VM_TLS_SERVER_NAME,
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp,
    ):
        return resp.status, await resp.read()


async def vm_refuses(ip: str, tls: TLSMaterial) -> bool:
    try:
        await vm_get(ip, tls)
    except aiohttp.ClientConnectorError:
        return True
    return False


async def vm_models(ip: str, tls: TLSMaterial) -> list[str]:
    status, body = await vm_get(ip, tls)
    assert status == 200, body
    return sorted(m["name"] for m in json.loads(body)["models"])


# -- authentication --------------------------------------------------------------------------------


async def test_bad_secret_unknown_key_and_expired_signature_are_rejected(
    sim: ExoscaleSimulator, client: Client
) -> None:
    for bad in (Client(KEY, "wrong", url=sim.zone_url()), Client("EXOother", SECRET, url=sim.zone_url())):
        with pytest.raises(ExoscaleAPIAuthException) as err:
            await sdk(bad.list_instances)
        assert err.value.response.status_code == 403
        assert err.value.response.json() == {"message": "Invalid request signature"}

    def expired() -> requests.Response:
        req = requests.Request("GET", f"{sim.zone_url()}/instance").prepare()
        ExoscaleV2Auth(KEY, SECRET)._sign_request(req, int(time.time()) - 10)
        return requests.Session().send(req)

    resp = await asyncio.to_thread(expired)
    assert resp.status_code == 403 and resp.json()["message"] == "Invalid request signature"
    assert (await sdk(client.list_instances)) == {"instances": []}


async def test_tampered_query_argument_is_rejected(sim: ExoscaleSimulator) -> None:
    def tampered() -> requests.Response:
        req = requests.Request("GET", f"{sim.zone_url()}/template", params={"visibility": "public"}).prepare()
        ExoscaleV2Auth(KEY, SECRET)(req)
        # the signed value no longer matches
        req.prepare_url(f"{sim.zone_url()}/template", {"visibility": "private"})
        return requests.Session().send(req)

    resp = await asyncio.to_thread(tampered)
    assert resp.status_code == 403


# -- catalogue -------------------------------------------------------------------------------------


async def test_catalogue_lists_gpu_types_templates_and_zones(client: Client) -> None:
    types = (await sdk(client.list_instance_types))["instance-types"]
    by_name = {f"{t['family']}.{t['size']}": t for t in types}
    for name in ("gpua5000.small", "gpua5000.medium", "gpua5000.large", "gpu3080ti.small", "gpu2.medium"):
        assert by_name[name]["gpus"] >= 1 and by_name[name]["authorized"] is True
    assert "at-vie-2" in by_name["gpua5000.small"]["zones"]
    assert "gpus" not in by_name["standard.medium"]
    one = await sdk(client.get_instance_type, id=by_name["gpua5000.small"]["id"])
    assert (one["family"], one["size"], one["gpus"]) == ("gpua5000", "small", 1)

    templates = (await sdk(client.list_templates, visibility="public"))["templates"]
    ubuntu = next(t for t in templates if t["name"] == "Linux Ubuntu 22.04 LTS 64-bit")
    assert (await sdk(client.get_template, id=ubuntu["id"]))["name"] == ubuntu["name"]
    assert len(templates) >= 3

    zones = {z["name"] for z in (await sdk(client.list_zones))["zones"]}
    assert {"at-vie-2", "ch-gva-2", "de-fra-1"} <= zones

    with pytest.raises(ExoscaleAPIClientException) as err:
        await sdk(client.get_template, id="00000000-0000-0000-0000-000000000000")
    assert err.value.response.status_code == 404


# -- security groups -------------------------------------------------------------------------------


async def test_security_group_with_rules(client: Client) -> None:
    op = await sdk(client.create_security_group, name="remote-ollama-ai-granite", description="test")
    sg_id = (await sdk(client.wait, operation_id=op["id"]))["reference"]["id"]
    op = await sdk(
        client.add_rule_to_security_group,
        id=sg_id,
        flow_direction="ingress",
        protocol="tcp",
        network="0.0.0.0/0",
        start_port=VM_PORT,
        end_port=VM_PORT,
    )
    await sdk(client.wait, operation_id=op["id"])
    sg = await sdk(client.get_security_group, id=sg_id)
    [rule] = sg["rules"]
    assert (rule["flow-direction"], rule["protocol"], rule["network"]) == ("ingress", "tcp", "0.0.0.0/0")
    assert (rule["start-port"], rule["end-port"]) == (VM_PORT, VM_PORT)
    listed = (await sdk(client.list_security_groups))["security-groups"]
    assert [g["name"] for g in listed] == ["remote-ollama-ai-granite"]

    with pytest.raises(ExoscaleAPIClientException):
        await sdk(
            client.add_rule_to_security_group,
            id=sg_id,
            flow_direction="ingress",
            protocol="tcp",
            network="not-a-cidr",
            start_port=1,
            end_port=2,
        )
    with pytest.raises(ExoscaleAPIClientException):
        await sdk(client.create_security_group, name="remote-ollama-ai-granite")

    await sdk(
        client.wait,
        operation_id=(await sdk(client.delete_rule_from_security_group, id=sg_id, rule_id=rule["id"]))["id"],
    )
    assert (await sdk(client.get_security_group, id=sg_id))["rules"] == []
    await sdk(client.wait, operation_id=(await sdk(client.delete_security_group, id=sg_id))["id"])
    with pytest.raises(ExoscaleAPIClientException) as err:
        await sdk(client.get_security_group, id=sg_id)
    assert err.value.response.status_code == 404


# -- instances and their VMs -----------------------------------------------------------------------


async def test_instance_lifecycle_and_vm_over_tls(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    inst = await sdk(client.get_instance, id=instance_id)
    assert inst["name"] == "remote-ollama-ai-granite" and inst["disk-size"] == 100
    assert inst["labels"]["managed-by"] == "remote-ollama"
    assert inst["user-data"] == tls.user_data() and inst["created-at"].endswith("Z")
    ip = inst["public-ip"]
    assert ip.startswith("127.")

    await until(lambda: _serves(ip, tls), "VM serving")
    assert await vm_models(ip, tls) == sorted(MODELS)
    status, body = await vm_get(ip, tls, key="wrong")
    assert status == 401 and b"X-Ollama-Key" in body
    assert (await vm_get(ip, tls, key=None))[0] == 401

    await sdk(client.wait, operation_id=(await sdk(client.stop_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "stopped")
    assert await vm_refuses(ip, tls)

    await sdk(client.wait, operation_id=(await sdk(client.start_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "running")
    assert (await sdk(client.get_instance, id=instance_id))["public-ip"] == ip
    await until(lambda: _serves(ip, tls), "VM serving after start")
    assert await vm_models(ip, tls) == sorted(MODELS)

    await sdk(client.wait, operation_id=(await sdk(client.delete_instance, id=instance_id))["id"])

    async def gone() -> bool:
        try:
            await sdk(client.get_instance, id=instance_id)
        except ExoscaleAPIClientException as exc:
            return bool(exc.response.status_code == 404)
        return False

    await until(gone, "instance gone")
    assert await vm_refuses(ip, tls)
    assert (await sdk(client.list_instances))["instances"] == []


async def _serves(ip: str, tls: TLSMaterial) -> bool:
    try:
        return (await vm_get(ip, tls, path="/"))[0] == 200
    except aiohttp.ClientConnectorError:
        return False


async def test_vm_streams_generate_as_ndjson(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]
    await until(lambda: _serves(ip, tls), "VM serving")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"https://{ip}:{VM_PORT}/api/generate",
            json={"model": MODELS[0], "prompt": "hi"},
            headers={API_KEY_HEADER: VM_KEY},
            ssl=tls.client_context(),
            server_hostname=VM_TLS_SERVER_NAME,
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in resp.content if line.strip()]
    assert len(lines) >= 2 and lines[-1]["done"] is True
    assert all(line["model"] == MODELS[0] for line in lines)


async def test_user_data_from_the_cloud_init_renderer_sets_up_the_vm(
    sim: ExoscaleSimulator, client: Client
) -> None:
    """The contract with cloud/cloudinit.py: its files are exactly what the VM reads; the VM
    requires the client certificate of its CA (mutual TLS); a user-data replaced after the first
    boot (update-instance, as the operator scrubs the key) is recorded and changes nothing on the VM."""
    from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
    from remote_ollama.vm.pki import client_ssl_context, generate_vm_credentials

    creds = generate_vm_credentials()
    instance_id = await create_instance(client, encode_user_data(render_user_data(creds, ["qwen2.5:0.5b"])))
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]

    async def tags(ctx: ssl.SSLContext | None = None) -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.get(
                f"https://{ip}:{VM_PORT}/api/tags",
                ssl=ctx or creds.client_context(),
                server_hostname=VM_TLS_SERVER_NAME,
            ) as resp,
        ):
            return resp.status, await resp.read()

    async def up() -> bool:
        try:
            return (await tags())[0] == 200
        except aiohttp.ClientConnectorError:
            return False

    await until(up, "VM serving")
    assert b"qwen2.5:0.5b" in (await tags())[1]
    # no certificate: nginx's 400 page (as Debian's nginx answers it, tests/test_real_vm.py)
    status, page = await tags(client_ssl_context(creds.ca_pem))
    assert status == 400 and b"<title>400 No required SSL certificate was sent</title>" in page
    other = generate_vm_credentials()
    with pytest.raises(aiohttp.ClientError):  # another CA's: refused (nginx: a 400 page; here: the handshake)
        await tags(client_ssl_context(creds.ca_pem, other.client_cert_pem, other.client_key_pem))

    scrubbed = encode_user_data(render_user_data(creds, ["qwen2.5:0.5b"], scrubbed=True))
    await sdk(client.update_instance, id=instance_id, user_data=scrubbed)
    inst = sim.state.instances[instance_id]
    assert inst.user_data == scrubbed and len(inst.replaced_user_data) == 1
    assert b"PRIVATE KEY" not in base64.b64decode(
        (await sdk(client.get_instance, id=instance_id))["user-data"]
    )
    await sdk(client.stop_instance, id=instance_id)
    await instance_state(client, instance_id, "stopped")
    await sdk(client.start_instance, id=instance_id)
    await instance_state(client, instance_id, "running")
    await until(up, "VM serving again from the files of its first boot")


async def test_vm_without_usable_user_data_runs_but_serves_nothing(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    bad = base64.b64encode(b"#!/bin/sh\necho not cloud-config\n").decode()
    instance_id = await create_instance(client, bad)
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]
    await sim.wait_for(
        lambda: (vm := sim.vm(instance_id)) is not None and vm.problem is not None, what="boot"
    )
    assert await vm_refuses(ip, tls)
    vm = sim.vm(instance_id)
    assert vm is not None and "cloud-config" in str(vm.problem)


async def test_create_validation(client: Client) -> None:
    type_id, template_id = await lookup_ids(client)
    base: dict[str, Any] = {
        "instance_type": {"id": type_id},
        "template": {"id": template_id},
        "disk_size": 50,
    }
    cases: list[tuple[dict[str, Any], int]] = [
        ({"name": "bad_name"}, 400),
        ({"name": "ok", "user_data": "A" * 32772}, 400),
        ({"name": "ok", "instance_type": {"id": "00000000-0000-0000-0000-000000000000"}}, 404),
        ({"name": "ok", "template": {"id": "00000000-0000-0000-0000-000000000000"}}, 404),
        ({"name": "ok", "disk_size": 5}, 400),
    ]
    for change, status in cases:
        with pytest.raises(ExoscaleAPIClientException) as err:
            await sdk(client.create_instance, **{**base, **change})
        assert err.value.response.status_code == status, change
        assert err.value.response.json()["message"]
    assert (await sdk(client.list_instances))["instances"] == []


async def test_quota_counts_gpus_and_refuses_beyond_the_limit(sim: ExoscaleSimulator, client: Client) -> None:
    sim.set_quota("gpua5000", 1)
    await create_instance(client)
    quota = await sdk(client.get_quota, entity="gpua5000")
    assert quota == {"resource": "gpua5000", "usage": 1, "limit": 1}
    with pytest.raises(ExoscaleAPIException) as err:
        await create_instance(client)
    assert "Quota exceeded" in err.value.response.json()["message"]

    sim.exceed_quota("gpu3080ti")
    assert (await sdk(client.get_quota, entity="gpu3080ti"))["limit"] == 0
    with pytest.raises(ExoscaleAPIException):
        await create_instance(client, type_name="gpu3080ti.small")
    entities = {q["resource"] for q in (await sdk(client.list_quotas))["quotas"]}
    assert {"gpua5000", "gpu3080ti", "instance"} <= entities


async def test_unauthorized_instance_type_is_refused(sim: ExoscaleSimulator, client: Client) -> None:
    sim.set_authorized("gpua5000", False)
    types = (await sdk(client.list_instance_types))["instance-types"]
    assert not next(t for t in types if t["family"] == "gpua5000")["authorized"]
    with pytest.raises(ExoscaleAPIAuthException):
        await create_instance(client)


# -- fault injection -------------------------------------------------------------------------------


async def test_injected_server_errors_and_rate_limits(sim: ExoscaleSimulator, client: Client) -> None:
    sim.fail_next(2, 503, operation="list-instances")
    for _ in range(2):
        with pytest.raises(ExoscaleAPIServerException):
            await sdk(client.list_instances)
    assert (await sdk(client.list_instances))["instances"] == []
    sim.fail_next(1, 429, path_prefix="/v2/instance-type")
    with pytest.raises(ExoscaleAPIClientException) as err:
        await sdk(client.list_instance_types)
    assert err.value.response.status_code == 429
    assert sim.call_count("list-instances") == 3 and sim.call_count("list-instance-types") == 1


async def test_capacity_failure_on_start_fails_the_operation(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    await sdk(client.wait, operation_id=(await sdk(client.stop_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "stopped")

    sim.fail_capacity(1, on=("start",))
    op = await sdk(client.start_instance, id=instance_id)
    with pytest.raises(ExoscaleAPIServerException, match="unavailable"):
        await sdk(client.wait, operation_id=op["id"])
    failed = await sdk(client.get_operation, id=op["id"])
    assert (
        failed["state"] == "failure" and failed["reason"] == "unavailable" and "capacity" in failed["message"]
    )
    await instance_state(client, instance_id, "stopped")

    await sdk(client.wait, operation_id=(await sdk(client.start_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "running")


async def test_capacity_failure_on_create_leaves_no_instance(sim: ExoscaleSimulator, client: Client) -> None:
    sim.fail_capacity(1, on=("create",))
    with pytest.raises(ExoscaleAPIServerException, match="unavailable"):
        await create_instance(client)

    async def none_left() -> bool:
        return not (await sdk(client.list_instances))["instances"]

    await until(none_left, "failed instance removed")


async def test_vanished_instance_is_gone_and_its_vm_silent(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]
    await until(lambda: _serves(ip, tls), "VM serving")

    sim.vanish(instance_id)
    with pytest.raises(ExoscaleAPIClientException) as err:
        await sdk(client.get_instance, id=instance_id)
    assert err.value.response.status_code == 404
    assert (await sdk(client.list_instances, labels="managed-by=remote-ollama"))["instances"] == []
    await until(lambda: vm_refuses(ip, tls), "VM down")


async def test_slow_operations_stay_pending(sim: ExoscaleSimulator, client: Client) -> None:
    sim.slow_operations(0.5)
    op = await sdk(client.create_security_group, name="slow")
    assert (await sdk(client.get_operation, id=op["id"]))["state"] == "pending"
    with pytest.raises(ExoscaleAPIClientException, match="max wait"):
        await sdk(client.wait, operation_id=op["id"], max_wait_time=0)
    assert (await sdk(client.wait, operation_id=op["id"]))["state"] == "success"


async def test_unreachable_api_refuses_connections_until_restored(
    sim: ExoscaleSimulator, client: Client
) -> None:
    await sdk(client.list_instances)
    await sim.go_offline()
    with pytest.raises(requests.ConnectionError):
        await sdk(client.list_instances)
    await sim.go_online()
    assert (await sdk(client.list_instances))["instances"] == []


async def test_list_instances_label_filter(client: Client) -> None:
    instance_id = await create_instance(client)
    found = await sdk(client.list_instances, labels="remote-ollama-owner=uid-1")
    assert [i["id"] for i in found["instances"]] == [instance_id]
    assert "user-data" not in found["instances"][0]
    assert (await sdk(client.list_instances, labels="remote-ollama-owner=other"))["instances"] == []
    # The SDK turns a dict into repeated `labels=<key>`: matched as "has this label".
    assert len((await sdk(client.list_instances, labels={"managed-by": "x"}))["instances"]) == 1


# -- the thread runner for synchronous callers -----------------------------------------------------


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(keys={KEY: SECRET}, timings=FAST, vms=False) as thread:
        yield thread


def test_simulator_thread_serves_synchronous_clients(sim_thread: SimulatorThread) -> None:
    client = Client(KEY, SECRET, zone="at-vie-2", url=sim_thread.sim.zone_url())
    types = client.list_instance_types()["instance-types"]
    templates = client.list_templates(visibility="public")["templates"]
    op = client.create_instance(
        name="sync-vm",
        instance_type={"id": next(t["id"] for t in types if t["family"] == "gpua5000")},
        template={"id": templates[0]["id"]},
        disk_size=50,
    )
    instance_id = client.wait(op["id"])["reference"]["id"]
    sim_thread.run(sim_thread.sim.wait_instance_state(instance_id, "running"))
    sim_thread.sim.vanish(instance_id)
    with pytest.raises(ExoscaleAPIClientException):
        client.get_instance(id=instance_id)
    sim_thread.offline()
    with pytest.raises(requests.ConnectionError):
        client.list_instances()
    sim_thread.online()
    assert client.list_instances() == {"instances": []}


async def test_reboot_takes_the_vm_down_and_back(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]
    await until(lambda: _serves(ip, tls), "VM serving")
    with pytest.raises(ExoscaleAPIClientException):
        await sdk(client.start_instance, id=instance_id)  # already running
    machine_before = sim.vm(instance_id)
    await sdk(client.wait, operation_id=(await sdk(client.reboot_instance, id=instance_id))["id"])
    await sim.wait_for(lambda: sim.vm(instance_id) not in (None, machine_before), what="a fresh boot")
    await until(lambda: _serves(ip, tls), "VM serving after reboot")
    assert await vm_models(ip, tls) == sorted(MODELS)


async def test_fallback_ollama_when_the_full_simulation_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """vm.py keeps working without sandbox/ollama.py: a minimal Ollama answers the basics."""
    import sys

    from aiohttp.test_utils import TestClient, TestServer

    from remote_ollama.sandbox.vm import make_vm_ollama_app

    monkeypatch.setitem(
        sys.modules, "remote_ollama.sandbox.ollama.server", None
    )  # import now raises ImportError
    app = make_vm_ollama_app(["m:1"], token_delay=0.0, pull_delay=0.0)
    async with TestClient(TestServer(app)) as http:
        assert await (await http.get("/")).text() == "Ollama is running"
        assert (await (await http.get("/api/tags")).json())["models"][0]["name"] == "m:1"
        resp = await http.post("/api/generate", json={"model": "m:1", "prompt": "x"})
        lines = [json.loads(line) for line in (await resp.text()).splitlines()]
        assert lines[-1]["done"] is True
        assert (await http.post("/api/generate", json={"model": "nope", "prompt": "x"})).status == 404


# -- instance transitions (the API's description is silent on them: tests/test_exoscale_openapi.py) --


async def test_instance_transitions_the_simulator_allows_and_refuses(client: Client) -> None:
    """Start needs a stopped instance, stop and reboot a running one (400 otherwise); delete is
    accepted in any state, also while the instance is still starting."""
    instance_id = await create_instance(client)
    await instance_state(client, instance_id, "running")
    with pytest.raises(ExoscaleAPIClientException, match="is running: cannot start"):
        await sdk(client.start_instance, id=instance_id)
    await sdk(client.wait, operation_id=(await sdk(client.stop_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "stopped")
    for verb in (client.stop_instance, client.reboot_instance):
        with pytest.raises(ExoscaleAPIClientException, match="is stopped: cannot"):
            await sdk(verb, id=instance_id)
    await sdk(client.start_instance, id=instance_id)
    assert (await sdk(client.get_instance, id=instance_id))["state"] == "starting"
    await sdk(client.wait, operation_id=(await sdk(client.delete_instance, id=instance_id))["id"])
    await until(lambda: _gone(client, instance_id), "instance gone")
    with pytest.raises(ExoscaleAPIClientException, match="not found"):
        await sdk(client.get_instance, id=instance_id)


async def _gone(client: Client, instance_id: str) -> bool:
    ids = [i["id"] for i in (await sdk(client.list_instances))["instances"]]
    return instance_id not in ids
