"""The judge of the simulator's traffic (tests/exoscale_openapi.py, applied to every test by
tests/conftest.py) catches what the API's own description forbids."""

from __future__ import annotations

from typing import Any

from exoscale_openapi import check_exchange

from remote_ollama.sandbox.exoscale.catalog import Catalog
from remote_ollama.sandbox.exoscale.state import Instance


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
