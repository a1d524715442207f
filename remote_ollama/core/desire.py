"""What the VM should be doing now, and why (pure): the spec's idle policy, schedule, budget and
suspension against the proxies' activity. `lifecycle.decide` turns the desire into actions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from remote_ollama.spec.model import Spec
from remote_ollama.spec.schedule import active_window
from remote_ollama.spec.sections import format_duration
from remote_ollama.spec.vocabulary import Phase, Reason

from .types import Activity, Observation


def wake_pending(obs: Observation) -> bool:
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
        return Desire(False, obs.budget.reason, obs.budget.exceeded)
    if spec.suspend:
        return Desire(False, Reason.SUSPENDED, "spec.suspend is true")
    failed_at = mem.setup_failed_at
    if mem.setup_failure and failed_at and (act.wake_requested is None or act.wake_requested <= failed_at):
        return Desire(False, Reason.SETUP_FAILED, mem.setup_failure)  # a newer request tries again
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
    if spec.replicas.max == 1 and spec.replicas.min >= 1:  # one VM; a replica group keeps its own floor
        return Desire(True, Reason.KEEP_WARM, "spec.replicas.min keeps the VM running (kubectl scale)")
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
