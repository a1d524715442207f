"""Pure lifecycle decisions: (spec, observed instance, activity, memory, now) -> actions + status.

No I/O and no clock reads: the operator and standalone mode both call `decide()` and carry out
the actions it returns, so there is one lifecycle with two shells.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_SPEC_HASH, VM_PORT
from remote_ollama.spec.schedule import active_window, next_edge
from remote_ollama.spec.sections import IdleMode, format_duration
from remote_ollama.spec.vocabulary import INSTANCE_IN, ConditionType, Phase, Reason

from .observed import GONE
from .types import Action, ActionKind, Activity, Condition, Decision, Health, Memory, Observation, WakeTiming

POLL_TRANSITION = 5.0
POLL_PROBE = 3.0
POLL_STEADY = 300.0
# A warm-up that has not loaded the model by then is given up: the VM is declared Ready anyway, so
# held requests are served (they load the model themselves) rather than wait for a load that fails.
WARM_UP_TIMEOUT = 300.0


def endpoint_for(ip: str | None) -> str | None:
    return f"https://{ip}:{VM_PORT}" if ip else None


def _wake_pending(obs: Observation) -> bool:
    """A wake was asked for after the last scale to zero (and so is waiting for a refusal to end)."""
    asked = credible(obs.activity, obs.now).wake_requested
    down = obs.memory.scaled_down_at
    return asked is not None and (down is None or asked > down)


def _latest(*stamps: datetime | None) -> datetime | None:
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class Desire:
    running: bool
    reason: Reason
    message: str
    idle_deadline: datetime | None = None  # when the VM becomes idle, if nothing happens before


# How far ahead of our clock an activity stamp may be and still count (as "now"): clock skew.
ACTIVITY_SKEW = timedelta(seconds=60)


def credible(act: Activity, now: datetime) -> Activity:
    """Activity stamps from the future are no evidence of use: up to ACTIVITY_SKEW ahead they are
    clamped to now; further ahead they are ignored (a forged far-future stamp would keep a VM up)."""

    def clamp(stamp: datetime | None) -> datetime | None:
        if stamp is None or stamp <= now:
            return stamp
        return now if stamp - now <= ACTIVITY_SKEW else None

    return replace(act, last_activity=clamp(act.last_activity), wake_requested=clamp(act.wake_requested))


# An in-flight count is re-stamped (last-activity) every activityInterval while requests run; one
# whose stamp is older than stopAfter plus this margin was left by a proxy that died (or forged).
IN_FLIGHT_MARGIN = timedelta(minutes=2)


def in_flight_expiry(act: Activity, spec: Spec) -> datetime | None:
    """When the in-flight count stops counting (None: it counts as long as it is there)."""
    if act.in_flight <= 0 or spec.idle.stop_after is None or act.last_activity is None:
        return None
    margin = max(IN_FLIGHT_MARGIN, timedelta(seconds=3 * spec.activity_interval))
    return act.last_activity + timedelta(seconds=spec.idle.stop_after) + margin


def desire(obs: Observation) -> Desire:
    """Should a VM be running now, and until when? Idleness counts from the last use or readiness."""
    spec, mem, now = obs.spec, obs.memory, obs.now
    act = credible(obs.activity, now)
    expires = in_flight_expiry(act, spec)
    if act.in_flight > 0 and spec.idle.stop_after is not None and (expires is None or expires <= now):
        act = replace(act, in_flight=0)  # stale: no heartbeat within stopAfter plus the margin
        expires = None
    if obs.blocked_reason:
        return Desire(False, Reason.BLOCKED, obs.blocked_reason)
    if obs.budget is not None and obs.budget.exceeded:
        return Desire(False, Reason.BUDGET_EXCEEDED, obs.budget.exceeded)
    if spec.suspend:
        return Desire(False, Reason.SUSPENDED, "spec.suspend is true")
    window = active_window(spec.schedule, now) if spec.schedule else None
    last_use = _latest(act.last_activity, act.wake_requested, mem.created_at, mem.ready_at)
    if (
        act.sleep_requested
        and act.in_flight == 0
        and (last_use is None or act.sleep_requested >= last_use)
        and (window is None or act.sleep_requested >= window[0])
    ):
        return Desire(
            False,
            Reason.SLEEP_REQUESTED,
            "scale to zero requested (sleep annotation, or remote-ollama instance stop)",
        )
    if act.in_flight > 0:
        return Desire(True, Reason.IN_USE, f"{act.in_flight} request(s) in flight", idle_deadline=expires)
    if window is not None:
        closes = window[1].strftime("%Y-%m-%dT%H:%M:%SZ")
        return Desire(True, Reason.KEEP_WARM, f"inside a keep-warm window (spec.schedule) until {closes}")
    if not obs.idle_monitor:  # the embedding program turned idleness off: no stop, and no wake by itself
        if mem.scaled_down_at is not None and (last_use is None or last_use <= mem.scaled_down_at):
            return Desire(False, Reason.IDLE, "scaled to zero; waiting for a request to wake it")
        return Desire(True, Reason.MONITOR_OFF, "the idle monitor is off")
    stop_after = spec.idle.stop_after
    if stop_after is None:
        return Desire(True, Reason.ALWAYS_ON, "spec.idle.stopAfter is not set")
    if mem.scaled_down_at is not None and (last_use is None or last_use <= mem.scaled_down_at):
        return Desire(False, Reason.IDLE, "scaled to zero; waiting for a request to wake it")
    booting = mem.scaled_down_at is None and mem.phase in (Phase.PENDING, Phase.PROVISIONING, Phase.STARTING)
    if booting:
        return Desire(True, Reason.BOOTING, "bringing the VM up")
    if last_use is None:
        return Desire(True, Reason.NEW, "no activity yet")
    deadline = last_use + timedelta(seconds=stop_after)
    if now >= deadline:
        return Desire(False, Reason.IDLE, f"no request for {format_duration(stop_after)}")
    return Desire(True, Reason.ACTIVE, "in use", deadline)


def warm_up_target(spec: Spec) -> str | None:
    """The model a wake loads before Ready: models[0], unless warm-up is off or keepAlive is 0
    (a load with keep_alive 0 unloads at once, so waiting for it would never end)."""
    if not spec.warm_up or not spec.models or not any(c in "123456789" for c in spec.keep_alive):
        return None
    return spec.models[0]


def _model_loaded(spec: Spec, health: Health | None, warming: bool, timed_out: bool) -> Condition | None:
    """ModelLoaded, present only while the VM's Ollama says what it has in memory (GET /api/ps)."""
    if health is None or health.loaded is None or not spec.models:
        return None
    target = spec.models[0]
    if _has_model(health.loaded, target):
        return Condition(ConditionType.MODEL_LOADED, True, Reason.LOADED, f"{target} is in memory")
    if warming:
        return Condition(
            ConditionType.MODEL_LOADED, False, Reason.LOADING, f"loading {target} into memory (warm-up)"
        )
    if timed_out:
        return Condition(
            ConditionType.MODEL_LOADED,
            False,
            Reason.WARM_UP_TIMED_OUT,
            f"{target} did not load within {format_duration(WARM_UP_TIMEOUT)}; the first request loads it",
        )
    if warm_up_target(spec) is None:
        return Condition(
            ConditionType.MODEL_LOADED, False, Reason.WARM_UP_DISABLED, f"{target} loads on the first request"
        )
    return Condition(
        ConditionType.MODEL_LOADED,
        False,
        Reason.NOT_LOADED,
        f"{target} is not in memory; the next request loads it",
    )


def _conditions(
    spec: Spec,
    running: bool,
    health: Health | None,
    missing: tuple[str, ...],
    ready_msg: str,
    warming: bool = False,
    timed_out: bool = False,
) -> tuple[Condition, ...]:
    ollama = running and health is not None
    models = ollama and not missing
    ready = models and not warming
    loaded = _model_loaded(spec, health if ollama else None, warming, timed_out)
    return (
        Condition(
            ConditionType.READY,
            ready,
            Reason.READY if ready else Reason.WARMING_UP if warming else Reason.NOT_READY,
            ready_msg,
        ),
        Condition(ConditionType.INSTANCE_RUNNING, running, Reason.RUNNING if running else Reason.NOT_RUNNING),
        Condition(
            ConditionType.OLLAMA_READY,
            ollama,
            Reason.ANSWERING if ollama else Reason.NOT_ANSWERING,
            f"Ollama {health.version}" if health else "",
        ),
        Condition(
            ConditionType.MODELS_READY,
            models,
            Reason.ALL_PRESENT if models else (Reason.MISSING if ollama else Reason.UNKNOWN),
            f"missing: {', '.join(missing)}" if missing else "",
        ),
    ) + ((loaded,) if loaded else ())


def _without_milestones(mem: Memory) -> Memory:
    """Per-wake milestones are cleared when a wake starts or the VM scales to zero."""
    return replace(mem, instance_running_at=None, ollama_at=None, models_at=None, warm_up_at=None)


def decide(obs: Observation) -> Decision:
    """One reconcile step. The shell carries out `actions` in order, then calls again."""
    spec, inst, mem, now, health = obs.spec, obs.instance, obs.memory, obs.now, obs.health
    want = desire(obs)
    # the next moment the answer may change by itself: a schedule edge, or a budget cap or reset
    horizon = POLL_STEADY
    edge = next_edge(spec.schedule, now) if spec.schedule else None
    if edge is not None:
        horizon = min(horizon, (edge - now).total_seconds())
    if obs.budget is not None and obs.budget.recheck_after is not None:
        horizon = min(horizon, obs.budget.recheck_after)
    events: list[str] = []
    actions: list[Action] = []
    last_wake: WakeTiming | None = None
    new_mem = mem
    state = inst.state if inst else None

    # Bookkeeping of scale-down / wake, so a wake's phase times can be reported once it is Ready.
    if want.running:
        if mem.scaled_down_at is not None:
            requested = credible(obs.activity, now).wake_requested or now
            if mem.wake_refused_at is not None and mem.wake_refused_at > requested:
                requested = mem.wake_refused_at  # it could not start before the refusal ended
            new_mem = replace(
                _without_milestones(new_mem),
                scaled_down_at=None,
                wake_requested_at=requested,
                wake_refused_at=None,
            )
            events.append(f"waking: {want.message}")
    elif want.reason in (Reason.BUDGET_EXCEEDED, Reason.BLOCKED) and _wake_pending(obs):
        new_mem = replace(new_mem, wake_refused_at=now)
    elif mem.scaled_down_at is None:
        new_mem = replace(_without_milestones(new_mem), scaled_down_at=now, wake_requested_at=None)
        events.append(f"scaling to zero: {want.message}")

    def done(
        phase: Phase,
        reason: Reason,
        message: str,
        recheck: float,
        running: bool = False,
        missing: tuple[str, ...] = (),
        warming: bool = False,
        timed_out: bool = False,
    ) -> Decision:
        endpoint = endpoint_for(inst.public_ip) if inst and state not in GONE else None
        mem_out = replace(new_mem, phase=phase, instance_id=inst.id if inst and state not in GONE else None)
        return Decision(
            actions=tuple(actions),
            phase=phase,
            reason=reason,
            message=message,
            conditions=_conditions(
                spec, running, health if running else None, missing, message, warming, timed_out
            ),
            memory=mem_out,
            endpoint=endpoint,
            recheck_after=max(min(recheck, horizon), 1.0),
            last_wake=last_wake,
            events=tuple(events),
        )

    steady = POLL_STEADY
    if want.idle_deadline is not None:
        steady = min(steady, (want.idle_deadline - now).total_seconds())
    elif want.reason is Reason.IN_USE and spec.idle.stop_after is not None:
        steady = min(steady, spec.idle.stop_after)  # the requests end: idleness counts again

    if inst is None or state in GONE:
        if inst is None and mem.instance_id and not mem.destroyed_for_idle:
            events.append(f"instance {mem.instance_id} vanished out of band")
        new_mem = replace(
            new_mem, ready_at=None, destroyed_for_idle=mem.destroyed_for_idle and not want.running
        )
        if not want.running:
            return done(Phase.STOPPED, want.reason, want.message, POLL_STEADY)
        if state in GONE:
            return done(
                Phase.PROVISIONING,
                Reason.WAITING_FOR_OLD_INSTANCE,
                "previous instance is being destroyed",
                POLL_TRANSITION,
            )
        actions.append(Action(ActionKind.ENSURE_SECURITY_GROUP))
        actions.append(Action(ActionKind.CREATE_INSTANCE, reason=want.reason))
        events.append("creating instance")
        return done(Phase.PROVISIONING, Reason.CREATING, "creating the VM", POLL_TRANSITION)

    assert inst is not None
    if state == "error":
        actions.append(Action(ActionKind.DELETE_INSTANCE, inst.id, reason=Reason.INSTANCE_ERROR))
        events.append(f"instance {inst.id} is in state error: deleting it")
        new_mem = replace(new_mem, destroyed_for_idle=False, ready_at=None)
        return done(
            Phase.FAILED, Reason.INSTANCE_ERROR, "the VM entered state error; replacing it", POLL_TRANSITION
        )

    if inst.labels.get(LABEL_SPEC_HASH, spec.instance_hash()) != spec.instance_hash():
        actions.append(Action(ActionKind.DELETE_INSTANCE, inst.id, reason=Reason.SPEC_CHANGED))
        events.append(f"spec changed (type, zone, template, disk or Ollama): replacing instance {inst.id}")
        new_mem = replace(new_mem, destroyed_for_idle=False, ready_at=None)
        return done(
            Phase.PROVISIONING, Reason.SPEC_CHANGED, "replacing the VM for the new spec", POLL_TRANSITION
        )

    if state == "running":
        if not want.running:
            destroy_now = spec.idle.mode is IdleMode.DESTROY_AFTER
            kind = ActionKind.DELETE_INSTANCE if destroy_now else ActionKind.STOP_INSTANCE
            actions.append(Action(kind, inst.id, reason=want.reason))
            new_mem = replace(new_mem, ready_at=None, destroyed_for_idle=destroy_now)
            return done(Phase.STOPPING, want.reason, want.message, POLL_TRANSITION)
        if new_mem.instance_running_at is None:
            new_mem = replace(new_mem, instance_running_at=now)
        if health is None:
            new_mem = replace(new_mem, ollama_at=None, models_at=None)
            actions.append(Action(ActionKind.PROBE, inst.id))
            return done(
                Phase.STARTING,
                Reason.WAITING_FOR_OLLAMA,
                "VM running; waiting for Ollama to answer",
                POLL_PROBE,
                running=True,
            )
        if new_mem.ollama_at is None:
            new_mem = replace(new_mem, ollama_at=now)
        missing = tuple(m for m in spec.models if not _has_model(health.models, m))
        if missing:
            new_mem = replace(new_mem, models_at=None)
            actions.append(Action(ActionKind.PULL_MODELS, inst.id, models=missing))
            return done(
                Phase.STARTING,
                Reason.PULLING_MODELS,
                f"pulling {', '.join(missing)}",
                POLL_PROBE,
                running=True,
                missing=missing,
            )
        if new_mem.models_at is None:
            new_mem = replace(new_mem, models_at=now)
        target = warm_up_target(spec)
        timed_out = False
        if (
            mem.phase != Phase.READY
            and target is not None
            and health.loaded is not None
            and not _has_model(health.loaded, target)
        ):
            since = new_mem.warm_up_at or now
            if (now - since).total_seconds() < WARM_UP_TIMEOUT:
                new_mem = replace(new_mem, warm_up_at=since)
                actions.append(Action(ActionKind.WARM_UP, inst.id, models=(target,)))
                return done(
                    Phase.STARTING,
                    Reason.WARMING_UP,
                    f"loading {target} into memory before declaring Ready",
                    POLL_PROBE,
                    running=True,
                    warming=True,
                )
            timed_out = True
            events.append(
                f"warm-up of {target} did not finish in {format_duration(WARM_UP_TIMEOUT)}: Ready without it"
            )
        if mem.phase != Phase.READY:
            new_mem = replace(new_mem, ready_at=now, warm_up_at=None)
            if spec.idle.stop_after is not None and want.reason not in (
                Reason.IN_USE,
                Reason.ALWAYS_ON,
                Reason.MONITOR_OFF,
            ):
                steady = min(steady, spec.idle.stop_after)  # idleness counts from readiness at the latest
            events.append("ready")
            m = new_mem
            if m.wake_requested_at is not None:
                last_wake = WakeTiming(
                    m.wake_requested_at, m.instance_running_at, now, m.ollama_at, m.models_at
                )
                new_mem = replace(new_mem, wake_requested_at=None)
        return done(Phase.READY, Reason.READY, "serving", steady, running=True, timed_out=timed_out)

    if state == "stopped":
        if want.running:
            actions.append(Action(ActionKind.START_INSTANCE, inst.id, reason=want.reason))
            return done(Phase.STARTING, Reason.STARTING, "starting the stopped VM", POLL_TRANSITION)
        since = new_mem.scaled_down_at or now
        destroy_after = spec.idle.destroy_after
        if destroy_after is not None:
            destroy_at = since + timedelta(seconds=destroy_after)
            if now >= destroy_at:
                actions.append(Action(ActionKind.DELETE_INSTANCE, inst.id, reason=Reason.STOPPED_TOO_LONG))
                new_mem = replace(new_mem, destroyed_for_idle=True)
                events.append(f"stopped for {format_duration(destroy_after)}: destroying instance {inst.id}")
                return done(
                    Phase.STOPPED, Reason.DESTROYING, "destroying the long-stopped VM", POLL_TRANSITION
                )
            return done(
                Phase.STOPPED, want.reason, want.message, min(POLL_STEADY, (destroy_at - now).total_seconds())
            )
        return done(Phase.STOPPED, want.reason, want.message, POLL_STEADY)

    # starting, stopping, migrating and any state this code does not know yet: wait and look again.
    phase = Phase.STOPPING if state == "stopping" else Phase.STARTING
    return done(
        phase, INSTANCE_IN.get(str(state), Reason.INSTANCE_TRANSITIONING), f"VM is {state}", POLL_TRANSITION
    )


def _has_model(present: tuple[str, ...], wanted: str) -> bool:
    """Ollama reports `name:tag`; a spec may omit `:latest`."""
    full = wanted if ":" in wanted.rsplit("/", 1)[-1] else f"{wanted}:latest"
    return wanted in present or full in present
