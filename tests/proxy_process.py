"""The proxy in its own process (`python -m remote_ollama.proxy`) in front of an in-process TLS
upstream, so its memory can be measured and the test's own load does not share its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from proxy_world import API_KEY, key_check, pki

from remote_ollama.spec.names import VM_TLS_SERVER_NAME


@dataclass
class Served:
    url: str
    runner: web.AppRunner
    port: int

    def cut_connections(self) -> int:
        """Kill every open connection at once (the VM's nginx dies mid-stream); returns how many."""
        server = self.runner.server
        conns = list(server.connections) if server is not None else []
        for conn in conns:
            if conn.transport is not None:
                conn.transport.abort()
        return len(conns)


@contextlib.asynccontextmanager
async def tls_upstream(
    app: web.Application, port: int = 0, context: ssl.SSLContext | None = None
) -> AsyncIterator[Served]:
    """`app` behind mutual TLS with the test CA and the VM's key check, as the VM's nginx serves it
    (or as `context` does)."""
    app.middlewares.insert(0, key_check(API_KEY))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context or pki().server_context())
    await site.start()
    bound = int(runner.addresses[0][1])
    try:
        yield Served(f"https://127.0.0.1:{bound}", runner, bound)
    finally:
        await runner.cleanup()


@dataclass
class ProxyProcess:
    url: str
    proc: asyncio.subprocess.Process

    def status_kib(self, field: str) -> int:
        """A memory figure of the process from /proc (VmRSS now, VmHWM peak), in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field}")

    def rss_mib(self) -> float:
        return self.status_kib("VmRSS") / 1024

    async def metric(self, http: aiohttp.ClientSession, name: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples whose labels include `labels`."""
        async with http.get(f"{self.url}/metrics") as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total


@contextlib.asynccontextmanager
async def proxy_process(upstream_url: str, tmp_path: Path, *args: str) -> AsyncIterator[ProxyProcess]:
    ca, client_cert, client_key = pki().write_client_files(tmp_path)
    env = {**os.environ, "REMOTE_OLLAMA_UPSTREAM_KEY": API_KEY}
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
        "--client-cert",
        str(client_cert),
        "--client-key",
        str(client_key),
        "--port",
        "0",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("listening on"), line
        port = int(line.rsplit(":", 1)[1])
        drain = asyncio.create_task(_drain(proc.stdout))
        yield ProxyProcess(f"http://127.0.0.1:{port}", proc)
        assert proc.returncode is None, "the proxy process died"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        with contextlib.suppress(NameError):
            drain.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
