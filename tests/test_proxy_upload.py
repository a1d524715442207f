"""A 2 GiB blob upload streams through the proxy (its own process) without growing its memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from proxy_world import API_KEY, pki, world

from remote_ollama.resource import VM_TLS_SERVER_NAME

SIZE = 2 * 1024**3
BLOCK = os.urandom(1024 * 1024)


def rss_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match
    return int(match.group(1))


async def start_proxy_process(upstream_url: str, ca: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remote_ollama.proxy",
        "--upstream",
        upstream_url,
        "--ca",
        str(ca),
        "--server-name",
        VM_TLS_SERVER_NAME,
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "REMOTE_OLLAMA_UPSTREAM_KEY": API_KEY},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    return proc, "http://" + line.decode().split()[-1]


async def test_two_gib_upload_keeps_proxy_rss_flat(tmp_path: Path) -> None:
    digest = hashlib.sha256()
    for _ in range(SIZE // len(BLOCK)):
        digest.update(BLOCK)
    name = "sha256:" + digest.hexdigest()
    ca = tmp_path / "ca.crt"
    ca.write_bytes(pki().ca_pem)
    async with world() as w:
        proc, url = await start_proxy_process(w.upstream_url, ca)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/api/version") as r:  # warm: session, TLS, pool
                    assert r.status == 200
                before = rss_kib(proc.pid, "VmRSS")

                async def body() -> AsyncIterator[bytes]:
                    for _ in range(SIZE // len(BLOCK)):
                        yield BLOCK

                headers = {"Content-Length": str(SIZE)}
                async with http.post(f"{url}/api/blobs/{name}", data=body(), headers=headers) as r:
                    assert r.status == 201, await r.text()
            peak = rss_kib(proc.pid, "VmHWM")
            assert w.state.blobs[name] == SIZE
            print(f"proxy RSS growth during a 2 GiB upload: {(peak - before) / 1024:.1f} MiB")
            assert (peak - before) * 1024 < 64 * 1024**2, f"proxy RSS grew {(peak - before) / 1024:.1f} MiB"
        finally:
            proc.terminate()
            await proc.wait()
