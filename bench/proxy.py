"""Bench: the proxy's cost, against a direct connection, the floor of its own library (a minimal
aiohttp pass-through on the same event loop, nothing else) and nginx (`proxy_buffering off`).

All reach the same simulated Ollama (its own process on loopback, so only the hop itself is
measured): plain HTTP, or with `--tls` behind mutual TLS as the VM's nginx serves it (TLS 1.3, a
client certificate required), which every hop then presents (the direct client too). Prints added
time-to-first-byte p50/p99, streamed tokens/s at 1, 16 and 64 concurrent streams (the median of
`--rounds` runs, the hops taking turns), and CPU seconds per 1000 requests of each hop, then the
ratios; the goal is the proxy's added TTFB at most 1.15x the floor's and at most 1 ms p50, with
>= 0.95 of direct throughput at 64.

    python bench/proxy.py [--tls] [--token-delay 0.01] [--tokens 200] [--requests 1000]

`--baseline DIR` adds a hop "baseline": the proxy as the source tree DIR has it (e.g. `git archive
main | tar -x -C DIR`), measured in the same run, so a change's effect is not lost in the noise of
a busy machine.

With `--real-ollama` the upstream is the real Ollama 0.17.4 (tests/ollama_real, built once per
machine) serving the tiny random-weight model, and the figure is the added time to the first token
of a streamed /api/generate (one token per request) through each hop.

    python bench/proxy.py --real-ollama [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

MODEL = "granite3.1-dense:8b"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the real Ollama's recipe
from ollama_real.server import TINY, VERSION, RealOllama, build_ollama  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
STREAMS = (1, 16, 64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TLSFiles:
    """The VM's side (its certificate and key, the client CA) and the client's (the pinned VM
    certificate, the client certificate and key), as files: every hop reads them."""

    vm_cert: Path
    vm_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, folder: Path) -> TLSFiles:
        from remote_ollama.vm.pki import generate_vm_credentials, make_vm_identity

        cert, key = make_vm_identity()
        creds = generate_vm_credentials().pinned_to(cert)
        texts = (cert, key, creds.ca_pem, creds.client_cert_pem, creds.client_key_pem)
        names = ("vm.crt", "vm.key", "ca.crt", "client.crt", "client.key")
        for name, text in zip(names, texts, strict=True):
            (folder / name).write_text(text)
        return cls(*(folder / name for name in names))

    def client_context(self) -> ssl.SSLContext:
        from remote_ollama.vm.pki import client_ssl_context

        key = self.client_key.read_text()
        return client_ssl_context(self.vm_cert.read_text(), self.client_cert.read_text(), key)

    def client_args(self) -> list[str]:
        """The proxy's command line: trust the VM's certificate, present the client's."""
        from remote_ollama.spec.names import VM_TLS_SERVER_NAME

        return [
            "--ca",
            str(self.vm_cert),
            "--client-cert",
            str(self.client_cert),
            "--client-key",
            str(self.client_key),
            "--server-name",
            VM_TLS_SERVER_NAME,
        ]


def tls_files(folder: str | None) -> TLSFiles | None:
    return (
        TLSFiles(*(Path(folder) / n for n in ("vm.crt", "vm.key", "ca.crt", "client.crt", "client.key")))
        if folder
        else None
    )


def serve_upstream(port: int, token_delay: float, tokens: int, tls: TLSFiles | None) -> None:
    """The simulated Ollama, in this (sub)process; with `tls`, behind mutual TLS as on the VM."""
    from remote_ollama.sandbox.ollama.server import make_ollama_app, ollama_state
    from remote_ollama.vm.pki import server_ssl_context

    app = make_ollama_app([MODEL], token_delay=token_delay)
    ollama_state(app).reply_length = tokens
    context = None
    if tls is not None:
        context = server_ssl_context(
            tls.vm_cert.read_text(), tls.vm_key.read_text(), tls.client_ca.read_text()
        )
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, ssl_context=context)


def floor_app(
    upstream: str, context: ssl.SSLContext | None = None, name: str | None = None
) -> web.Application:
    """The floor: aiohttp's least pass-through (one session, stream the body back)."""
    hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def pass_through(request: web.Request) -> web.StreamResponse:
        session = request.app[session_key]
        body = await request.read()
        url = upstream + request.rel_url.path_qs
        async with session.request(
            request.method, url, data=body, ssl=context or True, server_hostname=name
        ) as up:
            response = web.StreamResponse(
                status=up.status, headers={k: v for k, v in up.headers.items() if k.lower() not in hop}
            )
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[session_key] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[session_key].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", pass_through)
    return app


def serve_floor(port: int, upstream_port: int, tls: TLSFiles | None) -> None:
    """The floor, on uvloop as the product, so the proxy's own work is what the difference measures."""
    from remote_ollama.proxy.runloop import run
    from remote_ollama.spec.names import VM_TLS_SERVER_NAME

    upstream = f"{'https' if tls else 'http'}://127.0.0.1:{upstream_port}"
    app = floor_app(upstream, tls.client_context() if tls else None, VM_TLS_SERVER_NAME if tls else None)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    run(main())


def connector(limit: int, tls: TLSFiles | None) -> aiohttp.TCPConnector:
    """A client's connections; with `tls`, as a proxy's to the VM (for the direct hop)."""
    return aiohttp.TCPConnector(limit=limit, ssl=tls.client_context() if tls else True)


def url_kwargs(url: str) -> dict[str, object]:
    from remote_ollama.spec.names import VM_TLS_SERVER_NAME

    return {"server_hostname": VM_TLS_SERVER_NAME} if url.startswith("https:") else {}


async def wait_listening(url: str, timeout: float = 20, tls: TLSFiles | None = None) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(connector=connector(0, tls)) as http:
        while True:
            try:
                async with http.get(f"{url}/api/version", **url_kwargs(url)) as r:  # type: ignore[arg-type]
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up")
            await asyncio.sleep(0.05)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def nginx_conf(tmp: Path, listen: int, upstream: int, tls: TLSFiles | None) -> Path:
    from remote_ollama.spec.names import VM_TLS_SERVER_NAME

    conf = tmp / "nginx.conf"
    scheme = "https" if tls else "http"
    mtls = (
        f"proxy_ssl_certificate {tls.client_cert}; proxy_ssl_certificate_key {tls.client_key};"
        f" proxy_ssl_trusted_certificate {tls.vm_cert}; proxy_ssl_verify on;"
        f" proxy_ssl_name {VM_TLS_SERVER_NAME}; proxy_ssl_server_name on; proxy_ssl_protocols TLSv1.3;"
        " proxy_ssl_session_reuse on;"
        if tls
        else ""
    )
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream ollama {{ server 127.0.0.1:{upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{listen};
    client_max_body_size 0;
    location / {{
      proxy_pass {scheme}://ollama;
      {mtls}
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:{upstream};  # the real Ollama refuses other Hosts (as the VM's nginx sets it)
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
""")
    return conf


@dataclass
class Figures:
    ttfb_p50: float
    ttfb_p99: float
    tokens_per_s: dict[int, float]
    cpu_per_1000: float | None


def probe(real: bool) -> tuple[str, dict[str, object]]:
    """The request whose first byte is timed: the real Ollama's first token, or (simulated) a
    route with no simulated delay, so only the hop is measured."""
    if real:
        return "/api/generate", {"model": TINY, "prompt": "hello", "options": {"num_predict": 1, "seed": 1}}
    return "/api/show", {"model": MODEL}


async def ttfb(
    urls: dict[str, str], n: int, real: bool = False, tls: TLSFiles | None = None
) -> dict[str, list[float]]:
    """Sequential requests on a kept-alive connection per hop: time to the first body byte.

    The hops take turns, request by request, so a noisy neighbour on the machine slows them alike
    and the ratios between them stay meaningful."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: aiohttp.ClientSession(connector=connector(1, tls)) for name in urls}
    path, body = probe(real)
    try:
        for i in range(n + 20):
            for name, url in urls.items():
                start = time.perf_counter()
                async with sessions[name].post(f"{url}{path}", json=body, **url_kwargs(url)) as r:  # type: ignore[arg-type]
                    await r.content.readany()
                    first = time.perf_counter() - start
                    await r.read()
                if i >= 20:  # warm-up
                    samples[name].append(first)
    finally:
        for session in sessions.values():
            await session.close()
    return samples


async def tokens_per_second(url: str, streams: int, tls: TLSFiles | None) -> float:
    async with aiohttp.ClientSession(connector=connector(0, tls)) as http:

        async def one() -> int:
            lines = 0
            body = {"model": MODEL, "prompt": "bench"}
            async with http.post(f"{url}/api/generate", json=body, **url_kwargs(url)) as r:  # type: ignore[arg-type]
                async for chunk in r.content.iter_any():
                    lines += chunk.count(b"\n")
            return lines - 1  # the final line carries no token

        start = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(streams)))
        return sum(counts) / (time.perf_counter() - start)


async def requests_cpu(url: str, pids: list[int], n: int) -> float:
    async with aiohttp.ClientSession(connector=connector(8, None)) as http:

        async def one() -> None:
            async with http.post(f"{url}/api/show", json={"model": MODEL}) as r:
                await r.read()

        await asyncio.gather(*(one() for _ in range(50)))
        before = cpu_seconds(pids)
        for start in range(0, n, 50):
            await asyncio.gather(*(one() for _ in range(min(50, n - start))))
        return (cpu_seconds(pids) - before) * 1000 / n


async def throughputs(urls: dict[str, str], args: argparse.Namespace) -> dict[str, dict[int, float]]:
    """Tokens/s of each hop at 1, 16 and 64 streams: the hops take turns, `--rounds` times, and
    each keeps its median, so a neighbour's burst on the machine does not land on one hop alone."""
    runs: dict[str, dict[int, list[float]]] = {name: {n: [] for n in STREAMS} for name in urls}
    for n in STREAMS:
        for _ in range(args.rounds):
            for name, url in urls.items():
                tls = tls_files(args.tls_dir) if url.startswith("https:") else None
                runs[name][n].append(await tokens_per_second(url, n, tls))
    return {name: {n: statistics.median(v) for n, v in by.items()} for name, by in runs.items()}


async def measure(
    url: str, pids: list[int], args: argparse.Namespace, samples: list[float], tps: dict[int, float]
) -> Figures:
    samples = sorted(samples)
    cpu = await requests_cpu(url, pids, args.requests) if pids else None
    return Figures(statistics.median(samples), samples[int(len(samples) * 0.99) - 1], tps, cpu)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per hop (median)")
    parser.add_argument(
        "--real-ollama", action="store_true", help="the real Ollama and the tiny model upstream"
    )
    parser.add_argument("--tls", action="store_true", help="mutual TLS between every hop and the upstream")
    parser.add_argument("--baseline", help="a source tree whose proxy is measured too, as 'baseline'")
    parser.add_argument("--tls-dir", help=argparse.SUPPRESS)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    up_port, proxy_port, nginx_port, floor_port, base_port = (free_port() for _ in range(5))
    procs: list[subprocess.Popen[bytes]] = []
    real: RealOllama | None = None
    with tempfile.TemporaryDirectory() as tmp:
        tls = TLSFiles.make(Path(tmp)) if args.tls else None
        args.tls_dir = tmp if tls else None
        me = [sys.executable, __file__, "--token-delay", str(args.token_delay), "--tokens", str(args.tokens)]
        me += ["--tls-dir", tmp] if tls else []
        try:
            if args.real_ollama:
                real = RealOllama(Path(tmp) / "ollama", build_ollama(), up_port)
                real.start()
            else:
                procs.append(subprocess.Popen([*me, "--serve-upstream", str(up_port)]))
            up_url = f"{'https' if tls else 'http'}://127.0.0.1:{up_port}"
            hop = ["-m", "remote_ollama.proxy", "--upstream", up_url, *(tls.client_args() if tls else [])]
            proxy = subprocess.Popen(
                [sys.executable, *hop, "--port", str(proxy_port)], stdout=subprocess.DEVNULL
            )
            procs.append(proxy)
            floor = subprocess.Popen([*me, "--serve-floor", str(floor_port), str(up_port)])
            procs.append(floor)
            conf = nginx_conf(Path(tmp), nginx_port, up_port, tls)
            ng = subprocess.Popen([nginx, "-c", str(conf), "-e", f"{tmp}/e.log"])
            procs.append(ng)
            urls = {
                "direct": up_url,
                "floor": f"http://127.0.0.1:{floor_port}",
                "proxy": f"http://127.0.0.1:{proxy_port}",
                "nginx": f"http://127.0.0.1:{nginx_port}",
            }
            pids = {"direct": [], "floor": [floor.pid], "proxy": [proxy.pid]}
            if args.baseline:
                env = {**os.environ, "PYTHONPATH": str(Path(args.baseline).resolve())}
                base = subprocess.Popen(
                    [sys.executable, *hop, "--port", str(base_port)],
                    stdout=subprocess.DEVNULL,
                    env=env,
                    cwd=args.baseline,
                )
                procs.append(base)
                urls["baseline"], pids["baseline"] = f"http://127.0.0.1:{base_port}", [base.pid]
            for url in urls.values():
                await wait_listening(url, tls=tls)
            pids["nginx"] = [ng.pid, *children_of(ng.pid)]
            first_bytes = await ttfb(urls, args.samples, real is not None, tls)
            if real is not None:
                report_real({name: sorted(samples) for name, samples in first_bytes.items()}, args)
                return
            tps = await throughputs(urls, args)
            figures = {
                name: await measure(url, pids[name], args, first_bytes[name], tps[name])
                for name, url in urls.items()
            }
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
            if real is not None:
                real.stop()
    report(figures, args)


def report_real(samples: dict[str, list[float]], args: argparse.Namespace) -> None:
    def pct(name: str, q: float) -> float:
        return samples[name][max(0, int(len(samples[name]) * q) - 1)]

    print(
        f"upstream: real Ollama {VERSION}, tiny model; time to the first token, {args.samples} requests per hop"
    )
    print(f"{'':8} {'TTFT p50':>10} {'TTFT p99':>10} {'added p50':>10} {'added p99':>10}")
    for name in samples:
        p50, p99 = statistics.median(samples[name]), pct(name, 0.99)
        added50 = p50 - statistics.median(samples["direct"])
        added99 = p99 - pct("direct", 0.99)
        print(f"{name:8} {p50 * 1e3:9.3f}ms {p99 * 1e3:9.3f}ms {added50 * 1e3:9.3f}ms {added99 * 1e3:9.3f}ms")


def report(f: dict[str, Figures], args: argparse.Namespace) -> None:
    d = f["direct"]
    link = "mutual TLS to the upstream on every hop" if args.tls else "plain HTTP"
    print(
        f"upstream: simulated Ollama, token_delay={args.token_delay}s, {args.tokens} tokens per stream, {link}"
    )
    print(
        f"{'':8} {'TTFB p50':>10} {'TTFB p99':>10} {'added p50':>10} {'added p99':>10}"
        f" {'tok/s x1':>9} {'x16':>9} {'x64':>9} {'CPU s/1000 req':>15}"
    )
    for name, x in f.items():
        cpu = f"{x.cpu_per_1000:15.3f}" if x.cpu_per_1000 is not None else f"{'-':>15}"
        print(
            f"{name:8} {x.ttfb_p50 * 1e3:9.3f}ms {x.ttfb_p99 * 1e3:9.3f}ms"
            f" {(x.ttfb_p50 - d.ttfb_p50) * 1e3:9.3f}ms {(x.ttfb_p99 - d.ttfb_p99) * 1e3:9.3f}ms"
            f" {x.tokens_per_s[1]:9.0f} {x.tokens_per_s[16]:9.0f} {x.tokens_per_s[64]:9.0f} {cpu}"
        )
    for name in ("proxy", "baseline"):
        if name in f:
            ratios(f, name)


def ratios(f: dict[str, Figures], name: str) -> None:
    d, p, n, fl = f["direct"], f[name], f["nginx"], f["floor"]
    added_p, added_n, added_f = (x.ttfb_p50 - d.ttfb_p50 for x in (p, n, fl))
    print(
        f"{name} added TTFB p50: {added_p * 1e3:.3f} ms (target <= 1 ms); aiohttp floor: {added_f * 1e3:.3f} ms;"
        f" nginx: {added_n * 1e3:.3f} ms"
    )
    print(
        f"{name} / aiohttp floor: added TTFB p50 {added_p / added_f if added_f > 0 else float('inf'):.2f}x"
        f" (target <= 1.15x), TTFB p50 {p.ttfb_p50 / fl.ttfb_p50:.2f}x;"
        f" {name}/nginx added {added_p / added_n if added_n > 0 else float('inf'):.2f}x"
    )
    for streams in (1, 16, 64):
        print(
            f"throughput at {streams:2} streams: {name} {p.tokens_per_s[streams] / d.tokens_per_s[streams]:.1%}"
            f" of direct, floor {fl.tokens_per_s[streams] / d.tokens_per_s[streams]:.1%},"
            f" nginx {n.tokens_per_s[streams] / d.tokens_per_s[streams]:.1%}"
        )
    if p.cpu_per_1000 and n.cpu_per_1000 and fl.cpu_per_1000:
        print(
            f"CPU per 1000 requests: {name} {p.cpu_per_1000:.3f} s, floor {fl.cpu_per_1000:.3f} s,"
            f" nginx {n.cpu_per_1000:.3f} s; proxy/floor {p.cpu_per_1000 / fl.cpu_per_1000:.2f}x"
        )


if __name__ == "__main__":
    options = parse_args()
    if options.serve_upstream:
        serve_upstream(
            options.serve_upstream, options.token_delay, options.tokens, tls_files(options.tls_dir)
        )
    elif options.serve_floor:
        listen, upstream_port = options.serve_floor
        serve_floor(listen, upstream_port, tls_files(options.tls_dir))
    else:
        asyncio.run(main(options))
