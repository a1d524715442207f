"""Wake timing split into phases: status.lastWake, status.lifecycle, the operator's histograms and
the standalone proxy's /metrics, with exact timestamps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from crd_schema import validate_remoteollama

from remote_ollama.core.types import Decision, Memory, WakeTiming
from remote_ollama.engine.metrics import LifecycleMetrics
from remote_ollama.kube.operator.status import lifecycle_json, memory_from, status_patch
from remote_ollama.spec.vocabulary import Phase

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WAKE = WakeTiming(
    requested_at=T0,
    running_at=T0 + timedelta(seconds=40),
    ready_at=T0 + timedelta(seconds=95),
    ollama_at=T0 + timedelta(seconds=55),
    models_at=T0 + timedelta(seconds=60),
)


def body(status: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {
            "name": "granite",
            "namespace": "ai",
            "generation": 1,
            "creationTimestamp": "2026-03-01T00:00:00Z",
        },
        "spec": {"credentialsSecretRef": {"name": "c"}},
        "status": status or {},
    }


def applied(patch: dict[str, object]) -> dict[str, object]:
    """The status a merge patch leaves on a fresh object: None means "remove"."""
    return {k: applied(v) if isinstance(v, dict) else v for k, v in patch.items() if v is not None}


def decision(mem: Memory, last_wake: WakeTiming | None) -> Decision:
    return Decision(
        actions=(),
        phase=Phase.READY,
        reason="Ready",
        message="serving",
        conditions=(),
        memory=mem,
        endpoint="https://127.0.10.2:11435",
        recheck_after=300,
        last_wake=last_wake,
    )


def test_last_wake_has_every_milestone_and_passes_the_crd() -> None:
    patch = status_patch(body(), decision(Memory(phase=Phase.READY), WAKE), None, [], T0)
    assert patch["lastWake"] == {
        "requestedAt": "2026-03-02T08:00:00Z",
        "runningAt": "2026-03-02T08:00:40Z",
        "ollamaAt": "2026-03-02T08:00:55Z",
        "modelsAt": "2026-03-02T08:01:00Z",
        "readyAt": "2026-03-02T08:01:35Z",
        "seconds": 95.0,
    }
    validate_remoteollama(
        body(applied(patch))
    )  # the CRD declares every field (a server would prune unknown ones)


def test_wake_milestones_in_progress_survive_an_operator_restart() -> None:
    mem = Memory(
        phase=Phase.STARTING,
        wake_requested_at=T0,
        instance_running_at=T0 + timedelta(seconds=40),
        ollama_at=T0 + timedelta(seconds=55),
        models_at=T0 + timedelta(seconds=60),
        warm_up_at=T0 + timedelta(seconds=61),
    )
    stored = lifecycle_json(mem)
    assert stored["ollamaAt"] == "2026-03-02T08:00:55Z" and stored["warmUpAt"] == "2026-03-02T08:01:01Z"
    validate_remoteollama(body({"phase": "Starting", "lifecycle": applied(stored)}))
    back = memory_from(body({"phase": "Starting", "lifecycle": stored}))
    assert (back.ollama_at, back.models_at, back.warm_up_at) == (mem.ollama_at, mem.models_at, mem.warm_up_at)


def test_operator_histograms_per_phase() -> None:
    metrics = LifecycleMetrics()
    metrics.observe_wake(WAKE)  # one VM: replica 0
    sample = metrics.registry.get_sample_value
    expected = {"to_running": 40.0, "to_ollama": 15.0, "to_models": 5.0, "to_ready": 35.0, "total": 95.0}
    for phase, seconds in expected.items():
        assert sample("remote_ollama_wake_seconds_sum", {"replica": "0", "phase": phase}) == seconds
        assert sample("remote_ollama_wake_seconds_count", {"replica": "0", "phase": phase}) == 1


def test_wake_histograms_are_per_replica_and_the_index_label_stays_bounded() -> None:
    metrics = LifecycleMetrics()
    metrics.observe_wake(WAKE, replica=3)
    metrics.observe_wake(WAKE, replica=64)  # beyond spec.replicas.max's bound: not a new series
    metrics.observe_wake(WAKE, replica=-1)
    sample = metrics.registry.get_sample_value
    assert sample("remote_ollama_wake_seconds_count", {"replica": "3", "phase": "total"}) == 1
    assert sample("remote_ollama_wake_seconds_count", {"replica": "0", "phase": "total"}) is None
    replicas = {
        s.labels["replica"] for m in metrics.registry.collect() for s in m.samples if "replica" in s.labels
    }
    assert replicas == {"3"}


def test_a_wake_with_unknown_milestones_reports_only_whole_phases() -> None:
    metrics = LifecycleMetrics()
    metrics.observe_wake(replace(WAKE, ollama_at=None))
    sample = metrics.registry.get_sample_value
    one = {"replica": "0"}
    assert sample("remote_ollama_wake_seconds_count", one | {"phase": "to_ollama"}) is None
    assert sample("remote_ollama_wake_seconds_count", one | {"phase": "to_models"}) is None
    assert sample("remote_ollama_wake_seconds_sum", one | {"phase": "to_running"}) == 40.0
    assert sample("remote_ollama_wake_seconds_sum", one | {"phase": "to_ready"}) == 35.0


def test_the_replicas_column_and_the_scale_status_for_one_vm() -> None:
    """kubectl get rol shows Replicas ready/desired; status.replicas lists the one VM (issue 19)."""
    ready = status_patch(body(), decision(Memory(phase=Phase.READY), None), None, [], T0)
    assert (ready["readyReplicas"], ready["desiredReplicas"], ready["replicaSummary"]) == (1, 1, "1/1")
    assert ready["replicas"] == [{"index": 0, "phase": "Ready", "inFlight": 0}]
    validate_remoteollama(body(applied(ready)))
    down = replace(decision(Memory(phase=Phase.STOPPED), None), phase=Phase.STOPPED)
    stopped = status_patch(body(), down, None, [], T0)
    assert stopped["replicaSummary"] == "0/0" and stopped["readyReplicas"] == 0
