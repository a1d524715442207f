"""`python -m remote_ollama.proxy` dials its upstream as the product does (issue 19): with the one
client context the product builds, so an upstream offering less than TLS 1.3 is refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
from proxy_process import proxy_process, tls_upstream
from proxy_world import MODELS, pki

from remote_ollama.sandbox.ollama.server import make_ollama_app

GENERATE = {"model": MODELS[0], "prompt": "hi", "stream": False}


async def test_an_upstream_below_tls_1_3_is_refused(tmp_path: Path) -> None:
    downgraded = pki().server_context()  # the VM's certificate and client check, at TLS 1.2
    downgraded.minimum_version = downgraded.maximum_version = ssl.TLSVersion.TLSv1_2
    async with (
        tls_upstream(make_ollama_app(MODELS), context=downgraded) as up,
        proxy_process(up.url, tmp_path) as proxy,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        http.post(f"{proxy.url}/api/generate", json=GENERATE) as r,
    ):
        body = await r.json()
    assert r.status == 502 and "error" in body, (r.status, body)
