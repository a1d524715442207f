"""Lifecycle decisions for budgets and keep-warm schedules (pure, exact boundaries)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from remote_ollama.core.cost import BudgetVerdict
from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import ActionKind, Activity, Decision, Health, Memory, Observation
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_SPEC_HASH
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

# Monday 2026-11-23 12:00 UTC = 13:00 in Zurich
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE = {"credentialsSecretRef": {"name": "c"}, "idle": {"stopAfter": "30m", "destroyAfter": "24h"}}
OFFICE = {
    "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
    "start": "08:55",
    "end": "18:00",
    "timeZone": "Europe/Zurich",
}
SCHEDULED = parse_spec({**BASE, "schedule": [OFFICE]})
PLAIN = parse_spec(BASE)
HEALTHY = Health("0.33.0", ("granite3.1-dense:8b",))
OVER = BudgetVerdict("budget exceeded: 3.00 running hours today", 3600.0)


def inst(state: str, spec: Spec = PLAIN) -> ObservedInstance:
    return ObservedInstance("i-1", state, "127.0.10.2", labels={LABEL_SPEC_HASH: spec.instance_hash()})


def ready() -> Memory:
    return Memory(
        created_at=T0 - timedelta(days=3),
        phase=Phase.READY,
        ready_at=T0 - timedelta(days=1),
        instance_id="i-1",
    )


def down() -> Memory:
    return Memory(
        created_at=T0 - timedelta(days=3),
        phase=Phase.STOPPED,
        scaled_down_at=T0 - timedelta(hours=1),
        instance_id="i-1",
    )


def step(
    instance: ObservedInstance | None,
    mem: Memory,
    *,
    at: datetime = T0,
    spec: Spec = PLAIN,
    activity: Activity | None = None,
    budget: BudgetVerdict | None = None,
) -> Decision:
    return decide(Observation(spec, instance, activity or Activity(), mem, at, HEALTHY, budget=budget))


# -- budget -----------------------------------------------------------------------------------------------


def test_over_budget_stops_a_busy_vm() -> None:
    d = step(inst("running"), ready(), activity=Activity(last_activity=T0), budget=OVER)
    assert d.kinds == (ActionKind.STOP_INSTANCE,)
    assert d.reason == "BudgetExceeded" and "running hours" in d.message
    assert any("scaling to zero" in e for e in d.events)


def test_over_budget_refuses_a_wake_and_looks_again_at_reset() -> None:
    d = step(inst("stopped"), down(), activity=Activity(wake_requested=T0), budget=OVER)
    assert d.kinds == () and d.phase is Phase.STOPPED and d.reason == "BudgetExceeded"
    assert d.recheck_after == 300.0
    soon = BudgetVerdict(OVER.exceeded, 30.0)  # the cap resets in 30 s: look again then
    assert (
        step(inst("stopped"), down(), activity=Activity(wake_requested=T0), budget=soon).recheck_after == 30
    )


def test_within_budget_rechecks_when_the_cap_would_be_hit() -> None:
    d = step(inst("running"), ready(), activity=Activity(last_activity=T0), budget=BudgetVerdict(None, 120.0))
    assert d.phase is Phase.READY and d.recheck_after == 120.0


def test_budget_beats_keep_warm_window() -> None:
    d = step(inst("running", SCHEDULED), ready(), spec=SCHEDULED, budget=OVER)
    assert d.kinds == (ActionKind.STOP_INSTANCE,)


# -- keep-warm schedule -----------------------------------------------------------------------------------


def test_window_pre_wakes_a_stopped_vm() -> None:
    d = step(inst("stopped", SCHEDULED), down(), spec=SCHEDULED)
    assert d.kinds == (ActionKind.START_INSTANCE,)
    assert d.memory.scaled_down_at is None and d.memory.wake_requested_at == T0


def test_window_suppresses_idle_scale_down_until_it_closes() -> None:
    d = step(inst("running", SCHEDULED), ready(), spec=SCHEDULED)  # idle for a day, inside the window
    assert d.kinds == () and d.phase is Phase.READY
    closes = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert d.recheck_after == 300.0  # the steady poll; nearer the close, the close itself
    near = closes - timedelta(seconds=42)
    assert step(inst("running", SCHEDULED), ready(), spec=SCHEDULED, at=near).recheck_after == 42
    after = step(inst("running", SCHEDULED), ready(), spec=SCHEDULED, at=closes)
    assert after.kinds == (ActionKind.STOP_INSTANCE,) and after.reason == "Idle"


def test_outside_window_idle_policy_applies_and_next_opening_is_the_recheck() -> None:
    evening = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    d = step(inst("stopped", SCHEDULED), down(), spec=SCHEDULED, at=evening)
    assert d.kinds == () and d.phase is Phase.STOPPED
    opens = datetime(2026, 11, 24, 7, 55, tzinfo=UTC)
    assert d.recheck_after == min(300.0, (opens - evening).total_seconds())
    near = opens - timedelta(seconds=42)
    assert step(inst("stopped", SCHEDULED), down(), spec=SCHEDULED, at=near).recheck_after == 42


def test_sleep_request_inside_window_wins_only_when_made_in_this_window() -> None:
    stale = Activity(sleep_requested=T0 - timedelta(days=1))
    d = step(
        inst("running", SCHEDULED),
        replace(ready(), ready_at=T0 - timedelta(days=2)),
        spec=SCHEDULED,
        activity=stale,
    )
    assert d.kinds == ()
    fresh = Activity(sleep_requested=T0 - timedelta(minutes=1))
    d = step(
        inst("running", SCHEDULED),
        replace(ready(), ready_at=T0 - timedelta(days=2)),
        spec=SCHEDULED,
        activity=fresh,
    )
    assert d.kinds == (ActionKind.STOP_INSTANCE,) and d.reason == "SleepRequested"


def test_suspend_beats_window() -> None:
    spec = replace(SCHEDULED, suspend=True)
    assert step(inst("running", spec), ready(), spec=spec).kinds == (ActionKind.STOP_INSTANCE,)


def test_a_refused_wake_does_not_count_the_refusal_in_the_wake_time() -> None:
    """Asked at T0 while over budget; the budget resets 20 min later: the wake takes 2 min, not 22."""
    asked = Activity(wake_requested=T0)
    refused = step(inst("stopped"), down(), activity=asked, budget=OVER)
    last_refusal = T0 + timedelta(minutes=20) - timedelta(seconds=1)
    refused = step(inst("stopped"), refused.memory, activity=asked, budget=OVER, at=last_refusal)
    woke = step(inst("stopped"), refused.memory, activity=asked, at=T0 + timedelta(minutes=20))
    assert woke.kinds == (ActionKind.START_INSTANCE,)
    d = step(inst("running"), woke.memory, activity=asked, at=T0 + timedelta(minutes=22))
    assert d.phase is Phase.READY and d.last_wake is not None
    assert d.last_wake.seconds == pytest.approx(121.0), d.last_wake  # from the last refusal on
    assert d.memory.wake_refused_at is None


def test_idle_modes_are_explicit() -> None:
    from remote_ollama.spec.sections import IdleMode, IdlePolicy

    assert IdlePolicy(None, None).mode is IdleMode.ALWAYS_ON
    assert IdlePolicy(60, None).mode is IdleMode.STOP_AFTER
    assert IdlePolicy(60, 3600).mode is IdleMode.STOP_THEN_DESTROY
    assert IdlePolicy(60, 0).mode is IdleMode.DESTROY_AFTER
