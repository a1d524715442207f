"""status.scaler (issue 19): the scaler's memory written by one operator process and read back by the
next; what a tenant may have written there is clamped, so it can only move this resource's own
scale-down within its own min, max and budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remote_ollama.core.replicas import ScaleInput, ScaleMemory, decide_replicas
from remote_ollama.kube.operator.scaler_memory import MAX_SAMPLES, restored_memory, scaler_status
from remote_ollama.spec.sections import ReplicaPolicy
from remote_ollama.spec.vocabulary import Reason

NOW = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
POLICY = ReplicaPolicy(min=0, max=3, scale_down_after=300)
TARGET = 2


def body(scaler: object) -> dict[str, object]:
    return {"status": {"scaler": scaler}}


def test_what_one_process_writes_the_next_reads_back_exactly() -> None:
    memory = ScaleMemory(
        ((NOW - timedelta(seconds=4.5), 3), (NOW - timedelta(seconds=1), 0)), NOW - timedelta(seconds=200)
    )
    assert restored_memory(body(scaler_status(memory)), POLICY, TARGET, NOW) == memory
    # nothing kept: nothing restored, and a removed belowSince is written as null (a merge patch)
    assert scaler_status(ScaleMemory())["belowSince"] is None
    assert restored_memory({"status": {}}, POLICY, TARGET, NOW) == ScaleMemory()


def test_a_restored_below_since_keeps_the_first_deadline() -> None:
    """The decision after a restart is the one the old process would have made."""
    since = NOW - timedelta(seconds=POLICY.scale_down_after + 1)
    memory = restored_memory(body(scaler_status(ScaleMemory((), since))), POLICY, TARGET, NOW)
    decision = decide_replicas(ScaleInput(POLICY, TARGET, NOW, frozenset({0, 1}), floor=1, memory=memory))
    assert (decision.reason, decision.stop) == (Reason.SCALING_DOWN, (1,))


def test_what_a_tenant_forges_is_clamped() -> None:
    forged = {
        "belowSince": "2999-01-01T00:00:00Z",  # in the future: counts as now
        "samples": [
            {"at": "2026-03-01T11:00:00Z", "load": 50},  # outside the window
            {"at": "2026-03-01T12:00:00Z", "load": 10**9},  # at most max x target
            {"at": "2026-03-01T12:00:30Z", "load": 5},  # in the future
            {"at": "yesterday", "load": 1},
            {"at": "2026-03-01T11:59:59Z", "load": -4},
            {"at": "2026-03-01T11:59:59Z", "load": True},
            "junk",
        ],
    }
    memory = restored_memory(body(forged), POLICY, TARGET, NOW)
    assert memory == ScaleMemory(((datetime(2026, 3, 1, 12, tzinfo=UTC), POLICY.max * TARGET),), NOW)
    for junk in ("x", 7, [], {"belowSince": 5, "samples": {"at": 1}}):
        assert restored_memory(body(junk), POLICY, TARGET, NOW) == ScaleMemory()


def test_at_most_the_crd_bound_of_samples_is_written_or_read() -> None:
    many = tuple((NOW - timedelta(milliseconds=n), 1) for n in range(200, 0, -1))
    written = scaler_status(ScaleMemory(many))
    assert len(written["samples"]) == MAX_SAMPLES
    assert written["samples"][-1]["at"].endswith("12:00:00.249000Z")  # the newest kept, to the microsecond
    doubled = {"samples": written["samples"] * 3}
    assert len(restored_memory(body(doubled), POLICY, TARGET, NOW).samples) == MAX_SAMPLES
