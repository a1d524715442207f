"""Pure lifecycle decisions: (spec, observed instance, activity, memory, now) -> actions + status.

No I/O and no clock reads: the operator and standalone mode both call `decide()` and carry out
the actions it returns, so there is one lifecycle with two shells.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from remote_ollama.spec.names import LABEL_SPEC_HASH, VM_PORT
from remote_ollama.spec.schedule import next_edge
from remote_ollama.spec.sections import IdleMode, format_duration
from remote_ollama.spec.vocabulary import INSTANCE_IN, Phase, Reason

from .conditions import (
    WARM_UP_TIMEOUT,
    has_model,
    round_conditions,
    setup_condition,
    setup_failed,
    warm_up_target,
)
from .desire import Desire, credible, desire, wake_pending
from .observed import GONE, ObservedInstance
from .types import Action, ActionKind, Decision, Health, Memory, Observation, WakeTiming

POLL_TRANSITION = 5.0
POLL_PROBE = 3.0
POLL_STEADY = 300.0


def _without_milestones(mem: Memory) -> Memory:
    """Per-wake milestones are cleared when a wake starts or the VM scales to zero."""
    return replace(mem, instance_running_at=None, ollama_at=None, models_at=None, warm_up_at=None)


def endpoint_for(ip: str | None) -> str | None:
    return f"https://{ip}:{VM_PORT}" if ip else None


@dataclass
class _Round:
    """One `decide` call's working state: what it observed and wants, and what it has decided so far."""

    obs: Observation
    want: Desire
    horizon: float  # the next moment the answer may change by itself
    mem: Memory  # the memory being written (obs.memory is what it was)
    actions: list[Action] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    last_wake: WakeTiming | None = None

    def done(
        self,
        phase: Phase,
        reason: Reason,
        message: str,
        recheck: float,
        running: bool = False,
        missing: tuple[str, ...] = (),
        warming: bool = False,
        timed_out: bool = False,
    ) -> Decision:
        inst, health = self.obs.instance, self.obs.health
        live = inst if inst and inst.state not in GONE else None
        conditions = round_conditions(
            self.obs.spec, running, health if running else None, missing, message, warming, timed_out
        )
        if reason is Reason.SETUP_FAILED:
            conditions = setup_failed(conditions, message)
        setup = setup_condition(self.obs.setup if running else None)
        return Decision(
            actions=tuple(self.actions),
            phase=phase,
            reason=reason,
            message=message,
            conditions=conditions + ((setup,) if setup else ()),
            memory=replace(self.mem, phase=phase, instance_id=live.id if live else None),
            endpoint=endpoint_for(live.public_ip) if live else None,
            recheck_after=max(min(recheck, self.horizon), 1.0),
            last_wake=self.last_wake,
            events=tuple(self.events),
            setup=self.obs.setup if running else None,
        )


def decide(obs: Observation) -> Decision:
    """One reconcile step. The shell carries out `actions` in order, then calls again."""
    r = _Round(obs, desire(obs), _horizon(obs), obs.memory)
    _book_wake(r)
    inst = obs.instance
    if inst is None or inst.state in GONE:
        return _absent(r)
    replaced = _replace_broken(r, inst)
    if replaced is not None:
        return replaced
    if inst.state == "running":
        return _running(r, inst)
    if inst.state == "stopped":
        return _stopped(r, inst)
    # starting, stopping, migrating and any state this code does not know yet: wait and look again.
    phase = Phase.STOPPING if inst.state == "stopping" else Phase.STARTING
    reason = INSTANCE_IN.get(str(inst.state), Reason.INSTANCE_TRANSITIONING)
    return r.done(phase, reason, f"VM is {inst.state}", POLL_TRANSITION)


def _horizon(obs: Observation) -> float:
    """The next moment the answer may change by itself: a schedule edge, or a budget cap or reset."""
    horizon = POLL_STEADY
    edge = next_edge(obs.spec.schedule, obs.now) if obs.spec.schedule else None
    if edge is not None:
        horizon = min(horizon, (edge - obs.now).total_seconds())
    if obs.budget is not None and obs.budget.recheck_after is not None:
        horizon = min(horizon, obs.budget.recheck_after)
    return horizon


def _book_wake(r: _Round) -> None:
    """Bookkeeping of scale-down / wake, so a wake's phase times can be reported once it is Ready."""
    mem, now, want = r.obs.memory, r.obs.now, r.want
    if want.running:
        if mem.setup_failure is not None:  # asked for again after a failed setup: a new VM is tried
            r.mem = replace(r.mem, setup_failure=None, setup_failed_at=None)
        if mem.scaled_down_at is not None:
            requested = credible(r.obs.activity, now).wake_requested or now
            if mem.wake_refused_at is not None and mem.wake_refused_at > requested:
                requested = mem.wake_refused_at  # it could not start before the refusal ended
            r.mem = replace(
                _without_milestones(r.mem),
                scaled_down_at=None,
                wake_requested_at=requested,
                wake_refused_at=None,
            )
            r.events.append(f"waking: {want.message}")
    elif want.reason in (
        Reason.BUDGET_EXCEEDED,
        Reason.NAMESPACE_SPEND_CAP_REACHED,
        Reason.BLOCKED,
    ) and wake_pending(r.obs):
        r.mem = replace(r.mem, wake_refused_at=now)
    elif mem.scaled_down_at is None:
        r.mem = replace(_without_milestones(r.mem), scaled_down_at=now, wake_requested_at=None)
        r.events.append(f"scaling to zero: {want.message}")


def _absent(r: _Round) -> Decision:
    """No VM, or one being destroyed: create one when wanted."""
    inst, mem, want = r.obs.instance, r.obs.memory, r.want
    if inst is None and mem.instance_id and not mem.destroyed_for_idle:
        r.events.append(f"instance {mem.instance_id} vanished out of band")
    r.mem = replace(r.mem, ready_at=None, destroyed_for_idle=mem.destroyed_for_idle and not want.running)
    if not want.running:
        phase = Phase.FAILED if want.reason is Reason.SETUP_FAILED else Phase.STOPPED
        return r.done(phase, want.reason, want.message, POLL_STEADY)
    if inst is not None:
        return r.done(
            Phase.PROVISIONING,
            Reason.WAITING_FOR_OLD_INSTANCE,
            "previous instance is being destroyed",
            POLL_TRANSITION,
        )
    r.actions += [
        Action(ActionKind.ENSURE_SECURITY_GROUP),
        Action(ActionKind.CREATE_INSTANCE, reason=want.reason),
    ]
    r.events.append("creating instance")
    return r.done(Phase.PROVISIONING, Reason.CREATING, "creating the VM", POLL_TRANSITION)


def _replace_broken(r: _Round, inst: ObservedInstance) -> Decision | None:
    """A VM in state error, or one built for another spec, is deleted (the next round creates one)."""
    spec = r.obs.spec
    if inst.state == "error":
        reason, phase = Reason.INSTANCE_ERROR, Phase.FAILED
        event = f"instance {inst.id} is in state error: deleting it"
        message = "the VM entered state error; replacing it"
    elif inst.labels.get(LABEL_SPEC_HASH, spec.instance_hash()) != spec.instance_hash():
        reason, phase = Reason.SPEC_CHANGED, Phase.PROVISIONING
        event = f"spec changed (type, zone, template, disk or Ollama): replacing instance {inst.id}"
        message = "replacing the VM for the new spec"
    else:
        return None
    r.actions.append(Action(ActionKind.DELETE_INSTANCE, inst.id, reason=reason))
    r.events.append(event)
    r.mem = replace(r.mem, destroyed_for_idle=False, ready_at=None)
    return r.done(phase, reason, message, POLL_TRANSITION)


def _steady(r: _Round) -> float:
    """How long a steady Ready VM may go unwatched: until the idle deadline at the latest."""
    steady = POLL_STEADY
    stop_after = r.obs.spec.idle.stop_after
    if r.want.idle_deadline is not None:
        steady = min(steady, (r.want.idle_deadline - r.obs.now).total_seconds())
    elif r.want.reason is Reason.IN_USE and stop_after is not None:
        steady = min(steady, stop_after)  # the requests end: idleness counts again
    return steady


def _running(r: _Round, inst: ObservedInstance) -> Decision:
    """A running VM: stop it when unwanted, else bring it to Ready (probe, pull, warm up)."""
    spec, now, want = r.obs.spec, r.obs.now, r.want
    if not want.running:
        destroy_now = spec.idle.mode is IdleMode.DESTROY_AFTER or want.reason is Reason.SETUP_FAILED
        if destroy_now and _to_bake(r.obs):
            destroy_now = False  # stopped once, so its disk can be baked, then destroyed
        kind = ActionKind.DELETE_INSTANCE if destroy_now else ActionKind.STOP_INSTANCE
        r.actions.append(Action(kind, inst.id, reason=want.reason))
        r.mem = replace(r.mem, ready_at=None, destroyed_for_idle=destroy_now)
        return r.done(Phase.STOPPING, want.reason, want.message, POLL_TRANSITION)
    if r.mem.instance_running_at is None:
        r.mem = replace(r.mem, instance_running_at=now)
    setup = r.obs.setup
    if setup is not None and setup.failed:
        # the VM will not come up by itself: delete it (its log lines are in the status) and answer
        # held requests now; the next wake request after this tries a new VM
        failure = setup.failure()
        r.actions.append(Action(ActionKind.DELETE_INSTANCE, inst.id, reason=Reason.SETUP_FAILED))
        r.mem = replace(
            _without_milestones(r.mem),
            setup_failure=failure,
            setup_failed_at=now,
            scaled_down_at=now,
            wake_requested_at=None,
            ready_at=None,
            destroyed_for_idle=True,
        )
        r.events.append(f"{failure}; deleting instance {inst.id}")
        return r.done(Phase.FAILED, Reason.SETUP_FAILED, failure, POLL_TRANSITION, running=True)
    doing = f"; {setup.describe()}" if setup is not None and setup.state == "running" else ""
    health = r.obs.health
    if health is None:
        r.mem = replace(r.mem, ollama_at=None, models_at=None)
        r.actions.append(Action(ActionKind.PROBE, inst.id))
        message = f"VM running; waiting for Ollama to answer{doing}"
        return r.done(Phase.STARTING, Reason.WAITING_FOR_OLLAMA, message, POLL_PROBE, running=True)
    if r.mem.ollama_at is None:
        r.mem = replace(r.mem, ollama_at=now)
    missing = tuple(m for m in spec.models if not has_model(health.models, m))
    if missing:
        r.mem = replace(r.mem, models_at=None)
        r.actions.append(Action(ActionKind.PULL_MODELS, inst.id, models=missing))
        message = f"pulling {', '.join(missing)}{doing}"
        return r.done(
            Phase.STARTING, Reason.PULLING_MODELS, message, POLL_PROBE, running=True, missing=missing
        )
    if r.mem.models_at is None:
        r.mem = replace(r.mem, models_at=now)
    return _warm_up(r, inst, health)


def _warm_up(r: _Round, inst: ObservedInstance, health: Health) -> Decision:
    """Load models[0] before declaring Ready, for at most WARM_UP_TIMEOUT."""
    target, now = warm_up_target(r.obs.spec), r.obs.now
    timed_out = False
    if (
        r.obs.memory.phase != Phase.READY
        and target is not None
        and health.loaded is not None
        and not has_model(health.loaded, target)
    ):
        since = r.mem.warm_up_at or now
        if (now - since).total_seconds() < WARM_UP_TIMEOUT:
            r.mem = replace(r.mem, warm_up_at=since)
            r.actions.append(Action(ActionKind.WARM_UP, inst.id, models=(target,)))
            message = f"loading {target} into memory before declaring Ready"
            return r.done(Phase.STARTING, Reason.WARMING_UP, message, POLL_PROBE, running=True, warming=True)
        timed_out = True
        r.events.append(
            f"warm-up of {target} did not finish in {format_duration(WARM_UP_TIMEOUT)}: Ready without it"
        )
    return _ready(r, timed_out)


def _ready(r: _Round, timed_out: bool) -> Decision:
    """Ready: on the first round of readiness, the wake's timing is reported and idleness starts."""
    spec, now, want = r.obs.spec, r.obs.now, r.want
    steady = _steady(r)
    if r.obs.memory.phase != Phase.READY:
        live = r.obs.instance
        r.mem = replace(r.mem, ready_at=now, warm_up_at=None, set_up_instance=live.id if live else None)
        if spec.idle.stop_after is not None and want.reason not in (
            Reason.IN_USE,
            Reason.ALWAYS_ON,
            Reason.MONITOR_OFF,
        ):
            steady = min(steady, spec.idle.stop_after)  # idleness counts from readiness at the latest
        r.events.append("ready")
        m = r.mem
        if m.wake_requested_at is not None:
            r.last_wake = WakeTiming(
                m.wake_requested_at, m.instance_running_at, now, m.ollama_at, m.models_at
            )
            r.mem = replace(r.mem, wake_requested_at=None)
    return r.done(Phase.READY, Reason.READY, "serving", steady, running=True, timed_out=timed_out)


def _stopped(r: _Round, inst: ObservedInstance) -> Decision:
    """A stopped VM: start it when wanted; destroy it once stopped for idle.destroyAfter."""
    spec, now, want = r.obs.spec, r.obs.now, r.want
    if want.running:
        r.actions.append(Action(ActionKind.START_INSTANCE, inst.id, reason=want.reason))
        return r.done(Phase.STARTING, Reason.STARTING, "starting the stopped VM", POLL_TRANSITION)
    if _to_bake(r.obs):
        r.actions.append(Action(ActionKind.BAKE_TEMPLATE, inst.id, reason=Reason.BAKING_TEMPLATE))
        r.events.append(f"baking the set-up disk of instance {inst.id} into a private template")
    destroy_after = spec.idle.destroy_after
    if destroy_after is None:
        return r.done(Phase.STOPPED, want.reason, want.message, POLL_STEADY)
    destroy_at = (r.mem.scaled_down_at or now) + timedelta(seconds=destroy_after)
    if now < destroy_at:
        return r.done(
            Phase.STOPPED, want.reason, want.message, min(POLL_STEADY, (destroy_at - now).total_seconds())
        )
    r.actions.append(Action(ActionKind.DELETE_INSTANCE, inst.id, reason=Reason.STOPPED_TOO_LONG))
    r.mem = replace(r.mem, destroyed_for_idle=True)
    r.events.append(f"stopped for {format_duration(destroy_after)}: destroying instance {inst.id}")
    return r.done(Phase.STOPPED, Reason.DESTROYING, "destroying the long-stopped VM", POLL_TRANSITION)


def _to_bake(obs: Observation) -> bool:
    """spec.coldStart.template wants a template of the current setup, none exists, and this is the
    instance whose setup completed (so its disk holds the driver, Docker, the image and nginx)."""
    inst = obs.instance
    return obs.baked is False and inst is not None and obs.memory.set_up_instance == inst.id
