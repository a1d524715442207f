"""`kubectl remoteollama status`: the idle countdown is the lifecycle's, right after a wake and
inside a keep-warm window (it said 0s in both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remote_ollama.kube.control import describe
from remote_ollama.kube.operator.status import rfc3339

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Zurich


def resource(spec: dict[str, object], *, last_activity: datetime, ready_at: datetime) -> dict[str, object]:
    return {
        "metadata": {
            "name": "granite",
            "namespace": "ai",
            "creationTimestamp": rfc3339(NOW - timedelta(days=2)),
            "annotations": {"remoteollama.dev/last-activity": rfc3339(last_activity)},
        },
        "spec": {"credentialsSecretRef": {"name": "c"}, **spec},
        "status": {"phase": "Ready", "lifecycle": {"readyAt": rfc3339(ready_at)}},
    }


def idle_line(obj: dict[str, object]) -> str:
    return next(line for line in describe(obj, NOW) if line.strip().startswith("idle:"))


def test_countdown_right_after_a_wake_counts_from_readiness() -> None:
    # last used two hours ago, stopped, woken: Ready 10 s ago
    obj = resource(
        {"idle": {"stopAfter": "30m"}},
        last_activity=NOW - timedelta(hours=2),
        ready_at=NOW - timedelta(seconds=10),
    )
    assert "scales to zero in 29m50s" in idle_line(obj)


def test_inside_a_keep_warm_window_it_says_so() -> None:
    window = {"days": ["Mon"], "start": "08:00", "end": "18:00", "timeZone": "Europe/Zurich"}
    obj = resource(
        {"idle": {"stopAfter": "30m"}, "schedule": [window]},
        last_activity=NOW - timedelta(hours=2),
        ready_at=NOW - timedelta(hours=3),
    )
    line = idle_line(obj)
    assert "kept warm by spec.schedule until 2026-11-23T17:00:00Z" in line and "30m" in line
