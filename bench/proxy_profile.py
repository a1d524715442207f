"""Where the proxy's time per request goes: the proxy in this process under cProfile, the simulated
Ollama and the client each in their own process (so only the proxy's work is profiled).

The client sends `--requests` sequential small requests (the TTFB probe of bench/proxy.py), then
`--streams` concurrent streams; prints the functions with the largest share of the proxy's CPU
(own time, and time including callees) and the share the proxy's own modules take. `--floor`
profiles bench/proxy.py's minimal aiohttp pass-through instead, to compare.

    python bench/proxy_profile.py [--floor] [--tls] [--path /api/generate] [--requests 3000] [--streams 64]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import MODEL, TLSFiles, floor_app, free_port, wait_listening


def client(url: str, requests: int, streams: int, path: str) -> None:
    """The load, in its own process."""
    body = {"model": MODEL, "prompt": "x"} if path == "/api/generate" else {"model": MODEL}

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
            for _ in range(requests):
                async with http.post(f"{url}{path}", json=body) as r:
                    await r.read()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def one() -> None:
                async with http.post(f"{url}/api/generate", json={"model": MODEL, "prompt": "x"}) as r:
                    async for _ in r.content.iter_any():
                        pass

            await asyncio.gather(*(one() for _ in range(streams)))

    asyncio.run(main())


async def profile(args: argparse.Namespace) -> pstats.Stats:
    from remote_ollama.proxy.app import make_proxy_app, start_proxy
    from remote_ollama.proxy.interfaces import ProxySettings, Upstream
    from remote_ollama.proxy.local import LocalResolver, RecordingSink
    from remote_ollama.spec.names import VM_TLS_SERVER_NAME

    up_port, proxy_port = free_port(), free_port()
    here = str(Path(__file__).resolve().parent / "proxy.py")
    folder = tempfile.mkdtemp()
    tls = TLSFiles.make(Path(folder)) if args.tls else None
    serve = [here, "--serve-upstream", str(up_port), "--token-delay", str(args.token_delay)]
    upstream = subprocess.Popen(
        [sys.executable, *serve, "--tokens", str(args.tokens), *(["--tls-dir", folder] if tls else [])]
    )
    context, name = (tls.client_context(), VM_TLS_SERVER_NAME) if tls else (None, None)
    try:
        up_url = f"{'https' if tls else 'http'}://127.0.0.1:{up_port}"
        await wait_listening(up_url, tls=tls)
        if args.floor:
            runner = web.AppRunner(floor_app(up_url, context, name), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
        else:
            resolver = LocalResolver(Upstream(up_url, context, None, name))
            app = make_proxy_app(resolver, RecordingSink(), ProxySettings())
            runner, _ = await start_proxy(app, "127.0.0.1", proxy_port)
        url = f"http://127.0.0.1:{proxy_port}"
        me = [
            sys.executable,
            __file__,
            "--client",
            url,
            "--path",
            args.path,
            "--requests",
            "50",
            "--streams",
            "1",
        ]
        warm = await asyncio.create_subprocess_exec(*me)
        await warm.wait()
        profiler = cProfile.Profile()
        load = [sys.executable, __file__, "--client", url, "--path", args.path]
        load += ["--requests", str(args.requests), "--streams", str(args.streams)]
        started = time.perf_counter()
        profiler.enable()
        proc = await asyncio.create_subprocess_exec(*load)
        await proc.wait()
        profiler.disable()
        print(f"{args.requests} requests and {args.streams} streams in {time.perf_counter() - started:.2f}s")
        await runner.cleanup()
    finally:
        upstream.terminate()
        upstream.wait(10)
    return pstats.Stats(profiler)


def report(stats: pstats.Stats, args: argparse.Namespace) -> None:
    top = args.top
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values())
    idle = sum(tt for key, (_, _, tt, _, _) in entries.items() if "poll" in key[2] and not key[1])
    busy = total - idle
    if args.requests and not args.streams:
        print(
            f"busy (not waiting in epoll): {busy:.3f}s, {busy / args.requests * 1e6:.0f} us per request (profiled)"
        )

    def name(key: tuple[str, int, str]) -> str:
        path, line, func = key
        return f"{Path(path).parent.name}/{Path(path).name}:{line}({func})" if line else func

    own = sum(tt for key, (_, _, tt, _, _) in entries.items() if "remote_ollama" in key[0])
    print(
        f"profiled {total:.3f}s, busy {busy:.3f}s; remote_ollama's own code (own time) {own / busy:.1%} of busy"
    )
    print(f"--- own time (share of busy), top {top}")
    working = [(k, v) for k, v in entries.items() if not ("poll" in k[2] and not k[1])]
    for key, (_, calls, tt, _, _) in sorted(working, key=lambda kv: -kv[1][2])[:top]:
        print(f"{tt / busy:6.1%} {calls:8d} {name(key)}")
    print(f"--- including callees (share of busy), top {top}, remote_ollama only")
    mine = [(k, v) for k, v in entries.items() if "remote_ollama" in k[0]]
    for key, (_, calls, _, ct, _) in sorted(mine, key=lambda kv: -kv[1][3])[:top]:
        print(f"{ct / busy:6.1%} {calls:8d} {name(key)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--floor", action="store_true", help="profile the aiohttp floor instead")
    parser.add_argument("--tls", action="store_true", help="mutual TLS to the upstream, as to a VM")
    parser.add_argument("--path", default="/api/show", help="what the sequential requests ask")
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        client(options.client, options.requests, options.streams, options.path)
    else:
        report(asyncio.run(profile(options)), options)
