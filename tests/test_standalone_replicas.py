"""Standalone scale-out (issue 19) as a user runs it: `remote-ollama standalone` with
REMOTE_OLLAMA_MAX_REPLICAS against the Exoscale simulator, whose VMs serve OLLAMA_NUM_PARALLEL
streams at a fixed token rate and queue the rest, so one VM saturates for real."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from subprocess_world import Program, standalone_program
from waiting import wait_until
from wake_metrics import wakes_by_replica

from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings

KEY, SECRET = "EXOreplicastest", "replicas-test-secret"
MODEL = "granite3.1-dense:8b"
TARGET = 2  # OLLAMA_NUM_PARALLEL, and so targetInFlight
SCALE_DOWN_AFTER = 3.0
IDLE = 8.0  # EXOSCALE_IDLE_TIMEOUT: the last replica stops after it, as one VM does


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    # 0.4 s a token: a reply of 8-16 tokens streams for 3-6 s, long enough to saturate a VM
    timings = SimTimings(boot=1.0, stop=0.3, destroy=0.3, operation=0.05, token=0.4)
    with SimulatorThread(keys={KEY: SECRET}, timings=timings) as s:
        yield s


def running(sim: SimulatorThread) -> list[Any]:
    return [i for i in list(sim.sim.state.instances.values()) if i.state == "running"]


def standalone(sim: SimulatorThread, tmp_path: Path, port: int, **extra: str) -> Program:
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "EXOSCALE_IDLE_TIMEOUT": f"{IDLE:g}s",
        "OLLAMA_MODEL": MODEL,
        "OLLAMA_ENV": f"OLLAMA_NUM_PARALLEL={TARGET}",
        "REMOTE_OLLAMA_MAX_REPLICAS": "3",
        "REMOTE_OLLAMA_SCALE_DOWN_AFTER": f"{SCALE_DOWN_AFTER:g}s",
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state" / "state.json"),
        "REMOTE_OLLAMA_ON_EXIT": "destroy",
        "REMOTE_OLLAMA_EXIT_TIMEOUT": "15",
    } | extra
    return standalone_program(tmp_path, env, port)


def stream(prog: Program, prompt: str) -> list[dict[str, Any]]:
    body = json.dumps({"model": MODEL, "prompt": prompt}).encode()
    req = urllib.request.Request(prog.url + "/api/generate", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=180) as resp:
        assert resp.status == 200
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def test_a_burst_from_zero_scales_out_every_stream_completes_and_idle_scales_back_one_at_a_time(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    prog = standalone(sim, tmp_path, free_port())
    try:
        assert prog.wait_listening()["provisioning_status"] == "idle"
        assert running(sim) == []
        results: dict[int, list[dict[str, Any]] | BaseException] = {}

        def one(i: int) -> None:
            try:
                results[i] = stream(prog, f"question {i}")
            except BaseException as exc:  # reported below
                results[i] = exc

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(3 * TARGET)]
        for t in threads:
            t.start()
        peak = prog.wait_status(lambda s: s.get("ready_replicas", 0) >= 2, 120, "two replicas Ready")
        assert len(peak["replicas"]) == 3
        ready = [r for r in peak["replicas"] if r["phase"] == "Ready"]
        assert all(r["remote_url"].startswith("https://127.") for r in ready), peak
        assert all(MODEL in r["loaded_models"] for r in ready), peak  # warmed up before Ready
        for t in threads:
            t.join(180)
        assert sorted(results) == list(range(3 * TARGET))
        for i, lines in results.items():
            assert isinstance(lines, list), f"stream {i}: {lines!r}"
            assert lines[-1]["done"] is True and "".join(x.get("response", "") for x in lines[:-1]), i
        assert len(running(sim)) >= 2
        served = [sim.sim.vm(i.id) for i in running(sim)]
        assert sum(1 for vm in served if vm is not None) >= 2
        # /metrics: the wake histograms per replica, replica 0's and replica 1's wakes apart
        woken = wait_until(lambda: both_woke(prog), 30, "wakes of replicas 0 and 1 on /metrics")
        assert woken["0"] == 1 and woken["1"] == 1, woken

        # idle: the replicas stop one at a time, scaleDownAfter apart; the last one after
        # EXOSCALE_IDLE_TIMEOUT without a request, as one VM does
        counts: list[tuple[float, int]] = [(time.monotonic(), len(running(sim)))]

        def settled() -> bool:
            n = len(running(sim))
            if n != counts[-1][1]:
                counts.append((time.monotonic(), n))
            return n == 0

        wait_until(settled, 120, "every replica stopped", interval=0.05)
        drops = [(t, a - b) for (_, a), (t, b) in itertools.pairwise(counts)]
        assert all(step == 1 for _, step in drops), counts
        times = [t for t, _ in drops]
        assert all(b - a >= SCALE_DOWN_AFTER - 0.5 for a, b in itertools.pairwise(times)), counts
        assert [b for (_, b) in counts][-3:] == [2, 1, 0], counts
        status = prog.wait_status(lambda s: s["desired_replicas"] == 0, 30, "none desired")
        assert status["ready_replicas"] == 0 and status["provisioning_status"] == "idle"

        def all_stopped() -> str:
            """/metrics once its gauges show the three stopped (they follow the next scale round)."""
            with urllib.request.urlopen(prog.url + "/metrics", timeout=10) as resp:
                text = str(resp.read().decode())
            return text if 'remote_ollama_replicas{state="stopped"} 3.0' in text else ""

        metrics = wait_until(all_stopped, 30, "the replica gauges at 3 stopped")
        assert "remote_ollama_desired_replicas 0.0" in metrics
        assert prog.terminate(timeout=60) == 0
    finally:
        prog.kill()


def both_woke(prog: Program) -> dict[str, float] | None:
    with urllib.request.urlopen(prog.url + "/metrics", timeout=10) as resp:
        woken = wakes_by_replica(resp.read().decode())
    return woken if {"0", "1"} <= woken.keys() else None


def test_a_refusal_no_wait_can_fix_answers_held_requests_at_once(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    """No GPU quota: the held request is answered as one VM's would be (503, the reason, no
    provisioning), not after the 10-minute hold."""
    sim.sim.exceed_quota("gpua5000")
    prog = standalone(sim, tmp_path, free_port(), REMOTE_OLLAMA_HOLD_TIMEOUT="10m")
    try:
        prog.wait_listening()
        began = time.monotonic()
        code, _, body = prog.request("POST", "/api/generate", {"model": MODEL, "prompt": "hi"}, 120)
        assert code == 503 and body["provisioning"] is False and "quota" in body["error"].lower(), body
        assert time.monotonic() - began < 120
        assert running(sim) == []
        assert prog.terminate(timeout=60) == 0
    finally:
        prog.kill()
