"""Standalone as a user runs it: loud when open to the network, keys when asked, loopback guarded."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port
from subprocess_world import Program, clean_env
from waiting import LIFECYCLE, wait_until

from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings

KEY, SECRET = "EXOstandalonesec", "standalone-sec-secret"
CLIENT_KEY = "laptop-key-0123456789abcdef"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(keys={KEY: SECRET}, timings=SimTimings(boot=1.0, operation=0.05)) as s:
        yield s


def start(sim: SimulatorThread, tmp_path: Path, host: str, **env: str) -> Program:
    base = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        "REMOTE_OLLAMA_ON_EXIT": "keep",
        **env,
    }
    port = free_port()
    prog = Program(
        ["standalone", "--host", host, "--port", str(port)], clean_env(base), tmp_path / "log", port
    )
    wait_until(lambda: get(prog, "/healthz")[0] == 200, LIFECYCLE, "listening")
    return prog


def get(prog: Program, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", prog.port or 0, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def test_open_to_the_network_without_keys_warns_loudly(sim: SimulatorThread, tmp_path: Path) -> None:
    prog = start(sim, tmp_path, "0.0.0.0")
    try:
        assert get(prog, "/api/tags")[0] != 401
        out = prog.output()
        assert "WARNING" in out and "REMOTE_OLLAMA_CLIENT_KEYS" in out, out
    finally:
        prog.kill()


def test_client_keys_turn_auth_on(sim: SimulatorThread, tmp_path: Path) -> None:
    prog = start(sim, tmp_path, "0.0.0.0", REMOTE_OLLAMA_CLIENT_KEYS=f"other-key-1234567890, {CLIENT_KEY}")
    try:
        assert get(prog, "/status")[0] == 401
        assert get(prog, "/api/tags")[0] == 401
        code, body = get(prog, "/status", {"Authorization": f"Bearer {CLIENT_KEY}"})
        assert code == 200 and b"remote-ollama" in body
        assert "WARNING" not in prog.output()
        assert CLIENT_KEY not in prog.output()
    finally:
        prog.kill()


def test_on_loopback_a_rebinding_host_is_refused(sim: SimulatorThread, tmp_path: Path) -> None:
    prog = start(sim, tmp_path, "127.0.0.1")
    try:
        assert get(prog, "/status", {"Host": "evil.example"})[0] == 403
        assert get(prog, "/api/tags", {"Host": "attacker.example:11434"})[0] == 403
        assert get(prog, "/status", {"Host": f"localhost:{prog.port}"})[0] == 200
        assert "WARNING" not in prog.output()
    finally:
        prog.kill()
