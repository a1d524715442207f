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
from typing import Any

import aiohttp
import pytest
import requests
from exoscale.api.exceptions import (
    ExoscaleAPIAuthException,
    ExoscaleAPIClientException,
)
from exoscale.api.v2 import Client
from exoscale_auth import ExoscaleV2Auth
from sim_api_world import (
    KEY,
    MODELS,
    SECRET,
    VM_KEY,
    TLSMaterial,
    create_instance,
    instance_state,
    lookup_ids,
    sdk,
    serves,
    serving_vm,
    until,
    vm_get,
    vm_models,
    vm_refuses,
)

from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.pki import generate_vm_credentials


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
        req.prepare_url(
            f"{sim.zone_url()}/template", {"visibility": "private"}
        )  # signed value no longer matches
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

    await until(lambda: serves(ip, tls), "VM serving")
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
    await until(lambda: serves(ip, tls), "VM serving after start")
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


async def test_vm_streams_generate_as_ndjson(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    _, ip = await serving_vm(client, tls)
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
    """The contract with vm/cloudinit.py: its files are exactly what the VM reads, and the VM makes
    its own key at first boot (the user-data holds none), whose certificate the first contact
    pins; the VM requires the client certificate of its CA (mutual TLS); a user-data replaced
    after the first boot (update-instance) is recorded and changes nothing on the VM, whose key
    stays on its disk across a stop and start."""
    from remote_ollama.engine.credentials import first_contact
    from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
    from remote_ollama.vm.pki import client_ssl_context, pem_of

    creds = generate_vm_credentials()
    user_data = encode_user_data(render_user_data(creds, ["qwen2.5:0.5b"]))
    assert b"PRIVATE KEY" not in base64.b64decode(user_data)
    instance_id = await create_instance(client, user_data)
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]

    async def contacted() -> bool:
        return await first_contact(ip, creds) is not None

    await until(contacted, "the VM's TLS front")
    der = await first_contact(ip, creds)
    assert der is not None
    creds = creds.pinned_to(pem_of(der))

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
    status, page = await tags(client_ssl_context(creds.cert_pem))
    assert status == 400 and b"<title>400 No required SSL certificate was sent</title>" in page
    other = generate_vm_credentials()
    with pytest.raises(aiohttp.ClientError):  # another CA's: refused (nginx: a 400 page; here: the handshake)
        await tags(client_ssl_context(creds.cert_pem, other.client_cert_pem, other.client_key_pem))

    replaced = encode_user_data(render_user_data(other, ["qwen2.5:0.5b"]))
    await sdk(client.update_instance, id=instance_id, user_data=replaced)
    inst = sim.state.instances[instance_id]
    assert inst.user_data == replaced and len(inst.replaced_user_data) == 1
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
