"""Bench: the operator at 1, 50 and 200 RemoteOllamas against the Exoscale simulator and a real
kube-apiserver (tests/cluster: built once per machine, started fresh per size).

The operator runs as its own process (`remote-ollama operator --standalone`), as in a cluster. Prints:
  - reconcile time to Ready, apply -> phase Ready minus the simulated boot (median, p95);
  - Exoscale API calls per resource per idle minute: counted over an idle window with the steady
    recheck shortened to --steady seconds, then scaled to the real 300 s (target <= 2);
  - operator RSS (target <= 150 MiB at 200);
  - wake latency: wake-requested annotation -> the simulator's start-instance call (p50/p99, < 1 s);
  - wake overhead: wake-requested annotation -> phase Ready, minus the simulated boot (VM start,
    cloud-init, pull) and the simulated model load: what the operator adds to the cloud's own time
    (p50/p95, goal p50 <= 1 s).

    python bench/operator_resources.py [--sizes 1,50,200] [--idle-window 20] [--steady 10] [--wakes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster.control_plane import ControlPlane, build_binaries  # noqa: E402
from operator_world import KEY, SECRET, credentials_secret  # noqa: E402
from ports import free_port  # noqa: E402

from remote_ollama.core import lifecycle  # noqa: E402
from remote_ollama.sandbox.exoscale.thread import SimulatorThread  # noqa: E402
from remote_ollama.sandbox.exoscale.timings import SimTimings  # noqa: E402

TIMINGS = SimTimings(boot=0.2, stop=0.1, destroy=0.1, operation=0.02, cloud_init=0.1, pull=0.0, token=0.001)
BOOT = TIMINGS.boot + TIMINGS.cloud_init + TIMINGS.pull
MODEL_LOAD = 0.0  # the simulated Ollama's load_delay: a warm-up costs no simulated time here
ROL = "/apis/remoteollama.dev/v1alpha1/namespaces/default/remoteollamas"

BOOT_SNIPPET = (
    "import sys\n"
    "from remote_ollama.core import lifecycle\n"
    "lifecycle.POLL_STEADY = float(sys.argv.pop(1))\n"
    "from remote_ollama.kube.operator.context import OPERATOR\n"
    "OPERATOR.cloud_options = {'poll_interval': 0.05, 'backoff_base': 0.05}\n"
    "from remote_ollama.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def http(
    kube: ControlPlane, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(kube.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=30, context=kube.admin_ssl_context()) as resp:
        return json.loads(resp.read())


def kubectl(kube: ControlPlane, *args: str, input: str | None = None, timeout: float = 60) -> None:
    out = kube.kubectl(*args, input=input, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phases(kube: ControlPlane) -> dict[str, str]:
    items = http(kube, "GET", ROL)["items"]
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}


def manifest(n: int) -> str:
    docs = [
        {
            "apiVersion": "remoteollama.dev/v1alpha1",
            "kind": "RemoteOllama",
            "metadata": {"name": f"r{i:03d}", "namespace": "default"},
            "spec": {"credentialsSecretRef": {"name": "exoscale"}, "models": ["granite3.1-dense:8b"]},
        }
        for i in range(n)
    ]
    return yaml.safe_dump_all(docs)


def wait(predicate: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout}s")


def run_size(n: int, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        kube = ControlPlane(Path(tmp), build_binaries()).start()
        try:
            return run_on(n, args, kube, Path(tmp))
        finally:
            kube.stop()


def run_on(n: int, args: argparse.Namespace, kube: ControlPlane, tmp: Path) -> dict[str, float]:
    sim = SimulatorThread(keys={KEY: SECRET}, timings=TIMINGS, gpu_quota=-1, instance_quota=-1)
    sim.start()
    try:
        env = {
            **os.environ,
            "KUBECONFIG": str(kube.kubeconfig),
            "EXOSCALE_API_ENDPOINT": sim.url,
            "REMOTE_OLLAMA_METRICS_PORT": "0",
        }
        kube.install_crd()
        kubectl(kube, "apply", "-n", "default", "-f", "-", input=credentials_secret())
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        command = [sys.executable, "-c", BOOT_SNIPPET, str(args.steady), "operator", "--standalone"]
        with (tmp / "operator.log").open("wb") as log:
            proc = subprocess.Popen(
                [*command, "--liveness", liveness], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            return measure(n, args, kube, sim, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        sim.stop()


def measure(
    n: int, args: argparse.Namespace, kube: ControlPlane, sim: SimulatorThread, proc: subprocess.Popen[bytes]
) -> dict[str, float]:
    applied = time.monotonic()
    kubectl(kube, "apply", "-f", "-", input=manifest(n), timeout=120)
    ready_at: dict[str, float] = {}

    def all_ready() -> bool:
        now = time.monotonic()
        for name, phase in phases(kube).items():
            if phase == "Ready":
                ready_at.setdefault(name, now)
        return len(ready_at) == n

    wait(all_ready, 60 + 1.0 * n, f"{n} resources Ready", every=0.1)
    to_ready = [t - applied - BOOT for t in ready_at.values()]
    rss_ready = rss_mib(proc.pid)

    # idle: every resource Ready, no traffic; the steady recheck is --steady seconds here, 300 s for real
    time.sleep(args.steady)  # let the first post-Ready rechecks settle before counting
    before, began = sim.sim.call_count(), time.monotonic()
    peak = rss_ready
    while time.monotonic() - began < args.idle_window:
        time.sleep(1.0)
        peak = max(peak, rss_mib(proc.pid))
    minutes = (time.monotonic() - began) / 60
    raw = (sim.sim.call_count() - before) / n / minutes
    scaled = raw * args.steady / lifecycle.POLL_STEADY

    latencies, overheads = wake_latencies(n, args, kube, sim)
    peak = max(peak, rss_mib(proc.pid))
    return {
        "n": n,
        "ready_p50": statistics.median(to_ready),
        "ready_p95": pct(to_ready, 0.95),
        "calls_raw": raw,
        "calls_per_min": scaled,
        "rss_mib": peak,
        "wake_p50": pct(latencies, 0.5),
        "wake_p99": pct(latencies, 0.99),
        "overhead_p50": pct(overheads, 0.5),
        "overhead_p95": pct(overheads, 0.95),
    }


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def annotate(kube: ControlPlane, name: str, key: str) -> None:
    patch = {"metadata": {"annotations": {f"remoteollama.dev/{key}": stamp()}}}
    http(kube, "PATCH", f"{ROL}/{name}", patch, "application/merge-patch+json")


def wake_latencies(
    n: int, args: argparse.Namespace, kube: ControlPlane, sim: SimulatorThread
) -> tuple[list[float], list[float]]:
    """--wakes wakes, cycling over up to --wakes resources, each run alone: sleep, then wake-requested.

    Per wake: annotation -> start call, and the wake overhead (annotation -> phase Ready, minus the
    simulated boot and model load)."""
    names = [f"r{i:03d}" for i in range(min(n, args.wakes))]
    ids = {x: http(kube, "GET", f"{ROL}/{x}")["status"]["instance"]["id"] for x in names}
    out, overheads = [], []
    for i in range(args.wakes):
        name = names[i % len(names)]
        annotate(kube, name, "sleep-requested")
        wait(lambda name=name: phases(kube).get(name) == "Stopped", 60, f"{name} Stopped", every=0.05)
        iid = ids[name]
        wait(lambda iid=iid: sim.sim.state.instances[iid].state == "stopped", 30, "VM stopped", every=0.05)
        second = datetime.now(UTC).replace(microsecond=0)  # wake stamps have second precision
        wait(lambda s=second: datetime.now(UTC).replace(microsecond=0) > s, 3, "a newer second", every=0.02)
        seen = sim.sim.call_count()
        began = time.monotonic()
        annotate(kube, name, "wake-requested")

        def started(iid: str = iid, seen: int = seen) -> bool:
            return any(c.operation == "start-instance" and iid in c.path for c in list(sim.sim.calls)[seen:])

        wait(started, 10, f"start call for {name}", every=0.005)
        out.append(time.monotonic() - began)
        wait(lambda name=name: phases(kube).get(name) == "Ready", 60, f"{name} Ready", every=0.02)
        overheads.append(time.monotonic() - began - BOOT - MODEL_LOAD)
    return out, overheads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,50,200")
    parser.add_argument("--idle-window", type=float, default=20.0, help="seconds of idle counted")
    parser.add_argument("--steady", type=float, default=10.0, help="steady recheck used while counting")
    parser.add_argument("--wakes", type=int, default=20, help="wakes measured per size")
    args = parser.parse_args()
    print(f"simulated boot {BOOT:.2f}s (subtracted); steady recheck {args.steady:.0f}s scaled to 300s")
    print(
        f"{'N':>4} {'ready p50':>10} {'ready p95':>10} {'calls/res/min':>14} {'(raw)':>7} "
        f"{'RSS MiB':>8} {'wake p50':>9} {'wake p99':>9} {'overhead p50':>13} {'overhead p95':>13}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        r = run_size(n, args)
        print(
            f"{n:>4} {r['ready_p50']:>9.2f}s {r['ready_p95']:>9.2f}s {r['calls_per_min']:>14.3f} "
            f"{r['calls_raw']:>7.2f} {r['rss_mib']:>8.1f} {r['wake_p50'] * 1000:>7.0f}ms "
            f"{r['wake_p99'] * 1000:>7.0f}ms {r['overhead_p50']:>12.2f}s {r['overhead_p95']:>12.2f}s",
            flush=True,
        )
        print(
            f"     goal: wake p50 < 1 s: {'met' if r['wake_p50'] < 1.0 else 'NOT met'}; "
            f"overhead p50 <= 1 s: {'met' if r['overhead_p50'] <= 1.0 else 'NOT met'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
