"""The Exoscale adapter's test world: the test's account, instance and VM credentials, and what
the lifecycle would do with them (provision, reach the VM over pinned TLS)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from waiting import LIFECYCLE, deadline

from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud, owner_labels
from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.engine.credentials import first_contact
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.names import API_KEY_HEADER, VM_PORT, VM_TLS_SERVER_NAME, security_group_name
from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
from remote_ollama.vm.pki import VMCredentials, client_ssl_context, pem_of

KEY, SECRET = "EXOkey0123456789abcdef", "exoscale-secret-that-must-never-leak"
ZONE = "at-vie-2"
TEMPLATE = "Linux Ubuntu 22.04 LTS 64-bit"
GPU_TYPE = "gpua5000.small"
MODELS = ["granite3.1-dense:8b"]
SG_NAME = security_group_name("ai", "granite")
OWNER, CLUSTER = "3f1c6a55-0000-4000-8000-000000000001", "cluster-uid-1"
FAST = SimTimings(boot=0.15, stop=0.1, destroy=0.1, operation=0.03)


class SleepLog:
    """Injected `sleep`: records each delay and sleeps a capped real amount so the simulator moves on."""

    def __init__(self, cap: float = 0.05):
        self.delays: list[float] = []
        self.cap = cap

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(min(seconds, self.cap))


def make_cloud(url: str, *, key: str = KEY, secret: str = SECRET, **kw: Any) -> ExoscaleCloud:
    kw.setdefault("poll_interval", 0.03)
    kw.setdefault("backoff_base", 0.01)
    return ExoscaleCloud(key, secret, ZONE, endpoint=url, **kw)


def user_data(creds: VMCredentials) -> str:
    return encode_user_data(render_user_data(creds, MODELS))


def instance_args(creds: VMCredentials, sg_id: str) -> tuple[Any, ...]:
    """`create_instance`'s arguments for the test's instance (name, type, template, disk, ...)."""
    return ("granite-ai", GPU_TYPE, TEMPLATE, 50, user_data(creds), sg_id, owner_labels(OWNER, CLUSTER))


async def provision(cloud: AsyncExoscaleCloud, creds: VMCredentials) -> ObservedInstance:
    """What the lifecycle's create actions amount to: security group, then the instance."""
    sg_id = await cloud.ensure_security_group(SG_NAME, ["0.0.0.0/0"])
    return await cloud.create_instance(*instance_args(creds, sg_id), deadline=deadline(20))


async def ollama_get(
    ip: str, path: str, api_key: str | None, creds: VMCredentials, *, client_cert: bool = True
) -> tuple[int, Any]:
    headers = {API_KEY_HEADER: api_key} if api_key else {}
    der = await first_contact(ip, creds)  # the certificate the VM made (the operator pins it)
    if der is None:
        raise aiohttp.ClientConnectionError(f"nothing answers TLS on {ip}")
    trusted = creds.pinned_to(pem_of(der))
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"https://{ip}:{VM_PORT}{path}",
            headers=headers,
            ssl=trusted.client_context() if client_cert else client_ssl_context(trusted.cert_pem),
            server_hostname=VM_TLS_SERVER_NAME,
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def wait_reachable(ip: str, creds: VMCredentials) -> dict[str, Any]:
    """The VM's /api/version once it answers over TLS (pinned at first contact)."""
    end = time.monotonic() + deadline(LIFECYCLE)
    while True:
        try:
            status, body = await ollama_get(ip, "/api/version", creds.api_key, creds)
            if status == 200:
                assert isinstance(body, dict)
                return body
        except aiohttp.ClientConnectionError:
            pass
        assert time.monotonic() < end, f"VM {ip} did not answer over TLS"
        await asyncio.sleep(0.05)
