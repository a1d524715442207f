"""The pure lifecycle's test steps: a spec, an observed instance and memory at a minute after T0,
decided once (`step`); shared by the lifecycle and vocabulary tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import ActionKind, Activity, Decision, Health, Memory, Observation
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_SPEC_HASH
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Phase

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SPEC = parse_spec(
    {"credentialsSecretRef": {"name": "c"}, "idle": {"stopAfter": "30m", "destroyAfter": "24h"}}
)
HEALTHY = Health("0.33.0", ("granite3.1-dense:8b",))
A = ActionKind


def inst(state: str, spec: Spec = SPEC, **kw: object) -> ObservedInstance:
    return ObservedInstance(
        id="i-1", state=state, public_ip="127.0.10.2", labels={LABEL_SPEC_HASH: spec.instance_hash()}, **kw
    )  # type: ignore[arg-type]


def step(
    instance: ObservedInstance | None,
    *,
    minutes: float = 0,
    spec: Spec = SPEC,
    activity: Activity | None = None,
    memory: Memory | None = None,
    health: Health | None = HEALTHY,
    blocked: str | None = None,
) -> Decision:
    mem = memory or Memory(created_at=T0, phase=Phase.READY, ready_at=T0, instance_id="i-1")
    return decide(
        Observation(
            spec, instance, activity or Activity(), mem, T0 + timedelta(minutes=minutes), health, blocked
        )
    )


def ready_mem(**kw: object) -> Memory:
    return replace(Memory(created_at=T0, phase=Phase.READY, ready_at=T0, instance_id="i-1"), **kw)  # type: ignore[arg-type]


def down_mem(**kw: object) -> Memory:
    return replace(Memory(created_at=T0, phase=Phase.STOPPED, scaled_down_at=T0, instance_id="i-1"), **kw)  # type: ignore[arg-type]
