"""The operator end to end on a real VM's software: kubectl apply -> the operator creates the
instance (simulated Exoscale API) -> Debian's nginx with the user-data's config and certificates in
front of the real Ollama 0.17.4 -> Ready (models present, warmed up, as the real /api/ps says) ->
the proxy from the Deployment serves the official client and answers the differential requests as
the real Ollama does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import ollama
import pytest
from cluster.fixtures import KubeNamespace
from ollama_real.cases import CASES
from ollama_real.compare import cors_differences, fetch
from ollama_real.real_vm import RealVMFleet
from ollama_real.server import TINY, RealOllama
from operator_world import credentials_secret, operator_world, remote_ollama


async def _differential(direct: str, proxy: str) -> list[str]:
    """The differential requests (ollama_real/cases.py), straight and through the
    operator's proxy, the VM's nginx and mutual TLS between."""
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as http:
        for name, method, path, body, headers in CASES:
            raw = body if isinstance(body, bytes) else None
            json_body = None if raw is not None else body
            want = await fetch(http, method, direct + path, json_body, raw=raw, headers=headers)
            got = await fetch(http, method, proxy + path, json_body, raw=raw, headers=headers)
            if got != want or cors_differences(want, got):
                out.append(f"{name}: direct {want}, through the operator's proxy {got}")
    return out


def test_apply_ready_serve_on_the_real_nginx_and_ollama(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch, real_ollama: RealOllama, tmp_path: Path
) -> None:
    fleet = RealVMFleet(tmp_path, real_ollama.port)
    try:
        with operator_world(kube, monkeypatch, machines=fleet) as world:
            world.apply(credentials_secret())
            world.apply(remote_ollama(models=[TINY], idle={"stopAfter": "10m"}))
            obj = world.wait_phase("Ready", timeout=60)
            conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
            assert conds["OllamaReady"] == conds["ModelsReady"] == "True", conds
            proxy = world.start_proxy()
            client = ollama.Client(host=proxy)
            assert client.ps().models[0].model == TINY
            reply = client.chat(
                model=TINY, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3}
            )
            assert reply.done and reply.message.role == "assistant" and reply.eval_count == 3
            assert [vm.instance.id for vm in fleet.vms.values()] == [i.id for i in world.instances()]
            differences = asyncio.run(_differential(real_ollama.url, proxy))
            assert differences == [], "\n".join(differences)
    finally:
        fleet.close()
