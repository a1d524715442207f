"""Model warm-up and wake milestones in the pure lifecycle: Ready only once models[0] is in memory."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from remote_ollama.core.conditions import WARM_UP_TIMEOUT
from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import ActionKind, Activity, Decision, Health, Memory, Observation, WakeTiming
from remote_ollama.engine.vm_tasks import ollama_keep_alive
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_SPEC_HASH
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MODEL = "granite3.1-dense:8b"
SPEC = parse_spec(
    {
        "credentialsSecretRef": {"name": "c"},
        "models": [MODEL, "nomic-embed-text"],
        "idle": {"stopAfter": "30m"},
    }
)
PRESENT = (MODEL, "nomic-embed-text:latest")
RUNNING = ObservedInstance(
    id="i-1", state="running", public_ip="127.0.10.2", labels={LABEL_SPEC_HASH: SPEC.instance_hash()}
)
STOPPED = replace(RUNNING, state="stopped")


def step(
    health: Health | None,
    memory: Memory,
    *,
    seconds: float = 0,
    spec: Spec = SPEC,
    instance: ObservedInstance = RUNNING,
    activity: Activity | None = None,
) -> Decision:
    now = T0 + timedelta(seconds=seconds)
    return decide(Observation(spec, instance, activity or Activity(), memory, now, health))


def starting(**kw: object) -> Memory:
    return replace(Memory(created_at=T0, phase=Phase.STARTING, instance_id="i-1"), **kw)  # type: ignore[arg-type]


def cond(d: Decision, kind: str) -> tuple[bool, str] | None:
    found = [c for c in d.conditions if c.type == kind]
    return (found[0].status, found[0].reason) if found else None


def test_models_present_but_not_loaded_asks_for_a_warm_up_and_is_not_ready() -> None:
    d = step(Health("0.33.0", PRESENT, loaded=()), starting())
    assert d.kinds == (ActionKind.WARM_UP,)
    assert d.actions[0].models == (MODEL,) and d.actions[0].instance_id == "i-1"
    assert (d.phase, d.reason) == (Phase.STARTING, "WarmingUp")
    assert cond(d, "Ready") == (False, "WarmingUp")
    assert cond(d, "ModelsReady") == (True, "AllPresent")
    assert cond(d, "ModelLoaded") == (False, "Loading")
    assert d.recheck_after <= 3
    assert d.memory.warm_up_at == T0


def test_ready_once_the_model_is_in_memory() -> None:
    first = step(Health("0.33.0", PRESENT, loaded=()), starting())
    d = step(Health("0.33.0", PRESENT, loaded=(MODEL,)), first.memory, seconds=4)
    assert d.kinds == () and d.phase == Phase.READY
    assert cond(d, "Ready") == (True, "Ready")
    assert cond(d, "ModelLoaded") == (True, "Loaded")
    assert d.memory.ready_at == T0 + timedelta(seconds=4) and d.memory.warm_up_at is None


def test_spec_model_without_tag_matches_the_loaded_latest() -> None:
    spec = replace(SPEC, models=("llama3.2",))
    d = step(Health("0.33.0", ("llama3.2:latest",), loaded=("llama3.2:latest",)), starting(), spec=spec)
    assert d.phase == Phase.READY and d.kinds == ()


def test_warm_up_repeats_while_loading_and_keeps_its_start() -> None:
    first = step(Health("0.33.0", PRESENT, loaded=()), starting())
    again = step(Health("0.33.0", PRESENT, loaded=()), first.memory, seconds=30)
    assert again.kinds == (ActionKind.WARM_UP,)  # the reconciler never runs two loads of one model
    assert again.memory.warm_up_at == T0


def test_a_warm_up_that_never_loads_gives_up_at_the_timeout() -> None:
    mem = starting(warm_up_at=T0)
    before = step(Health("0.33.0", PRESENT, loaded=()), mem, seconds=WARM_UP_TIMEOUT - 1)
    assert before.phase == Phase.STARTING
    d = step(Health("0.33.0", PRESENT, loaded=()), mem, seconds=WARM_UP_TIMEOUT)
    assert d.phase == Phase.READY and d.kinds == ()
    assert cond(d, "ModelLoaded") == (False, "WarmUpTimedOut")
    assert any("warm-up" in e for e in d.events)


def test_no_warm_up_when_disabled_or_keep_alive_zero() -> None:
    for spec in (replace(SPEC, warm_up=False), replace(SPEC, keep_alive="0"), replace(SPEC, keep_alive="0s")):
        d = step(Health("0.33.0", PRESENT, loaded=()), starting(), spec=spec)
        assert d.phase == Phase.READY and d.kinds == ()
        assert cond(d, "ModelLoaded") == (False, "WarmUpDisabled")


def test_unknown_loaded_models_do_not_block_ready() -> None:
    """An Ollama that does not answer GET /api/ps (or an unprobed one) cannot be warmed: Ready."""
    d = step(Health("0.33.0", PRESENT), starting())
    assert d.phase == Phase.READY and d.kinds == ()
    assert cond(d, "ModelLoaded") is None


def test_missing_models_are_pulled_before_any_warm_up() -> None:
    d = step(Health("0.33.0", (MODEL,), loaded=()), starting())
    assert d.kinds == (ActionKind.PULL_MODELS,)


def test_unloaded_after_ready_does_not_leave_ready() -> None:
    """keep_alive ran out while serving: the next request loads it; the VM stays Ready."""
    mem = Memory(created_at=T0, phase=Phase.READY, ready_at=T0, instance_id="i-1")
    d = step(Health("0.33.0", PRESENT, loaded=()), mem, seconds=60, activity=Activity(last_activity=T0))
    assert d.phase == Phase.READY and d.kinds == ()
    assert cond(d, "ModelLoaded") == (False, "NotLoaded")


def test_wake_records_every_milestone_in_order() -> None:
    wake = T0 + timedelta(minutes=1)
    down = Memory(created_at=T0, phase=Phase.STOPPED, scaled_down_at=T0, instance_id="i-1")
    woke = Activity(wake_requested=wake)
    d1 = step(None, down, seconds=60, instance=STOPPED, activity=woke)
    assert d1.kinds == (ActionKind.START_INSTANCE,) and d1.memory.wake_requested_at == wake
    d2 = step(None, d1.memory, seconds=90, activity=woke)  # running, Ollama not answering yet
    assert d2.memory.instance_running_at == T0 + timedelta(seconds=90) and d2.memory.ollama_at is None
    d3 = step(Health("0.33.0", (MODEL,), loaded=()), d2.memory, seconds=100, activity=woke)
    assert d3.kinds == (ActionKind.PULL_MODELS,)
    assert d3.memory.ollama_at == T0 + timedelta(seconds=100) and d3.memory.models_at is None
    d4 = step(Health("0.33.0", PRESENT, loaded=()), d3.memory, seconds=130, activity=woke)
    assert d4.kinds == (ActionKind.WARM_UP,) and d4.memory.models_at == T0 + timedelta(seconds=130)
    d5 = step(Health("0.33.0", PRESENT, loaded=(MODEL,)), d4.memory, seconds=145, activity=woke)
    assert d5.phase == Phase.READY
    assert d5.last_wake == WakeTiming(
        requested_at=wake,
        running_at=T0 + timedelta(seconds=90),
        ready_at=T0 + timedelta(seconds=145),
        ollama_at=T0 + timedelta(seconds=100),
        models_at=T0 + timedelta(seconds=130),
    )
    assert d5.last_wake.phases() == {
        "to_running": 30.0,
        "to_ollama": 10.0,
        "to_models": 30.0,
        "to_ready": 15.0,
        "total": 85.0,
    }
    # scaling to zero forgets the milestones, so the next wake starts clean
    idle = step(Health("0.33.0", PRESENT, loaded=(MODEL,)), d5.memory, seconds=145 + 31 * 60)
    assert idle.kinds == (ActionKind.STOP_INSTANCE,)
    m = idle.memory
    assert (m.instance_running_at, m.ollama_at, m.models_at, m.warm_up_at) == (None, None, None, None)


def test_phases_skip_unknown_milestones() -> None:
    w = WakeTiming(T0, None, T0 + timedelta(seconds=50), T0 + timedelta(seconds=20), None)
    assert w.phases() == {"total": 50.0}  # a phase is reported only when both its ends are known


def test_keep_alive_goes_to_ollama_in_a_form_it_parses() -> None:
    assert ollama_keep_alive("30m") == "30m"
    assert ollama_keep_alive("1h30m") == "1h30m"
    assert ollama_keep_alive("-1") == -1
    assert ollama_keep_alive("0") == 0
