"""The lifecycle's vocabulary of types (pure): what a round observes (`Observation`: activity,
memory, health), what it decides (`Decision`: actions, phase, conditions, wake timing), and
`Memory` as JSON for the state file and status.lifecycle. `lifecycle.decide` works on these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any

from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Phase, Reason

from .cost import BudgetVerdict
from .observed import ObservedInstance
from .setup import SetupReport


@dataclass(frozen=True)
class Health:
    """What the VM's Ollama answered (None in Observation when it was not probed or did not answer)."""

    version: str
    models: tuple[str, ...]
    # Models in memory (GET /api/ps); None when not known (not asked, or the VM did not say).
    loaded: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Activity:
    """Timestamps from the proxy's annotations (or standalone's in-process sink) and the user."""

    last_activity: datetime | None = None
    wake_requested: datetime | None = None
    sleep_requested: datetime | None = None
    in_flight: int = 0


@dataclass(frozen=True)
class Memory:
    """What the shell persisted from earlier decisions (status in operator mode, state file standalone)."""

    created_at: datetime | None = None  # when the resource / standalone state first appeared
    scaled_down_at: datetime | None = None  # when the last scale to zero was decided
    instance_id: str | None = None
    phase: Phase = Phase.PENDING
    wake_requested_at: datetime | None = None  # the wake currently being served (for timing)
    instance_running_at: datetime | None = None
    ollama_at: datetime | None = None  # when Ollama first answered after the VM ran (wake timing)
    models_at: datetime | None = None  # when every spec.models was first present (wake timing)
    warm_up_at: datetime | None = None  # when the current warm-up (load of models[0]) was first asked
    ready_at: datetime | None = None  # when the VM last became Ready: idleness counts from here at the latest
    # True when no instance exists because we scaled to zero by destroying (not because of a fault).
    destroyed_for_idle: bool = False
    # The last round that refused a pending wake (budget, blocked): a wake's time counts from
    # after it, not from a request that had to wait for the refusal to end.
    wake_refused_at: datetime | None = None
    # The last VM setup failure (step and log lines, redacted) and when it was seen: requests are
    # refused with it until a wake is asked for after it (then a new VM is tried).
    setup_failure: str | None = None
    setup_failed_at: datetime | None = None
    # The instance whose setup completed (it became Ready): its disk is worth baking into a template.
    set_up_instance: str | None = None


@dataclass(frozen=True)
class Observation:
    spec: Spec
    instance: ObservedInstance | None
    activity: Activity
    memory: Memory
    now: datetime
    health: Health | None = None
    # instance exists with labels but its hash differs from the desired one
    blocked_reason: str | None = None  # e.g. credentials missing: do not run
    budget: BudgetVerdict | None = None  # from cost.budget_verdict(): over a cap means scale to zero
    # False: the embedding program turned the idle monitor off (embedded/): idleness is not looked at
    idle_monitor: bool = True
    # what the VM's setup script reports (None: no document, or not asked)
    setup: SetupReport | None = None
    # spec.coldStart.template: whether a template of the current setup exists (None: not wanted,
    # not possible for this disk, or its bake failed for this instance)
    baked: bool | None = None


class ActionKind(StrEnum):
    ENSURE_SECURITY_GROUP = "ensure-security-group"
    CREATE_INSTANCE = "create-instance"
    START_INSTANCE = "start-instance"
    STOP_INSTANCE = "stop-instance"
    DELETE_INSTANCE = "delete-instance"
    PULL_MODELS = "pull-models"
    WARM_UP = "warm-up"  # load models[0] into memory (an empty /api/generate) before declaring Ready
    PROBE = "probe"  # ask the VM's Ollama whether it answers and which models it has
    BAKE_TEMPLATE = "bake-template"  # snapshot the stopped, set-up VM's disk into a private template


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    instance_id: str | None = None
    models: tuple[str, ...] = ()
    reason: Reason | None = None


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: Reason
    message: str = ""


@dataclass(frozen=True)
class WakeTiming:
    """One wake's milestones: requested -> VM running -> Ollama answering -> models present -> Ready
    (after the warm-up load). The first request served is only known to the proxy."""

    requested_at: datetime
    running_at: datetime | None
    ready_at: datetime
    ollama_at: datetime | None = None
    models_at: datetime | None = None

    @property
    def seconds(self) -> float:
        return (self.ready_at - self.requested_at).total_seconds()

    def phases(self) -> dict[str, float]:
        """Seconds of each phase whose two ends are known, keyed by the milestone it ends at
        (`to_running`, `to_ollama`, `to_models`, `to_ready`), plus `total`."""
        marks = (
            ("requested", self.requested_at),
            ("running", self.running_at),
            ("ollama", self.ollama_at),
            ("models", self.models_at),
            ("ready", self.ready_at),
        )
        out = {
            f"to_{name}": (at - prev).total_seconds()
            for (_, prev), (name, at) in pairwise(marks)
            if prev is not None and at is not None
        }
        out["total"] = self.seconds
        return out


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    phase: Phase
    reason: Reason
    message: str
    conditions: tuple[Condition, ...]
    memory: Memory
    endpoint: str | None
    recheck_after: float  # seconds until the shell should look again
    last_wake: WakeTiming | None = None  # set once, on the decision that completes a wake
    events: tuple[str, ...] = ()  # human sentences worth an Event / a log line (transitions, faults)
    setup: SetupReport | None = None  # the VM's setup document of this round (for display)

    @property
    def kinds(self) -> tuple[ActionKind, ...]:
        return tuple(a.kind for a in self.actions)


# How often to look again while something moves on the cloud side, and at most while idle.


# -- Memory as JSON (the state file, status.lifecycle) ----------------------------------------------


def _json_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def memory_to_json(mem: Memory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(mem).items():
        out[key] = (
            value.isoformat() if isinstance(value, datetime) else str(value) if key == "phase" else value
        )
    return out


def memory_from_json(data: dict[str, Any]) -> Memory:
    kw: dict[str, Any] = {}
    for f in fields(Memory):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "phase":
            kw[f.name] = Phase(value) if value in Phase._value2member_map_ else Phase.PENDING
        elif f.name in ("instance_id", "setup_failure", "set_up_instance"):
            kw[f.name] = str(value) if value else None
        elif f.name == "destroyed_for_idle":
            kw[f.name] = bool(value)
        else:
            kw[f.name] = _json_time(value)
    return Memory(**kw)
