"""Between the resource's YAML and the lifecycle's types (pure): read activity and memory, write status.

Conditions follow metav1.Condition: lastTransitionTime changes only when the status flips.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import (
    ActionKind,
    Activity,
    Condition,
    Decision,
    Memory,
    WakeTiming,
    memory_from_json,
    memory_to_json,
)
from remote_ollama.spec.names import (
    ANN_IN_FLIGHT,
    ANN_LAST_ACTIVITY,
    ANN_SLEEP_REQUESTED,
    ANN_WAKE_REQUESTED,
    PROXY_PORT,
)
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import ConditionType, Phase, Reason

JSON = dict[str, Any]


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 from an annotation; None (not a crash) for anything malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wake_request(meta: JSON) -> str | None:
    """The wake-requested annotation as a round echoes it (status.wakeRequestAnswered): only a
    well-formed time, as short as one (the tenant writes it)."""
    value = (meta.get("annotations") or {}).get(ANN_WAKE_REQUESTED)
    return value if isinstance(value, str) and len(value) <= 40 and parse_time(value) else None


def malformed_annotations(meta: JSON) -> list[str]:
    ann = meta.get("annotations") or {}
    return [
        k
        for k in (ANN_LAST_ACTIVITY, ANN_WAKE_REQUESTED, ANN_SLEEP_REQUESTED)
        if k in ann and parse_time(ann[k]) is None
    ]


def activity_from(meta: JSON) -> Activity:
    ann = meta.get("annotations") or {}
    raw = str(ann.get(ANN_IN_FLIGHT) or "0")
    return Activity(
        last_activity=parse_time(ann.get(ANN_LAST_ACTIVITY)),
        wake_requested=parse_time(ann.get(ANN_WAKE_REQUESTED)),
        sleep_requested=parse_time(ann.get(ANN_SLEEP_REQUESTED)),
        in_flight=int(raw) if raw.isdigit() else 0,  # malformed: as if none (the heartbeat still counts)
    )


# Memory fields kept in status.lifecycle (camelCase, as the CRD declares them); the others are
# derived: created_at from creationTimestamp, instance_id from status.instance, phase from status.phase.
LIFECYCLE_FIELDS = {
    "scaled_down_at": "scaledDownAt",
    "wake_requested_at": "wakeRequestedAt",
    "instance_running_at": "instanceRunningAt",
    "ollama_at": "ollamaAt",
    "models_at": "modelsAt",
    "warm_up_at": "warmUpAt",
    "ready_at": "readyAt",
    "destroyed_for_idle": "destroyedForIdle",
    "wake_refused_at": "wakeRefusedAt",
    "setup_failure": "setupFailure",
    "setup_failed_at": "setupFailedAt",
    "set_up_instance": "setUpInstance",
}


def memory_from(body: JSON) -> Memory:
    status = body.get("status") or {}
    stored = status.get("lifecycle") or {}
    flat = {snake: stored.get(camel) for snake, camel in LIFECYCLE_FIELDS.items()}
    flat["instance_id"] = (status.get("instance") or {}).get("id")
    flat["phase"] = status.get("phase")
    created = parse_time((body.get("metadata") or {}).get("creationTimestamp"))
    flat["created_at"] = (created or utcnow()).isoformat()
    return memory_from_json({k: v for k, v in flat.items() if v is not None})


def lifecycle_json(mem: Memory) -> JSON:
    """status.lifecycle as a merge patch: None clears a field."""
    flat = memory_to_json(mem)
    out: JSON = {}
    for snake, camel in LIFECYCLE_FIELDS.items():
        value = flat.get(snake)
        if isinstance(value, str) and snake.endswith("_at"):
            parsed = parse_time(value)
            value = rfc3339(parsed) if parsed else None
        out[camel] = value
    return out


def conditions(
    previous: list[JSON] | None, new: list[Condition], generation: int, now: datetime
) -> list[JSON]:
    old = {c.get("type"): c for c in previous or []}
    out = []
    for c in new:
        status = "True" if c.status else "False"
        prior = old.get(c.type)
        since = prior.get("lastTransitionTime") if prior and prior.get("status") == status else None
        out.append(
            {
                "type": c.type,
                "status": status,
                "reason": str(c.reason),
                "message": c.message,
                "lastTransitionTime": since or rfc3339(now),
                "observedGeneration": generation,
            }
        )
    return out


def credentials_condition(problem: str | None) -> Condition:
    if problem:
        return Condition(ConditionType.CREDENTIALS_VALID, False, Reason.INVALID_CREDENTIALS, problem)
    return Condition(ConditionType.CREDENTIALS_VALID, True, Reason.VALID, "")


def status_patch(
    body: JSON,
    decision: Decision,
    instance: ObservedInstance | None,
    extra: list[Condition],
    now: datetime,
) -> JSON:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    generation = int(meta.get("generation") or 1)
    patch: JSON = {
        "phase": str(decision.phase),
        "message": decision.message,
        "conditions": conditions(status.get("conditions"), _blocked(decision, extra), generation, now),
        "observedGeneration": generation,
        "serviceURL": f"http://{meta.get('name')}.{meta.get('namespace')}.svc:{PROXY_PORT}",
        "lifecycle": lifecycle_json(decision.memory),
    }
    patch |= _vm_fields(decision, instance)
    activity = activity_from(meta)
    if activity.last_activity:
        patch["lastActivity"] = rfc3339(activity.last_activity)
    patch |= replica_status(decision, instance, activity)
    if decision.last_wake is not None:
        patch["lastWake"] = _wake_json(decision.last_wake)
    return patch


def _blocked(decision: Decision, extra: list[Condition]) -> list[Condition]:
    """The decision's conditions and `extra`; a False one among `extra` (no credentials) is why
    Ready is False."""
    blocking = next((c for c in extra if not c.status), None)
    return [
        Condition(ConditionType.READY, False, blocking.reason, blocking.message)
        if blocking and c.type == ConditionType.READY
        else c
        for c in decision.conditions
    ] + extra


def _vm_fields(decision: Decision, instance: ObservedInstance | None) -> JSON:
    """status.instance, status.endpoint and status.setup (None clears them in the merge patch)."""
    patch: JSON = {}
    if instance is not None and decision.memory.instance_id:
        patch["instance"] = {
            "id": instance.id,
            "state": instance.state,
            "publicIP": instance.public_ip,
            "zone": instance.zone,
            "type": instance.instance_type,
        }
    elif decision.memory.instance_id is None:
        patch["instance"] = None
    # the endpoint is kept while the VM is only stopped: same IP when it starts again
    if decision.endpoint:
        patch["endpoint"] = decision.endpoint
    elif decision.memory.instance_id is None:
        patch["endpoint"] = None
    # what the VM's setup says (VM-written: checked, bounded, redacted by core.setup); kept after the
    # VM is gone (a failed setup's log stays visible) until a new VM is created
    if decision.setup is not None:
        patch["setup"] = decision.setup.to_status()
    elif ActionKind.CREATE_INSTANCE in decision.kinds:
        patch["setup"] = None
    return patch


def _wake_json(w: WakeTiming) -> JSON:
    return {
        "requestedAt": rfc3339(w.requested_at),
        "runningAt": rfc3339(w.running_at) if w.running_at else None,
        "ollamaAt": rfc3339(w.ollama_at) if w.ollama_at else None,
        "modelsAt": rfc3339(w.models_at) if w.models_at else None,
        "readyAt": rfc3339(w.ready_at),
        "seconds": round(w.seconds, 3),
    }


UP = frozenset({Phase.PENDING, Phase.PROVISIONING, Phase.STARTING, Phase.READY})


def replica_status(decision: Decision, instance: ObservedInstance | None, activity: Activity) -> JSON:
    """The replica fields of the status for the operator's one VM (replica 0; scale-out, issue 19,
    with more replicas is replica_set.py): the Replicas column (ready/desired), the scale
    subresource's readyReplicas and status.replicas with its one member."""
    ready = int(decision.phase is Phase.READY)
    desired = int(decision.phase in UP)
    member: JSON = {"index": 0, "phase": str(decision.phase), "inFlight": activity.in_flight}
    if instance is not None and decision.memory.instance_id:
        member |= {"zone": instance.zone} | ({"publicIP": instance.public_ip} if instance.public_ip else {})
    if activity.last_activity:
        member["lastActivity"] = rfc3339(activity.last_activity)
    return {
        "readyReplicas": ready,
        "desiredReplicas": desired,
        "replicaSummary": f"{ready}/{desired}",
        "replicas": [member],
    }


class OllamaAnswers:
    """status.ollama: what the VM last answered to /api/version and /api/tags, so that a proxy
    started while no VM runs (a restart, a rollout) answers those routes as the VM did."""

    def __init__(self, answered: JSON) -> None:
        self.answered = answered

    def add_to(self, patch: JSON, body: JSON, now: datetime) -> None:
        if self.answered and (body.get("status") or {}).get("ollama") != self.answered:
            patch["ollama"] = dict(self.answered)
