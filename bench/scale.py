"""Bench: scale-out (issue 19) on one machine, the whole standalone stack in one process: the
Exoscale simulator, its simulated VMs (TLS, each Ollama serving OLLAMA_NUM_PARALLEL streams at a
fixed token rate and queueing the rest), the replica group and the proxy with its routing.

1. Saturation: for N = 1..4 Ready replicas (min = max = N), closed-loop clients (2 x N x parallel)
   stream for --seconds; aggregate tokens/s against N x the one-VM figure (goal >= 0.9).
2. A 10x burst from zero (10 x targetInFlight streams at once, max 4): time to first byte p50/p95
   (the hold), the replicas reached, streams lost (goal 0: no replica stopped under a request).
3. Scale-up decision latency: requests arriving one by one on Ready replicas; from the request
   that crosses k x target to the round that asks for k + 1 replicas, p50 / max over --ramps
   ramps (goal p50 <= 1 s).

With --operator the same scenarios run through the operator on the real kube-apiserver
(tests/cluster/build.sh, cached in ~/.cache/remote-ollama/): kube-apiserver and etcd, the CRD, the
operator as its own process and the proxy as its Deployment says, against the simulator (in this
process), one RemoteOllama per scenario (bench/scale_operator.py). There the load is counted at the
clients (the proxy is another process) and the decision is the simulator receiving the create (or
start) call of the next replica, so the latency includes the proxy's Lease write, the operator's
watch and its round.

    python bench/scale.py [--token-delay 0.05] [--parallel 4] [--seconds 10] [--ramps 3] [--operator]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.local.replicas import ReplicaGroup
from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import proxy_settings
from remote_ollama.proxy.routing import Router
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec
from remote_ollama.spec.sections import IdlePolicy, OllamaSettings, ReplicaPolicy

MODEL = "granite3.1-dense:8b"
KEY, SECRET = "EXObenchscale000000000000", "bench-secret"


def timings(args: argparse.Namespace) -> SimTimings:
    """The simulated cloud of both modes."""
    return SimTimings(boot=1.0, stop=0.3, destroy=0.3, operation=0.05, token=args.token_delay)


class Stack:
    """What every scenario drives: the endpoint's URL, streams through it, and what it decided.
    A mode (standalone here, the operator in scale_operator.py) starts its stack for one scenario,
    tears it down after it, and says how many replicas are Ready and when it asked for more."""

    poll = 0.05  # seconds between looks at a condition
    url: str

    def __init__(self, args: argparse.Namespace, replicas: ReplicaPolicy) -> None:
        self.args, self.replicas = args, replicas
        self.in_flight = 0  # streams open at the clients
        # k -> when the load first needed k replicas (k >= 2): the signal crossing k - 1 x target
        self.crossed: dict[int, float] = {}
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def ready(self) -> int:
        raise NotImplementedError

    def asked(self) -> list[tuple[float, int]]:
        """(time, replicas asked for) as the stack decided them."""
        raise NotImplementedError

    def count_at_clients(self) -> None:
        """The load signal where the stack cannot see the proxy's own count: the streams open."""
        self.note_load(self.in_flight)

    def note_load(self, load: int) -> None:
        k = (load - 1) // self.args.parallel + 1  # replicas this load needs
        if k >= 2:
            self.crossed.setdefault(k, time.monotonic())

    async def close(self) -> None:
        await self.http.close()

    async def until(self, predicate: Callable[[], Awaitable[bool]], timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(self.poll)

    async def stream(self, prompt: str) -> tuple[int, float | None, bool]:
        """(tokens, seconds to the first byte, completed)."""
        began = time.monotonic()
        first: float | None = None
        tokens = 0
        self.in_flight += 1
        self.count_at_clients()
        try:
            body = {"model": MODEL, "prompt": prompt}
            async with self.http.post(self.url + "/api/generate", json=body) as r:
                async for line in r.content:
                    if first is None:
                        first = time.monotonic() - began
                    if not line.strip():
                        continue
                    chunk = json.loads(line)
                    if chunk.get("done"):
                        return tokens, first, r.status == 200
                    tokens += 1
            return tokens, first, False
        finally:
            self.in_flight -= 1


class StandaloneStack(Stack):
    """Simulator + replica group + proxy in this process."""

    async def __aenter__(self) -> StandaloneStack:
        a = self.args
        self.sim = ExoscaleSimulator({KEY: SECRET}, timings=timings(a))
        api = await self.sim.start("127.0.0.1", 0)
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-scale-")
        spec = Spec(
            models=(MODEL,),
            idle=IdlePolicy(stop_after=3600, destroy_after=None),
            ollama=OllamaSettings(env=(("OLLAMA_NUM_PARALLEL", str(a.parallel)),)),
            replicas=self.replicas,
        )
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, spec.zone, endpoint=api, poll_interval=0.1)
        router = Router()
        self.group = ReplicaGroup(spec, cloud, str(Path(self.tmp.name) / "state.json"), router=router)
        for m in self.group.members:
            m.poll_cap = 0.5
        self.rounds = watch(self.group)
        settings = proxy_settings(spec, os.environ, status_extra=self.group.status, hold_timeout=300.0)
        app = make_proxy_app(self.group, self.group, settings, router=router)
        self.runner, port = await start_proxy(app, "127.0.0.1", 0, shutdown_timeout=1.0)
        self.url = f"http://127.0.0.1:{port}"
        self.group.start()
        begin = router.begin

        def counted(upstream: Any) -> None:  # the proxy's own count, the signal the group scales on
            begin(upstream)
            self.note_load(sum(router.outstanding.values()) + self.group.waiting)

        router.begin = counted  # type: ignore[method-assign]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
        await self.runner.cleanup()
        await self.group.stop("destroy", 10)
        await self.sim.stop()
        self.tmp.cleanup()

    def count_at_clients(self) -> None:
        pass  # the proxy's own count is seen (router.begin)

    async def ready(self) -> int:
        return len(self.group.ready())

    def asked(self) -> list[tuple[float, int]]:
        return self.rounds


Mode = Callable[[argparse.Namespace, ReplicaPolicy], AbstractAsyncContextManager[Stack]]


def policy(args: argparse.Namespace, low: int, high: int) -> ReplicaPolicy:
    return ReplicaPolicy(min=low, max=high, target_in_flight=args.parallel)


async def saturation(mode: Mode, args: argparse.Namespace, n: int) -> float:
    async with mode(args, policy(args, n, n)) as s:
        await s.until(lambda: ready_is(s, n), 300)
        clients = 2 * n * args.parallel
        counted = [0]
        measuring = [False]
        stop_at = time.monotonic() + 2.0 + args.seconds

        async def client(c: int) -> None:
            i = 0
            while time.monotonic() < stop_at:
                tokens, _, _ = await s.stream(f"client {c} request {i}")
                i += 1
                if measuring[0]:
                    counted[0] += tokens

        tasks = [asyncio.create_task(client(c)) for c in range(clients)]
        await asyncio.sleep(2.0)  # warm: every client mid-stream
        counted[0], measuring[0] = 0, True
        began = time.monotonic()
        await asyncio.gather(*tasks)
        return counted[0] / (time.monotonic() - began)


def watch(group: ReplicaGroup) -> list[tuple[float, int]]:
    """Every scale round's (time, desired), as the group decides them."""
    rounds: list[tuple[float, int]] = []
    original = group.scale

    async def watched() -> Any:
        d = await original()
        rounds.append((time.monotonic(), d.desired))
        return d

    group.scale = watched  # type: ignore[method-assign]
    return rounds


async def ready_is(s: Stack, n: int) -> bool:
    return await s.ready() == n


async def burst(mode: Mode, args: argparse.Namespace) -> dict[str, Any]:
    async with mode(args, policy(args, 0, 4)) as s:
        results = await asyncio.gather(*(s.stream(f"burst {i}") for i in range(10 * args.parallel)))
        firsts = sorted(f for _, f, _ in results if f is not None)
        return {
            "streams": len(results),
            "completed": sum(1 for _, _, ok in results if ok),
            "ttfb_p50": statistics.median(firsts),
            "ttfb_p95": firsts[int(0.95 * (len(firsts) - 1))],
            "replicas": max((d for _, d in s.asked()), default=0),
        }


async def decision_latency(mode: Mode, args: argparse.Namespace) -> list[float]:
    """Requests arrive every 50 ms on one Ready replica (max 4). Latency: from the request that
    makes the in-flight count cross k x target (the signal) to the stack asking for k + 1 replicas."""
    async with mode(args, policy(args, 1, 4)) as s:
        await s.until(lambda: ready_is(s, 1), 300)
        s.crossed.clear()
        tasks = []
        for i in range(4 * args.parallel):
            tasks.append(asyncio.create_task(s.stream(f"ramp {i}")))
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
        out = []
        for k, at in s.crossed.items():
            answered = [t for t, d in s.asked() if t >= at and d >= k]
            if answered:
                out.append(answered[0] - at)
        return out


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    if args.operator:
        sys.modules.setdefault("scale", sys.modules[__name__])  # one Stack class, run as a script or not
        from scale_operator import operator_mode

        async with operator_mode(args, timings(args)) as mode:
            await measure(mode, args)
    else:
        await measure(StandaloneStack, args)


async def measure(mode: Mode, args: argparse.Namespace) -> None:
    rates = {}
    for n in range(1, args.max_n + 1):
        rates[n] = await saturation(mode, args, n)
        print(f"  measured N={n}: {rates[n]:.0f} tokens/s", flush=True)
    one = rates[1]
    ideal = args.parallel / args.token_delay
    print(
        f"\nSaturation ({args.parallel} streams per VM at {1 / args.token_delay:.0f} tokens/s each; ideal {ideal:.0f}/VM)"
    )
    print(f"{'N':>2} {'tokens/s':>9} {'N x one VM':>11} {'ratio':>6}")
    for n, rate in rates.items():
        print(f"{n:>2} {rate:>9.0f} {n * one:>11.0f} {rate / (n * one):>6.2f}")
    b = await burst(mode, args)
    print(f"\n10x burst from zero ({b['streams']} streams, targetInFlight {args.parallel}, max 4)")
    print(f"  completed {b['completed']}/{b['streams']}   replicas {b['replicas']}")
    print(f"  time to first byte (hold) p50 {b['ttfb_p50']:.2f} s  p95 {b['ttfb_p95']:.2f} s")
    lat = [x for _ in range(args.ramps) for x in await decision_latency(mode, args)]
    asking = (
        "the simulator's create/start call for replica k+1" if args.operator else "the round asking for k+1"
    )
    print(f"\nScale-up decision latency (crossing k x target -> {asking})")
    if lat:
        print(
            f"  samples {len(lat)} ({args.ramps} ramps)  p50 {statistics.median(lat) * 1000:.0f} ms"
            f"  max {max(lat) * 1000:.0f} ms"
        )
    else:
        print("  no crossing seen (streams too short for the arrival rate)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--token-delay", type=float, default=0.05, help="seconds per token per stream")
    parser.add_argument("--parallel", type=int, default=4, help="OLLAMA_NUM_PARALLEL of each simulated VM")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per N")
    parser.add_argument("--max-n", type=int, default=4, help="saturation for N = 1..this")
    parser.add_argument("--ramps", type=int, default=3, help="ramps measured for the decision latency")
    parser.add_argument(
        "--operator", action="store_true", help="through the operator on the real kube-apiserver"
    )
    asyncio.run(main(parser.parse_args()))
