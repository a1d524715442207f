"""`remote-ollama sandbox` exactly as the README runs it, driven by the official `ollama` client.

Cold start (the first request wakes a new simulated VM and streams an answer), scale to zero after
the idle time, wake of the same instance on the next request, and a clean exit on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ollama
import pytest
from subprocess_world import Program, sandbox_program
from waiting import LIFECYCLE

from remote_ollama.sandbox.exoscale.wire import RECORD_ENV

ROOT = Path(__file__).resolve().parents[1]
MODEL = "granite3.1-dense:8b"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Program]:
    prog = sandbox_program(tmp_path, "--idle", "3s")
    try:
        yield prog
    finally:
        prog.kill()


def test_the_readme_documents_the_command_and_flags_used_here() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "remote-ollama sandbox" in readme
    for flag in ("--port", "--idle", "--boot", "--max-replicas", "--num-parallel"):
        assert flag in readme


def generate(url: str, prompt: str) -> str:
    """Stream a generation with the official client; the concatenated answer."""
    client = ollama.Client(host=url, timeout=60)
    chunks = list(client.generate(model=MODEL, prompt=prompt, stream=True))
    assert len(chunks) > 1, "the answer should arrive as a stream of chunks"
    assert chunks[-1].done
    return "".join(c.response for c in chunks)


def test_cold_start_scale_to_zero_wake_and_clean_exit(sandbox: Program) -> None:
    first = sandbox.wait_listening()
    out = sandbox.output()
    assert "SIMULATED" in out
    assert first["provisioning_status"] == "idle"
    assert first["instance_status"] == "none"

    # Cold start: the request is held while the simulated VM is created and boots.
    assert generate(sandbox.url, "hi").strip()
    ready = sandbox.wait_status(lambda s: s["provisioning_status"] == "ready", LIFECYCLE, "ready")
    assert ready["instance_status"] == "running"
    remote_url = ready["remote_url"]
    assert remote_url and remote_url.startswith("https://127.")
    created = re.findall(r"creating instance \S+ \(([0-9a-f-]{36})\)", sandbox.output())
    assert len(created) == 1, sandbox.output()
    # the VM's setup steps, as they happened (the VM's status document, read by the lifecycle)
    steps = re.findall(r"setup step (\S+) \(running\)", sandbox.output())
    assert {"driver", "image", "model:granite3.1-dense:8b"} <= set(steps), sandbox.output()
    assert "setup done" in sandbox.output()

    # Idle: after 3 s without a request the VM is stopped (scale to zero), not destroyed.
    down = sandbox.wait_status(
        lambda s: s["provisioning_status"] == "idle" and s["instance_status"] == "stopped",
        20,
        "scale to zero",
    )
    assert down["idle_timeout"] == 3
    assert "scaling to zero" in sandbox.output()

    # Wake: the same instance starts again and answers; no second instance is created.
    assert generate(sandbox.url, "again").strip()
    woke = sandbox.wait_status(lambda s: s["provisioning_status"] == "ready", LIFECYCLE, "ready again")
    assert woke["remote_url"] == remote_url
    out = sandbox.output()
    assert len(re.findall(r"creating instance \S+ \(", out)) == 1
    assert re.search(rf"start instance {created[0]}\b", out), out

    # SIGTERM: a clean, bounded exit.
    assert sandbox.terminate(timeout=20) == 0
    assert "Traceback" not in sandbox.output()

    # the sandbox's own simulator recorded its exchanges, which conftest.py holds to the API's description
    recorded = [
        json.loads(line)["operation"] for line in Path(os.environ[RECORD_ENV]).read_text().splitlines()
    ]
    for operation in (
        "create-instance",
        "stop-instance",
        "start-instance",
        "delete-instance",
        "get-operation",
    ):
        assert operation in recorded, recorded


def test_a_newcomers_ollama_pull_works_in_the_sandbox(sandbox: Program) -> None:
    """The sandbox allows model management as standalone does: `ollama pull` wakes the VM and pulls."""
    sandbox.wait_listening()
    client = ollama.Client(host=sandbox.url, timeout=60)
    assert client.pull("llama3.2:1b").status == "success"
    assert "llama3.2:1b" in [m.model for m in client.list().models]


SCALE_OUT = ["--max-replicas", "3", "--num-parallel", "2", "--token-delay", "0.3"]


def test_max_replicas_scales_out_under_a_burst_and_every_stream_completes(tmp_path: Path) -> None:
    """`remote-ollama sandbox --max-replicas 3`: six long streams on VMs that serve two at once
    bring up more than one simulated VM, and every stream completes."""
    prog = sandbox_program(tmp_path, "--idle", "3s", *SCALE_OUT)
    try:
        prog.wait_listening()
        assert "up to 3 VMs: one more per 2 requests in flight" in prog.output()
        with ThreadPoolExecutor(6) as pool:
            answers = pool.map(lambda i: generate(prog.url, f"question {i}"), range(6))
            peak = prog.wait_status(lambda s: s["ready_replicas"] >= 2, 60, "two replicas Ready")
            assert all(a.strip() for a in answers)
        assert peak["desired_replicas"] >= 2 and len(peak["replicas"]) == 3
        assert prog.terminate(timeout=30) == 0
    finally:
        prog.kill()
