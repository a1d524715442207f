"""`remote-ollama instance ...` as a subprocess against the Exoscale simulator.

The instance is made the way standalone mode makes it (its labels, its security group, a state
file naming its owner); the CLI finds it through REMOTE_OLLAMA_STATE_FILE.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from subprocess_world import BIN, clean_env

from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud, owner_labels
from remote_ollama.core.cost import DEFAULT_PER_HOUR
from remote_ollama.local.state_file import StandaloneState, StateFile
from remote_ollama.sandbox.exoscale.objects import GONE_STATES
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.names import STANDALONE_CLUSTER

KEY, SECRET = "EXOinstanceclitest", "instance-cli-secret"
OWNER = "standalone-0123abcd"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    timings = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.05)
    with SimulatorThread(keys={KEY: SECRET}, timings=timings, vms=False) as s:
        yield s


@pytest.fixture
def world(sim: SimulatorThread, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A running standalone instance with its group, and the env the CLI needs to find it."""
    cloud = ExoscaleCloud(KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05)
    sg = cloud.security_groups.ensure_security_group(f"remote-ollama-{OWNER}", ["0.0.0.0/0"])
    inst = cloud.create_instance(
        name=f"remote-ollama-{OWNER}",
        instance_type="gpua5000.small",
        template="Linux Ubuntu 22.04 LTS 64-bit",
        disk_size=50,
        user_data_b64=base64.b64encode(b"#cloud-config\n{}\n").decode(),
        security_group_id=sg,
        labels=owner_labels(OWNER, STANDALONE_CLUSTER),
    )
    StateFile(tmp_path / "state.json").save(StandaloneState(owner_id=OWNER))
    env = {
        "EXOSCALE_API_KEY": KEY,
        "EXOSCALE_API_SECRET": SECRET,
        "EXOSCALE_API_ENDPOINT": sim.url,
        "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        "INSTANCE_ID": inst.id,
    }
    yield env
    for other in cloud.find_instances(owner_labels(OWNER, STANDALONE_CLUSTER)):
        cloud.delete_instance(other.id)
    cloud.security_groups.delete_security_group(f"remote-ollama-{OWNER}")


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN, "instance", *args], env=clean_env(env), input=stdin, capture_output=True, text=True, timeout=60
    )


def state_of(sim: SimulatorThread, instance_id: str) -> str | None:
    inst = sim.sim.state.instances.get(instance_id)
    return None if inst is None or inst.state in GONE_STATES else inst.state


def test_status_table_and_json(world: dict[str, str]) -> None:
    iid = world["INSTANCE_ID"]
    res = cli(world, "status")
    assert res.returncode == 0, res.stderr
    header, row = res.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "TYPE", "ZONE", "IP", "AGE"]
    assert row.split()[:4] == [iid, "running", "gpua5000.small", "at-vie-2"]

    res = cli(world, "status", "--output", "json")
    assert res.returncode == 0
    (inst,) = json.loads(res.stdout)["instances"]
    assert (inst["id"], inst["state"], inst["type"], inst["zone"]) == (
        iid,
        "running",
        "gpua5000.small",
        "at-vie-2",
    )
    assert inst["ip"] and inst["age_seconds"] >= 0


def test_describe_reports_everything(world: dict[str, str]) -> None:
    res = cli(world, "describe", "-o", "json")
    assert res.returncode == 0, res.stderr
    info: dict[str, Any] = json.loads(res.stdout)
    assert info["id"] == world["INSTANCE_ID"]
    assert info["type"] == "gpua5000.small" and info["zone"] == "at-vie-2" and info["state"] == "running"
    assert info["ip"] and info["disk_size"] == 50
    assert info["labels"]["remote-ollama-owner"] == OWNER
    (group,) = info["security_groups"]
    assert group["name"] == f"remote-ollama-{OWNER}"
    assert any(r["start-port"] == 11435 and r["network"] == "0.0.0.0/0" for r in group["rules"])
    assert info["hourly_price"] == DEFAULT_PER_HOUR["gpua5000.small"]  # the one price table
    assert info["estimated_cost_so_far"] >= 0
    assert "user-data" not in info["api"]

    text = cli(world, "describe").stdout
    for word in ("gpua5000.small", "at-vie-2", "11435", "remote-ollama-owner=" + OWNER, "estimated cost"):
        assert word in text


def test_stop_then_start(sim: SimulatorThread, world: dict[str, str]) -> None:
    iid = world["INSTANCE_ID"]
    res = cli(world, "stop")
    assert res.returncode == 0, res.stderr
    assert state_of(sim, iid) == "stopped"
    assert f"{iid} is stopped" in res.stdout
    res = cli(world, "start", "-o", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == "running"
    assert state_of(sim, iid) == "running"


def test_destroy_asks_first(sim: SimulatorThread, world: dict[str, str]) -> None:
    iid = world["INSTANCE_ID"]
    res = cli(world, "destroy", stdin="n\n")
    assert res.returncode == 4
    assert "[y/N]" in res.stderr
    assert state_of(sim, iid) == "running"

    res = cli(world, "destroy", stdin="y\n")
    assert res.returncode == 0, res.stderr
    assert state_of(sim, iid) is None
    assert not [g for g in sim.sim.state.security_groups.values() if g.name == f"remote-ollama-{OWNER}"]
    assert cli(world, "status").returncode == 1


def test_destroy_yes_does_not_ask(sim: SimulatorThread, world: dict[str, str]) -> None:
    res = cli(world, "destroy", "--yes", "-o", "json")
    assert res.returncode == 0, res.stderr
    assert "[y/N]" not in res.stderr
    assert json.loads(res.stdout)["state"] == "destroyed"
    assert state_of(sim, world["INSTANCE_ID"]) is None


def test_exit_codes(sim: SimulatorThread, world: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    StateFile(other).save(StandaloneState(owner_id="standalone-nobody"))
    res = cli({**world, "REMOTE_OLLAMA_STATE_FILE": str(other)}, "status")
    assert res.returncode == 1 and "no remote-ollama instance" in res.stderr
    assert cli(world, "describe", "--id", "00000000-0000-0000-0000-000000000000").returncode == 1

    calls = len(sim.sim.calls)
    res = cli({**world, "EXOSCALE_API_KEY": "", "EXOSCALE_ZONE": "nowhere"}, "status")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 2
    assert len(sim.sim.calls) == calls, "bad configuration makes no cloud call"

    res = cli({**world, "EXOSCALE_API_SECRET": "wrong"}, "status")
    assert res.returncode == 3
    assert "wrong" not in res.stderr and SECRET not in res.stderr
