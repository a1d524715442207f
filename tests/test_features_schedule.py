"""End to end: a keep-warm window wakes the VM without a request and holds off idle scale-down.

The operator's clock is one the test moves; the cluster, kopf and the simulator are real.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, wait_until

from remote_ollama.kube.operator.context import OPERATOR

KICKS = count(1)


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def next_monday_0600() -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC)


def advance(world: OperatorWorld, clock: FakeClock, to: datetime) -> None:
    """Move the clock and make the operator look now (a wake-requested stamp from 2000: no activity)."""
    clock.now = to
    stamp = (datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=next(KICKS))).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.kube.kubectl(
        "annotate", "rol", "granite", f"remoteollama.dev/wake-requested={stamp}", "--overwrite", check=True
    )


def states(world: OperatorWorld) -> list[str]:
    return [i.state for i in world.instances()]


def test_window_pre_wakes_and_keeps_warm(kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monday = next_monday_0600()  # 07:00 in Zurich (winter) or 08:00 (summer)
    clock = FakeClock(monday)
    monkeypatch.setattr(OPERATOR, "clock", clock)
    zurich_open = (monday + timedelta(hours=1)).astimezone(ZoneInfo("Europe/Zurich"))
    window = {
        "days": ["Mon"],
        "start": zurich_open.strftime("%H:%M"),  # opens at 07:00 UTC
        "end": (zurich_open + timedelta(hours=1)).strftime("%H:%M"),  # closes at 08:00 UTC
        "timeZone": "Europe/Zurich",
    }
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama(idle={"stopAfter": "5m"}, schedule=[window]))
        world.wait_phase("Ready")

        # outside the window: idle scale-down as usual
        advance(world, clock, monday + timedelta(minutes=30))
        world.wait_phase("Stopped")
        wait_until(lambda: states(world) == ["stopped"], LIFECYCLE, "stopped for idleness")

        # the window opens: woken with no request at all
        advance(world, clock, monday + timedelta(hours=1, seconds=30))
        obj = world.wait_phase("Ready")
        assert states(world) == ["running"]
        assert obj["status"]["lastWake"]["seconds"] >= 0
        wait_until(
            lambda: any("keep-warm window" in e.get("message", "") for e in events(kube)), 10, "wake event"
        )

        # 50 idle minutes inside the window (stopAfter is 5m): still running
        advance(world, clock, monday + timedelta(hours=1, minutes=50))
        wait_until(lambda: observed_at(world) == clock.now, LIFECYCLE, "a round at 07:50")
        assert world.phase() == "Ready" and states(world) == ["running"]

        # the window closes: idle for long, so scaled to zero at once
        advance(world, clock, monday + timedelta(hours=2, seconds=1))
        world.wait_phase("Stopped")


def observed_at(world: OperatorWorld) -> datetime | None:
    """When the operator's last round happened (its clock), from status.cost.observedAt."""
    raw = ((world.get("remoteollama", "granite") or {}).get("status") or {}).get("cost", {}).get("observedAt")
    return datetime.fromisoformat(raw) if raw else None


def events(kube: KubeNamespace) -> list[dict[str, str]]:
    out = kube.kubectl("get", "events", "-o", "json", check=True).stdout
    return list(json.loads(out)["items"])
