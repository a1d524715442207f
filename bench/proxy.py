"""Bench: the proxy's cost, against a direct connection, the floor of its own library (a minimal
aiohttp pass-through on the same event loop, nothing else) and nginx (`proxy_buffering off`).

All reach the same simulated Ollama (its own process, plain HTTP on loopback, so only the hop itself
is measured). Prints added time-to-first-byte p50/p99, streamed tokens/s at 1, 16 and 64 concurrent
streams, and CPU seconds per 1000 requests of each hop, then the ratios; the goal is the proxy's
added TTFB at most 1.15x the floor's and at most 1 ms p50, with >= 0.95 of direct throughput at 64.

    python bench/proxy.py [--token-delay 0.01] [--tokens 200] [--requests 1000]

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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

MODEL = "granite3.1-dense:8b"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the real Ollama's recipe
from ollama_real.server import TINY, VERSION, RealOllama, build_ollama  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_upstream(port: int, token_delay: float, tokens: int) -> None:
    """The simulated Ollama, in this (sub)process."""
    from aiohttp import web

    from remote_ollama.sandbox.ollama.server import make_ollama_app, ollama_state

    app = make_ollama_app([MODEL], token_delay=token_delay)
    ollama_state(app).reply_length = tokens
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_floor(port: int, upstream_port: int) -> None:
    """The floor: aiohttp's least pass-through (one session, stream the body back), on uvloop as the
    product, so the proxy's own work is what the difference measures."""
    from aiohttp import web

    from remote_ollama.proxy.runloop import run

    upstream = f"http://127.0.0.1:{upstream_port}"
    hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

    async def pass_through(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        body = await request.read()
        async with session.request(request.method, upstream + request.rel_url.path_qs, data=body) as up:
            response = web.StreamResponse(
                status=up.status, headers={k: v for k, v in up.headers.items() if k.lower() not in hop}
            )
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def main() -> None:
        app = web.Application()
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        app.router.add_route("*", "/{tail:.*}", pass_through)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    run(main())


async def wait_listening(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/api/version") as r:
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


def nginx_conf(tmp: Path, listen: int, upstream: int) -> Path:
    conf = tmp / "nginx.conf"
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
      proxy_pass http://ollama;
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


async def ttfb(urls: dict[str, str], n: int, real: bool = False) -> dict[str, list[float]]:
    """Sequential requests on a kept-alive connection per hop: time to the first body byte.

    The hops take turns, request by request, so a noisy neighbour on the machine slows them alike
    and the ratios between them stay meaningful."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for name in urls}
    path, body = probe(real)
    try:
        for i in range(n + 20):
            for name, url in urls.items():
                start = time.perf_counter()
                async with sessions[name].post(f"{url}{path}", json=body) as r:
                    await r.content.readany()
                    first = time.perf_counter() - start
                    await r.read()
                if i >= 20:  # warm-up
                    samples[name].append(first)
    finally:
        for session in sessions.values():
            await session.close()
    return samples


async def tokens_per_second(url: str, streams: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one() -> int:
            lines = 0
            async with http.post(f"{url}/api/generate", json={"model": MODEL, "prompt": "bench"}) as r:
                async for chunk in r.content.iter_any():
                    lines += chunk.count(b"\n")
            return lines - 1  # the final line carries no token

        start = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(streams)))
        return sum(counts) / (time.perf_counter() - start)


async def requests_cpu(url: str, pids: list[int], n: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as http:

        async def one() -> None:
            async with http.post(f"{url}/api/show", json={"model": MODEL}) as r:
                await r.read()

        await asyncio.gather(*(one() for _ in range(50)))
        before = cpu_seconds(pids)
        for start in range(0, n, 50):
            await asyncio.gather(*(one() for _ in range(min(50, n - start))))
        return (cpu_seconds(pids) - before) * 1000 / n


async def measure(url: str, pids: list[int], args: argparse.Namespace, samples: list[float]) -> Figures:
    samples = sorted(samples)
    tps = {n: await tokens_per_second(url, n) for n in (1, 16, 64)}
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
    parser.add_argument(
        "--real-ollama", action="store_true", help="the real Ollama and the tiny model upstream"
    )
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    up_port, proxy_port, nginx_port, floor_port = free_port(), free_port(), free_port(), free_port()
    me = [sys.executable, __file__, "--token-delay", str(args.token_delay), "--tokens", str(args.tokens)]
    procs: list[subprocess.Popen[bytes]] = []
    real: RealOllama | None = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.real_ollama:
                real = RealOllama(Path(tmp) / "ollama", build_ollama(), up_port)
                real.start()
            else:
                procs.append(subprocess.Popen([*me, "--serve-upstream", str(up_port)]))
            up_url = f"http://127.0.0.1:{up_port}"
            proxy = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "remote_ollama.proxy",
                    "--upstream",
                    up_url,
                    "--port",
                    str(proxy_port),
                ],
                stdout=subprocess.DEVNULL,
            )
            procs.append(proxy)
            floor = subprocess.Popen([*me, "--serve-floor", str(floor_port), str(up_port)])
            procs.append(floor)
            ng = subprocess.Popen(
                [nginx, "-c", str(nginx_conf(Path(tmp), nginx_port, up_port)), "-e", f"{tmp}/e.log"]
            )
            procs.append(ng)
            urls = {
                "direct": up_url,
                "floor": f"http://127.0.0.1:{floor_port}",
                "proxy": f"http://127.0.0.1:{proxy_port}",
                "nginx": f"http://127.0.0.1:{nginx_port}",
            }
            for url in urls.values():
                await wait_listening(url)
            pids = {
                "direct": [],
                "floor": [floor.pid],
                "proxy": [proxy.pid],
                "nginx": [ng.pid, *children_of(ng.pid)],
            }
            first_bytes = await ttfb(urls, args.samples, real is not None)
            if real is not None:
                report_real({name: sorted(samples) for name, samples in first_bytes.items()}, args)
                return
            figures = {
                name: await measure(url, pids[name], args, first_bytes[name]) for name, url in urls.items()
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
    print(f"upstream: simulated Ollama, token_delay={args.token_delay}s, {args.tokens} tokens per stream")
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
    p, n, fl = f["proxy"], f["nginx"], f["floor"]
    added_p, added_n, added_f = (x.ttfb_p50 - d.ttfb_p50 for x in (p, n, fl))
    print(
        f"proxy added TTFB p50: {added_p * 1e3:.3f} ms (target <= 1 ms); aiohttp floor: {added_f * 1e3:.3f} ms;"
        f" nginx: {added_n * 1e3:.3f} ms"
    )
    print(
        f"proxy / aiohttp floor: added TTFB p50 {added_p / added_f if added_f > 0 else float('inf'):.2f}x"
        f" (target <= 1.15x), TTFB p50 {p.ttfb_p50 / fl.ttfb_p50:.2f}x;"
        f" proxy/nginx added {added_p / added_n if added_n > 0 else float('inf'):.2f}x"
    )
    for streams in (1, 16, 64):
        print(
            f"throughput at {streams:2} streams: proxy {p.tokens_per_s[streams] / d.tokens_per_s[streams]:.1%}"
            f" of direct, floor {fl.tokens_per_s[streams] / d.tokens_per_s[streams]:.1%},"
            f" nginx {n.tokens_per_s[streams] / d.tokens_per_s[streams]:.1%}"
        )
    if p.cpu_per_1000 and n.cpu_per_1000 and fl.cpu_per_1000:
        print(
            f"CPU per 1000 requests: proxy {p.cpu_per_1000:.3f} s, floor {fl.cpu_per_1000:.3f} s,"
            f" nginx {n.cpu_per_1000:.3f} s; proxy/floor {p.cpu_per_1000 / fl.cpu_per_1000:.2f}x"
        )


if __name__ == "__main__":
    options = parse_args()
    if options.serve_upstream:
        serve_upstream(options.serve_upstream, options.token_delay, options.tokens)
    elif options.serve_floor:
        serve_floor(*options.serve_floor)
    else:
        asyncio.run(main(options))
