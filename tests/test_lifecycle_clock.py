"""Activity stamps from the future (a forged or skewed annotation) cannot keep a VM up."""

from datetime import timedelta

from test_lifecycle import SPEC, T0, A, down_mem, inst, ready_mem, step

from remote_ollama.core.desire import credible
from remote_ollama.core.types import Activity


def test_a_far_future_last_activity_does_not_keep_the_vm_up() -> None:
    forged = Activity(last_activity=T0 + timedelta(days=365))
    decision = step(inst("running"), minutes=31, activity=forged, memory=ready_mem())
    assert A.STOP_INSTANCE in [a.kind for a in decision.actions]


def test_a_far_future_stamp_does_not_wake_a_stopped_vm() -> None:
    for forged in (
        Activity(last_activity=T0 + timedelta(days=1)),
        Activity(wake_requested=T0 + timedelta(days=1)),
    ):
        decision = step(inst("stopped"), minutes=5, activity=forged, memory=down_mem())
        assert A.START_INSTANCE not in [a.kind for a in decision.actions]


def test_a_slightly_early_clock_counts_as_now() -> None:
    now = T0 + timedelta(minutes=20)
    skewed = Activity(last_activity=now + timedelta(seconds=30), wake_requested=now + timedelta(hours=1))
    assert credible(skewed, now) == Activity(last_activity=now, wake_requested=None)
    decision = step(inst("running"), minutes=20, activity=skewed, memory=ready_mem(), spec=SPEC)
    assert A.STOP_INSTANCE not in [a.kind for a in decision.actions]
