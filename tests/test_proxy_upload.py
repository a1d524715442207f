"""A 2 GiB blob upload streams through the proxy (its own process) without growing its memory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from proxy_process import proxy_process
from proxy_world import world

SIZE = 2 * 1024**3
BLOCK = os.urandom(1024 * 1024)


async def test_two_gib_upload_keeps_proxy_rss_flat(tmp_path: Path) -> None:
    digest = hashlib.sha256()
    for _ in range(SIZE // len(BLOCK)):
        digest.update(BLOCK)
    name = "sha256:" + digest.hexdigest()
    async with world() as w, proxy_process(w.upstream_url, tmp_path) as proxy:
        url = proxy.url
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/version") as r:  # warm: session, TLS, pool
                assert r.status == 200
            before = proxy.status_kib("VmRSS")

            async def body() -> AsyncIterator[bytes]:
                for _ in range(SIZE // len(BLOCK)):
                    yield BLOCK

            headers = {"Content-Length": str(SIZE)}
            async with http.post(f"{url}/api/blobs/{name}", data=body(), headers=headers) as r:
                assert r.status == 201, await r.text()
        peak = proxy.status_kib("VmHWM")
        assert w.state.blobs[name] == SIZE
        print(f"proxy RSS growth during a 2 GiB upload: {(peak - before) / 1024:.1f} MiB")
        assert (peak - before) * 1024 < 64 * 1024**2, f"proxy RSS grew {(peak - before) / 1024:.1f} MiB"
