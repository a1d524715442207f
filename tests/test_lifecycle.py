"""The pure lifecycle: every observed state against every kind of event, with exact boundaries."""

from dataclasses import replace
from datetime import timedelta

import pytest
from lifecycle_steps import HEALTHY, SPEC, T0, A, down_mem, inst, ready_mem, step

from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import Activity, Decision, Health, Memory, Observation
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

# -- from nothing -----------------------------------------------------------------------------------------


def test_new_resource_creates_security_group_then_instance() -> None:
    d = step(None, memory=Memory(created_at=T0))
    assert d.kinds == (A.ENSURE_SECURITY_GROUP, A.CREATE_INSTANCE)
    assert d.phase == Phase.PROVISIONING
    assert d.recheck_after <= 5


def test_blocked_resource_creates_nothing() -> None:
    d = step(None, memory=Memory(created_at=T0), blocked="credentials Secret 'c' not found")
    assert d.kinds == ()
    assert d.phase == Phase.STOPPED and "not found" in d.message


def test_suspended_new_resource_creates_nothing() -> None:
    d = step(None, memory=Memory(created_at=T0), spec=replace(SPEC, suspend=True))
    assert d.kinds == () and d.reason == "Suspended"


# -- running ----------------------------------------------------------------------------------------------


def test_running_and_healthy_is_ready_and_rechecks_at_the_idle_deadline() -> None:
    d = step(inst("running"), minutes=10, activity=Activity(last_activity=T0 + timedelta(minutes=5)))
    assert d.phase == Phase.READY and d.kinds == ()
    assert d.endpoint == "https://127.0.10.2:11435"
    assert d.recheck_after == pytest.approx(300)  # steady check interval (detects a vanished VM)
    d = step(inst("running"), minutes=33, activity=Activity(last_activity=T0 + timedelta(minutes=5)))
    assert d.recheck_after == pytest.approx(120)  # the idle deadline comes first
    assert {c.type: c.status for c in d.conditions} == {
        "Ready": True,
        "InstanceRunning": True,
        "OllamaReady": True,
        "ModelsReady": True,
    }


def test_running_without_answer_probes() -> None:
    d = step(inst("running"), memory=Memory(created_at=T0, phase=Phase.STARTING), health=None)
    assert d.kinds == (A.PROBE,) and d.phase == Phase.STARTING
    conds = {c.type: c.status for c in d.conditions}
    assert conds["InstanceRunning"] and not conds["OllamaReady"] and not conds["Ready"]


def test_running_with_missing_models_pulls_them_without_recreating() -> None:
    spec = replace(SPEC, models=("granite3.1-dense:8b", "llama3"))
    d = step(inst("running", spec), spec=spec, memory=Memory(created_at=T0, phase=Phase.STARTING))
    assert d.kinds == (A.PULL_MODELS,)
    assert d.actions[0].models == ("llama3",)
    assert not {c.type: c.status for c in d.conditions}["ModelsReady"]


def test_model_without_tag_matches_latest() -> None:
    spec = replace(SPEC, models=("llama3",))
    d = step(inst("running", spec), spec=spec, health=Health("1", ("llama3:latest",)))
    assert d.phase == Phase.READY


def test_idle_exactly_at_the_boundary_stops() -> None:
    act = Activity(last_activity=T0)
    assert step(inst("running"), minutes=29.99, activity=act).kinds == ()
    d = step(inst("running"), minutes=30, activity=act)
    assert d.kinds == (A.STOP_INSTANCE,) and d.phase == Phase.STOPPING and d.reason == "Idle"
    assert d.memory.scaled_down_at == T0 + timedelta(minutes=30)


def test_in_flight_request_keeps_vm_running_past_idle() -> None:
    """The proxy re-stamps last-activity while the request runs (every activityInterval)."""
    beat = Activity(last_activity=T0 + timedelta(minutes=119), in_flight=1)
    d = step(inst("running"), minutes=120, activity=beat)
    assert d.kinds == () and d.phase == Phase.READY


def test_an_in_flight_count_without_a_heartbeat_keeps_nothing_up() -> None:
    """A proxy that died (or an edited annotation) leaves in-flight > 0: it counts for stopAfter
    plus a margin after its last stamp, then the VM scales to zero as if idle."""
    stale = Activity(last_activity=T0, in_flight=5)
    assert step(inst("running"), minutes=31.9, activity=stale).kinds == ()  # 30m + 2m margin
    d = step(inst("running"), minutes=32.1, activity=stale)
    assert d.kinds == (A.STOP_INSTANCE,) and d.reason == "Idle"
    assert step(inst("running"), minutes=500, activity=Activity(in_flight=1)).kinds == (A.STOP_INSTANCE,)


def test_polling_does_not_count_idleness_from_creation_while_booting() -> None:
    """A slow first boot must not be stopped for idleness before it was ever Ready."""
    d = step(inst("running"), minutes=90, memory=Memory(created_at=T0, phase=Phase.STARTING), health=None)
    assert d.kinds == (A.PROBE,)


def test_destroy_after_zero_destroys_instead_of_stopping() -> None:
    spec = replace(SPEC, idle=replace(SPEC.idle, destroy_after=0.0))
    d = step(inst("running", spec), spec=spec, minutes=31)
    assert d.kinds == (A.DELETE_INSTANCE,) and d.memory.destroyed_for_idle


def test_always_on_never_stops() -> None:
    spec = replace(SPEC, idle=replace(SPEC.idle, stop_after=None))
    assert step(inst("running", spec), spec=spec, minutes=100000).kinds == ()


def test_replicas_min_one_keeps_the_one_vm_warm_and_wakes_it() -> None:
    """`kubectl scale rol X --replicas 1` (spec.replicas.min 1): never stopped for idleness, and a
    stopped VM is started without a request; back to 0, the idle policy applies again."""
    warm = replace(SPEC, replicas=replace(SPEC.replicas, min=1))
    d = step(inst("running", warm), spec=warm, minutes=600, activity=Activity(last_activity=T0))
    assert d.kinds == () and d.phase == Phase.READY
    d = step(inst("stopped", warm), spec=warm, minutes=5, memory=down_mem())
    assert d.kinds == (A.START_INSTANCE,) and d.actions[0].reason == "KeepWarm"
    assert step(inst("running"), minutes=600, activity=Activity(last_activity=T0)).kinds == (A.STOP_INSTANCE,)


def test_suspend_stops_a_running_vm_now() -> None:
    spec = replace(SPEC, suspend=True)
    d = step(inst("running", spec), spec=spec, activity=Activity(last_activity=T0))
    assert d.kinds == (A.STOP_INSTANCE,) and d.reason == "Suspended"


def test_sleep_requested_after_last_use_stops_now_but_not_an_older_one() -> None:
    act = Activity(last_activity=T0 + timedelta(minutes=1), sleep_requested=T0 + timedelta(minutes=2))
    assert step(inst("running"), minutes=3, activity=act).kinds == (A.STOP_INSTANCE,)
    old = Activity(last_activity=T0 + timedelta(minutes=3), sleep_requested=T0 + timedelta(minutes=2))
    assert step(inst("running"), minutes=4, activity=old).kinds == ()


def test_sleep_requested_waits_for_in_flight_requests() -> None:
    act = Activity(last_activity=T0, sleep_requested=T0 + timedelta(minutes=2), in_flight=2)
    assert step(inst("running"), minutes=3, activity=act).kinds == ()


# -- stopped ----------------------------------------------------------------------------------------------


def test_stopped_and_idle_stays_stopped_until_destroy_deadline() -> None:
    d = step(inst("stopped"), minutes=60, memory=down_mem())
    assert d.kinds == () and d.phase == Phase.STOPPED
    assert d.recheck_after == pytest.approx(300)
    d = step(inst("stopped"), minutes=24 * 60, memory=down_mem())
    assert d.kinds == (A.DELETE_INSTANCE,) and d.memory.destroyed_for_idle


def test_wake_after_scale_down_starts_the_stopped_instance_not_a_second_one() -> None:
    wake = T0 + timedelta(minutes=5)
    d = step(inst("stopped"), minutes=5, memory=down_mem(), activity=Activity(wake_requested=wake))
    assert d.kinds == (A.START_INSTANCE,)
    assert d.actions[0].instance_id == "i-1"
    assert d.memory.wake_requested_at == wake and d.memory.scaled_down_at is None


def test_wake_older_than_the_scale_down_does_not_start() -> None:
    act = Activity(wake_requested=T0 - timedelta(minutes=1))
    assert step(inst("stopped"), minutes=5, memory=down_mem(), activity=act).kinds == ()


def test_stopped_instance_found_for_resource_that_should_run_is_started() -> None:
    """Stopped out of band (or adopted stopped) while in use: start it, never create another."""
    d = step(inst("stopped"), minutes=1, activity=Activity(last_activity=T0 + timedelta(seconds=30)))
    assert d.kinds == (A.START_INSTANCE,)


def test_full_wake_reports_phase_times_once() -> None:
    wake = T0 + timedelta(minutes=5)
    act = Activity(wake_requested=wake)
    d1 = step(inst("stopped"), minutes=5, memory=down_mem(), activity=act)
    d2 = step(inst("starting"), minutes=5.5, memory=d1.memory, activity=act)
    d3 = step(inst("running"), minutes=6, memory=d2.memory, activity=act, health=None)
    d4 = step(inst("running"), minutes=7, memory=d3.memory, activity=act)
    assert [d.phase for d in (d1, d2, d3, d4)] == [
        Phase.STARTING,
        Phase.STARTING,
        Phase.STARTING,
        Phase.READY,
    ]
    assert d4.last_wake is not None
    assert d4.last_wake.requested_at == wake
    assert d4.last_wake.running_at == T0 + timedelta(minutes=6)
    assert d4.last_wake.seconds == 120
    d5 = step(inst("running"), minutes=8, memory=d4.memory, activity=act)
    assert d5.last_wake is None


# -- gone, vanished, error, transitional -------------------------------------------------------------------


def test_instance_vanished_out_of_band_is_recreated_and_said() -> None:
    d = step(None, minutes=1, activity=Activity(last_activity=T0))
    assert d.kinds == (A.ENSURE_SECURITY_GROUP, A.CREATE_INSTANCE)
    assert any("vanished" in e for e in d.events)


def test_destroyed_for_idle_is_not_reported_as_vanished_and_not_recreated() -> None:
    d = step(None, minutes=60, memory=down_mem(destroyed_for_idle=True))
    assert d.kinds == () and not any("vanished" in e for e in d.events)


def test_wake_after_destroy_creates_a_new_instance() -> None:
    act = Activity(wake_requested=T0 + timedelta(minutes=61))
    d = step(None, minutes=61, memory=down_mem(destroyed_for_idle=True), activity=act)
    assert d.kinds == (A.ENSURE_SECURITY_GROUP, A.CREATE_INSTANCE)


@pytest.mark.parametrize("state", ["destroying", "destroyed", "expunging"])
def test_instance_being_destroyed_is_waited_for_before_creating(state: str) -> None:
    d = step(inst(state), minutes=1, activity=Activity(last_activity=T0))
    assert d.kinds == () and d.phase == Phase.PROVISIONING and d.endpoint is None


def test_instance_in_error_is_replaced() -> None:
    d = step(inst("error"))
    assert d.kinds == (A.DELETE_INSTANCE,) and d.phase == Phase.FAILED and d.reason == "InstanceError"


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("starting", Phase.STARTING),
        ("stopping", Phase.STOPPING),
        ("migrating", Phase.STARTING),
        ("rebooting", Phase.STARTING),
    ],
)
def test_transitional_states_wait(state: str, phase: Phase) -> None:
    d = step(inst(state))
    assert d.kinds == () and d.phase == phase and d.recheck_after <= 5


@pytest.mark.parametrize(
    "change",
    [
        {"zone": "ch-gva-2"},
        {"instanceType": "gpua5000.medium"},
        {"template": "Linux Debian 12"},
        {"diskSize": 400},
    ],
)
@pytest.mark.parametrize("state", ["running", "stopped"])
def test_spec_change_needing_a_new_vm_replaces_it(change: dict[str, object], state: str) -> None:
    new = parse_spec({"credentialsSecretRef": {"name": "c"}, **change})
    d = step(inst(state, SPEC), spec=new)
    assert d.kinds == (A.DELETE_INSTANCE,) and d.reason == "SpecChanged"


@pytest.mark.parametrize(
    "change",
    [{"idle": {"stopAfter": "5m"}}, {"wake": {"holdTimeout": "1m"}}, {"allowedSourceCIDRs": ["10.0.0.0/8"]}],
)
def test_spec_change_not_needing_a_new_vm_keeps_it(change: dict[str, object]) -> None:
    new = parse_spec({"credentialsSecretRef": {"name": "c"}, **change})
    d = step(inst("running", SPEC), spec=new, activity=Activity(last_activity=T0))
    assert A.DELETE_INSTANCE not in d.kinds


# -- exhaustive table: every state x desire gives a decision with sane invariants ---------------------------

STATES = [
    None,
    "starting",
    "running",
    "stopping",
    "stopped",
    "destroying",
    "destroyed",
    "expunging",
    "migrating",
    "error",
]
EVENTS = {
    "active": dict(activity=Activity(last_activity=T0)),
    "idle": dict(minutes=45),
    "suspend": dict(spec=replace(SPEC, suspend=True)),
    "sleep": dict(activity=Activity(sleep_requested=T0 + timedelta(seconds=1)), minutes=1),
    "wake": dict(memory=down_mem(), activity=Activity(wake_requested=T0 + timedelta(minutes=1)), minutes=1),
    "blocked": dict(blocked="no credentials"),
    "in-flight": dict(activity=Activity(last_activity=T0 + timedelta(minutes=499), in_flight=3), minutes=500),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", list(EVENTS))
def test_state_event_table(state: str | None, event: str) -> None:
    kw = dict(EVENTS[event])
    d = step(inst(state) if state else None, **kw)  # type: ignore[arg-type]
    wants_up = event in ("active", "wake", "in-flight")
    # never create while an instance exists, never start when scaling down, never stop when in use
    if state is not None:
        assert A.CREATE_INSTANCE not in d.kinds
    if not wants_up:
        assert A.START_INSTANCE not in d.kinds and A.CREATE_INSTANCE not in d.kinds
    else:
        assert A.STOP_INSTANCE not in d.kinds
    if state == "running" and not wants_up:
        assert d.kinds in ((A.STOP_INSTANCE,),)
    if state == "stopped" and wants_up:
        assert d.kinds == (A.START_INSTANCE,)
    if state is None and wants_up:
        assert d.kinds == (A.ENSURE_SECURITY_GROUP, A.CREATE_INSTANCE)
    if state == "error":
        assert d.kinds == (A.DELETE_INSTANCE,)
    assert d.recheck_after >= 1
    assert len(d.actions) <= 2


def test_becoming_ready_rechecks_at_the_idle_deadline_not_the_steady_interval() -> None:
    spec = replace(SPEC, idle=replace(SPEC.idle, stop_after=3.0))
    d = step(inst("running", spec), spec=spec, memory=Memory(created_at=T0, phase=Phase.STARTING))
    assert d.phase == Phase.READY and d.recheck_after == pytest.approx(3.0)


def test_monitor_off_neither_stops_nor_wakes_by_itself() -> None:
    """The embedded API's "idle monitor off" is its own state (not a 100-year stopAfter)."""

    def off(instance: ObservedInstance, memory: Memory, activity: Activity) -> Decision:
        obs = Observation(
            SPEC, instance, activity, memory, T0 + timedelta(days=400), HEALTHY, idle_monitor=False
        )
        return decide(obs)

    running = off(inst("running"), ready_mem(), Activity(last_activity=T0))
    assert running.kinds == () and running.phase == Phase.READY and running.reason != "Idle"
    stopped = off(inst("stopped"), down_mem(), Activity(last_activity=T0 - timedelta(minutes=1)))
    assert A.START_INSTANCE not in stopped.kinds and stopped.phase == Phase.STOPPED
    woken = off(inst("stopped"), down_mem(), Activity(wake_requested=T0 + timedelta(days=400)))
    assert woken.kinds == (A.START_INSTANCE,)  # a request still wakes it
