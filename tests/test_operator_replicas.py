"""Operator scale-out (issue 19) on the real kube-apiserver with the Exoscale simulator: one VM per
replica, scaled on the in-flight counts the proxies write in their Leases. The simulated VMs serve
OLLAMA_NUM_PARALLEL streams at a fixed token rate and queue the rest, so one VM saturates for real."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from prometheus_client import generate_latest
from waiting import wait_until
from wake_metrics import wakes_by_replica

from remote_ollama.kube.operator.context import OPERATOR
from remote_ollama.sandbox.exoscale.state import SimTimings
from remote_ollama.spec.names import LABEL_REPLICA

MODEL = "granite3.1-dense:8b"
TARGET = 2  # OLLAMA_NUM_PARALLEL, and so targetInFlight
# 0.4 s a token: a reply of 8-16 tokens streams for 3-6 s, long enough to saturate a VM
SLOW = SimTimings(boot=0.5, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1, token=0.4)


def replicated(**spec: Any) -> str:
    return remote_ollama(
        replicas={"min": 0, "max": 3, "scaleDownAfter": "2s"},
        ollama={"env": {"OLLAMA_NUM_PARALLEL": str(TARGET)}},
        idle={"stopAfter": "4s"},
        warmUp=False,
        **spec,
    )


def status(world: OperatorWorld) -> dict[str, Any]:
    return dict((world.get("remoteollama", "granite") or {}).get("status") or {})


def running(world: OperatorWorld) -> list[Any]:
    return [i for i in world.instances() if i.state == "running"]


def stream(url: str, n: int, out: list[Any]) -> None:
    """One long generation, read to its end: its last chunk (or the failure) goes to `out`."""
    try:
        with (
            httpx.Client(timeout=120) as http,
            http.stream(
                "POST", f"{url}/api/generate", json={"model": MODEL, "prompt": f"tell me {n}"}
            ) as resp,
        ):
            if resp.status_code != 200:
                out.append(("status", resp.status_code, resp.read().decode(errors="replace")))
                return
            last = None
            for line in resp.iter_lines():
                if line.strip():
                    last = json.loads(line)
            out.append(last)
    except Exception as exc:
        out.append(("error", repr(exc)))


def burst(urls: list[str], count: int) -> tuple[list[Any], list[threading.Thread]]:
    """`count` streams at once, spread over `urls`: their results (filled as they end) and threads."""
    out: list[Any] = []
    threads = [threading.Thread(target=stream, args=(urls[n % len(urls)], n, out)) for n in range(count)]
    for t in threads:
        t.start()
    return out, threads


def test_a_burst_from_zero_brings_up_replicas_every_stream_completes_and_idle_returns_to_zero(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW) as world:
        world.apply(credentials_secret())
        world.apply(replicated())
        url = world.start_proxy()
        wait_until(lambda: status(world).get("phase") == "Stopped", 30, "starts at zero (min 0)")
        assert world.instances() == []
        before = operator_wakes()

        out, threads = burst([url], 3 * TARGET)
        seen_ready: list[int] = []

        def two_ready() -> bool:
            seen_ready.append(int(status(world).get("readyReplicas") or 0))
            return seen_ready[-1] >= 2

        wait_until(two_ready, 90, ">= 2 replicas Ready under the burst")
        # the operator's metrics say it too, per endpoint
        assert wait_until(lambda: gauge(world, "ready") >= 2, 30, "remote_ollama_replicas{state=ready} >= 2")
        # and its wake histograms, one series per replica: replica 0's wake and replica 1's apart
        woke = wait_until(lambda: woken_since(before, {"0", "1"}), 30, "wakes of replicas 0 and 1")
        assert woke["0"] == 1 and woke["1"] == 1, woke
        for t in threads:
            t.join(120)
        assert len(out) == 3 * TARGET
        assert all(isinstance(o, dict) and o.get("done") is True for o in out), out
        st = status(world)
        members = {m["index"]: m for m in st["replicas"]}
        up = [m for m in members.values() if m.get("publicIP")]
        assert len(up) >= 2 and all(
            m.get("zone") and m.get("endpoint", "").startswith("https://") for m in up
        )
        # each replica is its own VM, labelled with its index, with its own credentials
        labels = sorted(i.labels.get(LABEL_REPLICA) for i in world.instances())
        assert len(labels) == len(set(labels)) >= 2
        assert world.get("secret", "granite-remote-ollama-1") is not None
        # one security group for the resource, whatever the replicas
        assert len(world.security_groups()) == 1

        # idle: back to min (0), one replica at a time (sampled every 0.1 s: two stops decided in one
        # round would show as a drop by two; steps are scaleDownAfter apart)
        counts = sample_running(world, lambda: not running(world), 90)
        assert counts[-1] == 0 and max(counts) >= 2, counts
        drops = [a - b for a, b in itertools.pairwise(counts) if b < a]
        assert drops and max(drops) == 1, counts
        assert world.sim.sim.call_count("stop-instance") >= 2
        wait_until(lambda: status(world).get("readyReplicas") == 0, 30, "readyReplicas 0")


def gauge(world: OperatorWorld, state: str) -> float:
    """remote_ollama_replicas{namespace, name="granite", state} from the in-process operator's metrics."""
    text = generate_latest(OPERATOR.metrics.registry).decode()
    series = f'remote_ollama_replicas{{name="granite",namespace="{world.namespace}",state="{state}"}} '
    return next((float(line[len(series) :]) for line in text.splitlines() if line.startswith(series)), 0.0)


def operator_wakes() -> dict[str, float]:
    """Wakes per replica on the in-process operator's metrics (its metrics port serves this text)."""
    return wakes_by_replica(generate_latest(OPERATOR.metrics.registry).decode())


def woken_since(before: dict[str, float], replicas: set[str]) -> dict[str, float] | None:
    """Wakes per replica since `before` (other tests share the process), once each of `replicas` woke."""
    now = operator_wakes()
    woke = {r: now[r] - before.get(r, 0.0) for r in now if now[r] > before.get(r, 0.0)}
    return woke if replicas <= woke.keys() else None


def sample_running(world: OperatorWorld, until: Callable[[], bool], timeout: float) -> list[int]:
    """The number of running VMs, every 0.1 s, until `until()` holds (kept only when it changes)."""
    counts = [len(running(world))]
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"not done in {timeout}s: {counts}"
        now = len(running(world))
        if now != counts[-1]:
            counts.append(now)
        time.sleep(0.1)  # a sampling period, not a wait for something to happen
    counts.append(len(running(world)))
    return counts


def test_two_proxies_share_the_signal_a_killed_one_loses_only_its_streams_and_scale_keeps_two_warm(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW) as world:
        world.apply(credentials_secret())
        world.apply(replicated())
        # the proxy runs as two pods behind a budget that keeps one
        dep = wait_until(lambda: world.get("deployment", "granite"), 30, "proxy Deployment")
        assert dep["spec"]["replicas"] == 2
        pdb = wait_until(lambda: world.get("pdb", "granite-proxy"), 30, "PodDisruptionBudget")
        assert pdb["spec"]["minAvailable"] == 1
        assert pdb["metadata"]["ownerReferences"][0]["kind"] == "RemoteOllama"
        first = world.start_proxy(pod_name="granite-proxy-a")
        second = world.start_proxy(pod_name="granite-proxy-b")
        wait_until(lambda: status(world).get("phase") == "Stopped", 30, "starts at zero")

        _carried_by_first, first_threads = burst([first], TARGET + 1)
        carried_by_second, second_threads = burst([second], 2 * TARGET)
        wait_until(
            lambda: int(status(world).get("readyReplicas") or 0) >= 2, 90, ">= 2 Ready from both signals"
        )
        world.procs[0].kill()  # the first proxy dies mid-burst (SIGKILL: its Lease is left to expire)
        for t in first_threads + second_threads:
            t.join(120)
        assert len(carried_by_second) == 2 * TARGET
        assert all(isinstance(o, dict) and o.get("done") is True for o in carried_by_second), (
            carried_by_second
        )
        # the dead proxy's counts expire with its Lease: every replica goes back to zero
        wait_until(lambda: not running(world), 120, "back to zero after the dead proxy's Lease expired")

        # kubectl scale sets spec.replicas.min: two replicas stay warm, idle or not
        world.kube.kubectl("scale", "rol", "granite", "--replicas", "2", check=True)
        wait_until(lambda: status(world).get("readyReplicas") == 2, 90, "two Ready after kubectl scale")
        out: list[Any] = []
        stream(second, 0, out)  # used, then idle past stopAfter + scaleDownAfter
        assert isinstance(out[0], dict) and out[0]["done"] is True
        watched = wait_until(
            lambda: [len(running(world))] if _idle_for(world, 4 + 2 + 3) else None, 60, "idle past the timers"
        )
        assert watched == [2] and status(world).get("readyReplicas") == 2


def _idle_for(world: OperatorWorld, seconds: float) -> bool:
    """Every replica's last activity is at least `seconds` old (by the operator's own status)."""
    from datetime import UTC, datetime

    stamps = [m.get("lastActivity") for m in status(world).get("replicas") or [] if m.get("lastActivity")]
    if not stamps:
        return False
    newest = max(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
    return (datetime.now(UTC) - newest).total_seconds() >= seconds


def test_a_replica_the_quota_refuses_leaves_the_others_serving_and_no_request_waits_for_it(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch, timings=SLOW) as world:
        world.sim.sim.set_quota("gpua5000", 2)  # room for two of the three replicas
        world.apply(credentials_secret())
        world.apply(replicated())
        url = world.start_proxy()
        wait_until(lambda: status(world).get("phase") == "Stopped", 30, "starts at zero")
        out, threads = burst([url], 3 * TARGET)
        wait_until(lambda: int(status(world).get("readyReplicas") or 0) == 2, 90, "two Ready")
        for t in threads:
            t.join(120)
        assert all(isinstance(o, dict) and o.get("done") is True for o in out), out
        st = status(world)
        assert st["phase"] == "Ready" and len(world.instances()) == 2
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
