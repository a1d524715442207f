"""`remote-ollama standalone` as a subprocess against a separately started Exoscale simulator.

The process is configured only by its environment variables (docs/design.md section 4), keeps
its state in a temporary REMOTE_OLLAMA_STATE_FILE, and is observed from outside: the simulator's
instances and call log, `/status`, its exit code. Unit tests for the state file and the config
parser follow.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from subprocess_world import Program, standalone_program
from waiting import LIFECYCLE, wait_until

from remote_ollama.core.types import Memory
from remote_ollama.local.settings import ConfigError, StandaloneConfig
from remote_ollama.local.state_file import StandaloneState, StateFile
from remote_ollama.sandbox.exoscale.objects import GONE_STATES
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.vocabulary import Phase

KEY, SECRET = "EXOstandalonetest", "standalone-test-secret"
MODEL = "granite3.1-dense:8b"
SEED_STATUS_FIELDS = {
    "service",
    "provisioning_status",
    "instance_status",
    "remote_url",
    "zone",
    "instance_type",
    "ollama_model",
    "idle_timeout",
}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    timings = SimTimings(boot=1.5, stop=0.3, destroy=0.3, operation=0.05, token=0.002)
    with SimulatorThread(keys={KEY: SECRET}, timings=timings) as s:
        yield s


def live_instances(sim: SimulatorThread) -> list[Any]:
    return [i for i in list(sim.sim.state.instances.values()) if i.state not in GONE_STATES]


def standalone(sim: SimulatorThread, tmp_path: Path, port: int, **env: str) -> Program:
    base = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "EXOSCALE_INSTANCE_TYPE": "a5000.small",  # the alias
        "EXOSCALE_IDLE_TIMEOUT": "10m",
        "OLLAMA_MODEL": MODEL,
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state" / "state.json"),
        "REMOTE_OLLAMA_EXIT_TIMEOUT": "15",
    }
    base.update(env)
    return standalone_program(tmp_path, base, port)


def generate(prog: Program, timeout: float = 60) -> tuple[int, dict[str, str], Any]:
    return prog.request("POST", "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}, timeout)


def test_sigkill_mid_provision_then_restart_adopts_the_one_instance(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    # A boot long enough that the kill lands while the VM starts, even on a loaded machine.
    sim.sim.state.timings = dataclasses.replace(sim.sim.state.timings, boot=6.0)
    port = free_port()
    first = standalone(sim, tmp_path, port)
    try:
        assert first.wait_listening()["provisioning_status"] == "idle"
        # A held request wakes it; it dies with the process, which is the point.
        threading.Thread(target=generate, args=(first, 30), daemon=True).start()
        wait_until(lambda: sim.sim.call_count("create-instance") == 1, LIFECYCLE, "the create call")
        created = wait_until(lambda: live_instances(sim), LIFECYCLE, "the instance to exist")
        assert created[0].state == "starting", "killed before the VM was Ready"
        first.proc.kill()
        first.proc.wait(5)
    finally:
        first.kill()

    second = standalone(sim, tmp_path, port, REMOTE_OLLAMA_ON_EXIT="stop")
    try:
        second.wait_listening()
        code, _, body = generate(second)
        assert code == 200, body
        assert body["done"] is True and body["response"]
        instances = live_instances(sim)
        assert [i.id for i in instances] == [created[0].id]
        assert sim.sim.call_count("create-instance") == 1

        status = second.wait_status(lambda s: s["provisioning_status"] == "ready", LIFECYCLE, "ready")
        assert set(status) >= SEED_STATUS_FIELDS
        assert status["service"] == "remote-ollama"
        assert status["instance_status"] == "running"
        assert status["remote_url"] == f"https://{instances[0].public_ip}:11435"
        assert status["zone"] == "at-vie-2"
        assert status["instance_type"] == "gpua5000.small"
        assert status["ollama_model"] == MODEL
        assert status["idle_timeout"] == 600
        assert "error" not in status

        # REMOTE_OLLAMA_ON_EXIT=stop: SIGTERM exits cleanly and leaves the instance stopped.
        assert second.terminate(timeout=25) == 0
    finally:
        second.kill()
    wait_until(lambda: instances[0].state == "stopped", LIFECYCLE, "the instance to be stopped")
    assert [i.id for i in live_instances(sim)] == [created[0].id]


def test_first_request_503_answers_at_once_and_on_exit_destroy_leaves_no_instance(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    prog = standalone(
        sim, tmp_path, free_port(), REMOTE_OLLAMA_FIRST_REQUEST="503", REMOTE_OLLAMA_ON_EXIT="destroy"
    )
    try:
        prog.wait_listening()
        started = time.monotonic()
        code, headers, body = generate(prog)
        assert time.monotonic() - started < 3, "the 503 must not wait for the VM"
        assert code == 503
        assert int(headers["Retry-After"]) > 0
        assert body["provisioning"] is True
        assert body["error"] and body["status"]
        status = prog.wait_status(
            lambda s: s["provisioning_status"] != "idle", LIFECYCLE, "the wake to begin"
        )
        assert status["provisioning_status"] in ("provisioning", "ready")
        # SIGTERM as soon as the VM exists, before the loop has even looked at it again.
        # the call is counted when it arrives, the instance exists once the simulator has answered it
        wait_until(lambda: len(live_instances(sim)) == 1, LIFECYCLE, "the created instance")
        assert sim.sim.call_count("create-instance") == 1
        assert prog.terminate(timeout=25) == 0
    finally:
        prog.kill()
    wait_until(lambda: not live_instances(sim), LIFECYCLE, "no instance left")
    assert sim.sim.state.security_groups == {}, "destroy leaves no security group either"


def test_a_cloud_error_shows_in_status(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.sim.exceed_quota("gpua5000")
    prog = standalone(sim, tmp_path, free_port(), REMOTE_OLLAMA_FIRST_REQUEST="503")
    try:
        prog.wait_listening()
        assert generate(prog)[0] == 503
        status = prog.wait_status(lambda s: s["provisioning_status"] == "error", LIFECYCLE, "error status")
        assert "quota" in status["error"].lower()
        assert not live_instances(sim)
        assert prog.terminate(timeout=25) == 0
    finally:
        prog.kill()


def test_bad_configuration_exits_with_one_line_per_problem_before_any_cloud_call(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    prog = standalone(
        sim,
        tmp_path,
        free_port(),
        EXOSCALE_API_KEY="",
        EXOSCALE_ZONE="mars-north-1",
        EXOSCALE_INSTANCE_TYPE="gpua9000.small",
        EXOSCALE_IDLE_TIMEOUT="soon",
    )
    code = prog.wait(timeout=20)
    assert code != 0
    lines = [line for line in prog.output().splitlines() if line.strip()]
    assert len(lines) == 4, lines
    for name in ("EXOSCALE_API_KEY", "EXOSCALE_ZONE", "EXOSCALE_INSTANCE_TYPE", "EXOSCALE_IDLE_TIMEOUT"):
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert "Traceback" not in prog.output()
    assert sim.sim.calls == []
    assert not (tmp_path / "state").exists()


# -- units: the state file ----------------------------------------------------------------------------


def test_state_file_round_trips(tmp_path: Path) -> None:
    files = StateFile(tmp_path / "s.json")
    state = StandaloneState(owner_id="standalone-abc", credentials={"api-key": "k"})
    state.memory = Memory(instance_id="i-1", phase=Phase.READY)
    files.save(state)
    loaded = files.load()
    assert (loaded.owner_id, loaded.credentials, loaded.memory) == (
        "standalone-abc",
        {"api-key": "k"},
        state.memory,
    )
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o600


def test_a_crash_between_write_and_rename_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.json"
    files = StateFile(path)
    old = StandaloneState(owner_id="standalone-old")
    old.memory = Memory(instance_id="i-old", phase=Phase.STOPPED)
    files.save(old)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise SystemExit("power cut")  # BaseException, as an abrupt end would be

    monkeypatch.setattr(os, "replace", crash)
    new = StandaloneState(owner_id="standalone-old")
    new.memory = Memory(instance_id="i-new", phase=Phase.READY)
    with pytest.raises(SystemExit):
        files.save(new)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files.load().memory.instance_id == "i-old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_a_missing_state_file_is_a_fresh_owner(tmp_path: Path) -> None:
    a, b = StateFile(tmp_path / "none.json").load(), StateFile(tmp_path / "none.json").load()
    assert a.owner_id.startswith("standalone-") and a.owner_id != b.owner_id
    assert a.credentials is None and a.memory.instance_id is None


# -- units: configuration -----------------------------------------------------------------------------


def test_config_defaults_and_the_seed_alias() -> None:
    cfg = StandaloneConfig.from_env(
        {"EXOSCALE_API_KEY": "EXOk", "EXOSCALE_API_SECRET": "s", "EXOSCALE_INSTANCE_TYPE": "a5000.small"}
    )
    assert cfg.spec.instance_type.name == "gpua5000.small"
    assert cfg.spec.zone == "at-vie-2"
    assert cfg.spec.template == "Linux Ubuntu 22.04 LTS 64-bit"
    assert cfg.spec.disk_size == 50
    assert cfg.spec.idle.stop_after == 1800
    assert cfg.spec.models == (MODEL,)
    assert cfg.on_exit == "stop" and cfg.immediate_503 is False and cfg.ollama_key is None
    assert "EXOk" not in repr(cfg)


def test_config_values() -> None:
    cfg = StandaloneConfig.from_env(
        {
            "EXOSCALE_API_KEY": "EXOk",
            "EXOSCALE_API_SECRET": "s",
            "EXOSCALE_ZONE": "ch-gva-2",
            "EXOSCALE_IDLE_TIMEOUT": "1h30m",
            "OLLAMA_MODEL": "a:1, b:2",
            "EXOSCALE_OLLAMA_KEY": "vm-key-0123456789",
            "REMOTE_OLLAMA_FIRST_REQUEST": "503",
            "REMOTE_OLLAMA_ON_EXIT": "destroy",
            "EXOSCALE_API_ENDPOINT": "http://127.0.0.1:9/v2",
        }
    )
    assert cfg.spec.zone == "ch-gva-2"
    assert cfg.spec.idle.stop_after == 5400
    assert cfg.spec.models == ("a:1", "b:2")
    assert (cfg.ollama_key, cfg.immediate_503, cfg.on_exit) == ("vm-key-0123456789", True, "destroy")
    assert cfg.endpoint == "http://127.0.0.1:9/v2"


def test_config_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        StandaloneConfig.from_env(
            {"EXOSCALE_ZONE": "nowhere", "EXOSCALE_INSTANCE_TYPE": "gpu", "EXOSCALE_IDLE_TIMEOUT": "-"}
        )
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 5, text
    for name in (
        "EXOSCALE_API_KEY",
        "EXOSCALE_API_SECRET",
        "EXOSCALE_ZONE",
        "EXOSCALE_INSTANCE_TYPE",
        "EXOSCALE_IDLE_TIMEOUT",
    ):
        assert name in text


def test_a_vm_key_nginx_could_not_match_is_a_config_problem() -> None:
    from remote_ollama.local.settings import VM_KEY_RE
    from remote_ollama.vm import cloudinit

    assert VM_KEY_RE.pattern == cloudinit._API_KEY_RE.pattern
    base = {"EXOSCALE_API_KEY": "EXOk", "EXOSCALE_API_SECRET": "s"}
    with pytest.raises(ConfigError) as err:
        StandaloneConfig.from_env({**base, "EXOSCALE_OLLAMA_KEY": "short"})
    assert err.value.problems == [next(p for p in err.value.problems if "EXOSCALE_OLLAMA_KEY" in p)]
    assert StandaloneConfig.from_env({**base, "EXOSCALE_OLLAMA_KEY": "k" * 16}).ollama_key == "k" * 16


def test_sigterm_finishes_the_stream_in_flight_then_stops_the_vm(tmp_path: Path) -> None:
    """A SIGTERM mid-answer: the client still gets the whole stream, then the VM is stopped (policy)."""
    import http.client
    import json
    import signal

    timings = SimTimings(boot=0.3, stop=0.3, destroy=0.3, operation=0.05, token=0.1)
    with SimulatorThread(keys={KEY: SECRET}, timings=timings) as s:
        port = free_port()
        prog = standalone(s, tmp_path, port, REMOTE_OLLAMA_ON_EXIT="stop")
        try:
            prog.wait_listening()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(
                "POST",
                "/api/generate",
                json.dumps({"model": MODEL, "prompt": "tell me more"}),
                {"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            assert resp.status == 200
            first = json.loads(resp.readline())
            assert first["done"] is False
            prog.proc.send_signal(signal.SIGTERM)  # mid-stream
            lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
            assert lines and lines[-1]["done"] is True, lines[-3:]
            assert prog.wait(30) == 0
            assert [i.state for i in live_instances(s)] == ["stopped"] or wait_until(
                lambda: [i.state for i in live_instances(s)] == ["stopped"], 10, "instance stopped"
            )
        finally:
            prog.kill()
