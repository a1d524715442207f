"""The judge of the simulator's traffic (tests/exoscale_openapi.py, applied to every test by
tests/conftest.py) catches what the API's own description forbids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from exoscale_openapi import check_exchange, described_statuses, documented_preconditions, recorded_problems

from remote_ollama.sandbox.exoscale.catalog import Catalog
from remote_ollama.sandbox.exoscale.handlers import HANDLERS
from remote_ollama.sandbox.exoscale.objects import Instance
from remote_ollama.sandbox.exoscale.wire import RECORD_ENV


def _instance_answer(**changes: Any) -> dict[str, Any]:
    itype = Catalog().instance_types[0]
    inst = Instance("0b1e6d4a-2f3c-4d5e-8f90-123456789abc", "vm", itype, "6d1f7c2a-0000-4000-8000-000000000001",
                    50, "running", "2026-12-07T10:00:00Z", public_ip="127.0.10.1")  # fmt: skip
    return {**inst.to_api(), **changes}


def test_a_simulator_answer_as_described_passes() -> None:
    assert check_exchange("get-instance", None, 200, _instance_answer()) == []


def test_an_invented_field_an_unknown_state_or_a_wrong_type_fails() -> None:
    (invented,) = check_exchange("get-instance", None, 200, _instance_answer(**{"gpu-temperature": 71}))
    assert "gpu-temperature" in invented
    (state,) = check_exchange("get-instance", None, 200, _instance_answer(state="exploding"))
    assert "state" in state and "exploding" in state
    (size,) = check_exchange("get-instance", None, 200, _instance_answer(**{"disk-size": "50"}))
    assert "disk-size" in size


def test_a_request_the_api_would_refuse_fails() -> None:
    body = {
        "name": "vm",
        "instance-type": {"id": "0b1e6d4a-2f3c-4d5e-8f90-123456789abc"},
        "template": {"id": "6d1f7c2a-0000-4000-8000-000000000001"},
        "disk-size": 50,
        "user-data": "A" * 32768,
    }
    accepted = {"id": "0b1e6d4a-2f3c-4d5e-8f90-123456789abc", "state": "pending"}
    assert check_exchange("create-instance", body, 200, accepted) == []
    (too_long,) = check_exchange("create-instance", {**body, "user-data": "A" * 32769}, 200, accepted)
    assert "user-data" in too_long
    (unknown,) = check_exchange("create-instance", {**body, "gpu-count": 2}, 200, accepted)
    assert "gpu-count" in unknown
    # refused, it is the simulator doing the API's job (a test of the refusal)
    assert check_exchange("create-instance", {**body, "gpu-count": 2}, 400, {"message": "no"}) == []
    assert check_exchange("no-such-operation", None, 200, {}) != []


SUBPROCESS_SIMULATOR = """
import asyncio, requests
from exoscale_auth import ExoscaleV2Auth
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator

async def main():
    async with ExoscaleSimulator(keys={"EXOk": "s"}, vms=False) as sim:
        body = {"name": "g", "colour": "red"}  # a field the API does not have, which the simulator takes
        url = sim.zone_url() + "/security-group"
        post = lambda: requests.post(url, json=body, auth=ExoscaleV2Auth("EXOk", "s"), timeout=30)
        print((await asyncio.to_thread(post)).status_code)

asyncio.run(main())
"""


def test_a_simulator_in_another_process_has_its_traffic_judged_too(tmp_path: Path) -> None:
    record = tmp_path / "exchanges.jsonl"
    env = {**os.environ, RECORD_ENV: str(record)}
    out = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_SIMULATOR], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "200", out.stderr
    assert record.stat().st_mode & 0o077 == 0  # it holds user-data: the owner's only
    (invented,) = recorded_problems(record)
    assert "create-security-group request" in invented and "colour" in invented


def test_error_answers_are_judged_where_the_description_gives_their_shape() -> None:
    """The compute operations describe no error answer (the SDK reads an error's text only); where
    the description gives one (RFC 9457 problem details), an answer off that shape fails."""
    assert described_statuses("create-instance") == ["200"]
    assert check_exchange("create-instance", None, 400, {"message": "disk-size: required"}) == []
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such deployment"}
    assert check_exchange("get-deployment", None, 404, problem) == []
    shape = check_exchange("get-deployment", None, 404, {"message": "no such deployment"})
    assert any("get-deployment 404 answer" in p and "'message'" in p for p in shape), shape
    assert any("'detail' is a required property" in p for p in shape), shape


def test_the_description_is_silent_on_the_instance_transitions_the_simulator_enforces() -> None:
    """Which state allows start, stop, reboot or delete is not in the description (nor in
    python-exoscale): the simulator keeps its own rules (start: stopped; stop and reboot: running;
    delete: any state, also while starting), pinned in tests/simulator/test_simulator_api.py. The day the
    description states a precondition for an operation the simulator answers, this fails."""
    assert documented_preconditions("revert-instance-to-snapshot") == [
        "The Compute instance must be previously stopped."
    ]  # the check finds one where there is one
    stated = {op: documented_preconditions(op) for op in sorted(HANDLERS)}
    # the one the description states is kept by the simulator as stated (sandbox/exoscale/volumes.py)
    assert {op: found for op, found in stated.items() if found} == {
        "resize-block-storage-volume": ["Note: the volume can only grow, cannot be shrunk."]
    }
