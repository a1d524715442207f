"""The Exoscale simulator's test world for tests/simulator/: keys, fast timings, the VMs' TLS
material and the SDK helpers (fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import yaml
from exoscale.api.v2 import Client
from waiting import LIFECYCLE, deadline

from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME
from remote_ollama.vm.pki import make_vm_identity

KEY, SECRET = "EXOtestkey", "test-secret"
VM_KEY = "vm-api-key-0123456789"
MODELS = ["granite3.1-dense:8b", "llama3.2:1b"]
FAST = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.02)


class TLSMaterial:
    """A server certificate and key for VM_TLS_SERVER_NAME in user-data, as a VM of the contract
    before mutual TLS and enrolment had them (API key only): the simulator still boots such a VM."""

    def __init__(self) -> None:
        self.cert_pem, self.key_pem = make_vm_identity()

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.cert_pem)
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


async def sdk(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """The SDK is synchronous: run it off the loop that serves the simulator."""
    return await asyncio.to_thread(fn, **kwargs)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = LIFECYCLE) -> None:
    """`waiting.until` for an async check (the SDK's calls, a VM's answer)."""
    end = time.monotonic() + deadline(timeout)
    while not await check():
        if time.monotonic() > end:
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


async def serves(ip: str, tls: TLSMaterial) -> bool:
    try:
        return (await vm_get(ip, tls, path="/"))[0] == 200
    except aiohttp.ClientConnectorError:
        return False


async def serving_vm(client: Client, tls: TLSMaterial) -> tuple[str, str]:
    """A new instance with `tls`'s user-data, running and its VM serving: (instance id, public IP)."""
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    ip = (await sdk(client.get_instance, id=instance_id))["public-ip"]
    await until(lambda: serves(ip, tls), "VM serving")
    return instance_id, ip
