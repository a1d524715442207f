"""The RemoteOllama spec as the program holds it: `Spec` (defaults included) and `SpecError`.

Pure. Parsing a CR's spec into it is `parse.py`; its sections are `sections.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from .fields import FIELD, default
from .rows import attr, children
from .schedule import Window
from .sections import (
    DEFAULT_ACTIVITY_INTERVAL,
    DEFAULT_DISK_SIZE,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MODEL,
    DEFAULT_TEMPLATE,
    DEFAULT_ZONE,
    Budget,
    ColdStart,
    IdlePolicy,
    InstanceType,
    NetworkPolicySettings,
    OllamaSettings,
    Placement,
    ReplicaPolicy,
    WakePolicy,
    parse_instance_type,
    target_in_flight,
)


class SpecError(ValueError):
    """Every problem found in a spec, each with its field path."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


@dataclass(frozen=True)
class Spec:
    credentials_secret: str = ""
    zone: str = DEFAULT_ZONE
    instance_type: InstanceType = field(default_factory=lambda: parse_instance_type(DEFAULT_INSTANCE_TYPE))
    template: str = DEFAULT_TEMPLATE
    disk_size: int = DEFAULT_DISK_SIZE
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    idle: IdlePolicy = field(default_factory=IdlePolicy)
    wake: WakePolicy = field(default_factory=WakePolicy)
    suspend: bool = default("suspend")
    allowed_source_cidrs: tuple[str, ...] = tuple(default("allowedSourceCIDRs"))
    activity_interval: float = DEFAULT_ACTIVITY_INTERVAL
    budget: Budget = field(default_factory=Budget)
    schedule: tuple[Window, ...] = ()
    # Fallbacks tried in order after (zone, instanceType) when a create or start fails for capacity/quota.
    placements: tuple[Placement, ...] = ()
    keep_alive: str = default("keepAlive")  # how long Ollama keeps the warmed-up model loaded
    warm_up: bool = default("warmUp")  # load models[0] before declaring Ready
    client_auth_secret: str = ""  # Secret whose data values are the accepted Bearer keys; "" = open
    model_management: bool = default(
        "modelManagement"
    )  # pull/push/create/copy/delete/blobs allowed through the proxy
    network_policy: NetworkPolicySettings = field(default_factory=NetworkPolicySettings)
    ollama: OllamaSettings = field(default_factory=OllamaSettings)
    cold_start: ColdStart = field(default_factory=ColdStart)
    replicas: ReplicaPolicy = field(default_factory=ReplicaPolicy)

    @property
    def target_in_flight(self) -> int:
        """Requests in flight one replica is meant to carry (spec.replicas.targetInFlight resolved)."""
        return target_in_flight(self.replicas, self.ollama.env)

    def candidates(self) -> tuple[Placement, ...]:
        """Every placement in preference order: the spec's own zone and type first, no duplicates."""
        out: list[Placement] = [Placement(self.zone, self.instance_type)]
        for p in self.placements:
            if p not in out:
                out.append(p)
        return tuple(out)

    def at_placement(self, index: int) -> Spec:
        """This spec with zone and instance type taken from candidate `index` (wrapping around)."""
        cands = self.candidates()
        p = cands[index % len(cands)]
        if p.zone == self.zone and p.instance_type == self.instance_type:
            return self
        return replace(self, zone=p.zone, instance_type=p.instance_type)

    def instance_hash(self) -> str:
        """Short hash of the fields that can only change by creating a new VM."""
        key: list[Any] = [self.zone, self.instance_type.name, self.template, self.disk_size]
        if self.ollama.image or self.ollama.env:  # the VM's Ollama is fixed in its user-data
            key.append([self.ollama.image, list(self.ollama.env)])
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The CR-shaped spec (camelCase), as `kubectl get -o yaml` would show it: by the field table."""
        out: dict[str, Any] = {}
        if self.credentials_secret:
            out["credentialsSecretRef"] = {"name": self.credentials_secret}
        if self.client_auth_secret:
            out["clientAuth"] = {"secretRef": {"name": self.client_auth_secret}}
        for row in children(""):
            if row.path not in _REFERENCES:
                value = _cr_value(row.path, getattr(self, attr(row.path)))
                if value not in (None, [], {}) or (value == {} and row.default is not None):
                    out[row.path] = value
        return out


# The spec's Secret references: the Spec holds only their names.
_REFERENCES = ("credentialsSecretRef", "clientAuth")


def _cr_value(path: str, value: Any) -> Any:
    """A Spec value as the CR spells it at `path`."""
    if isinstance(value, InstanceType):
        return value.name
    if isinstance(value, Placement):
        return {"zone": value.zone, "instanceType": value.instance_type.name}
    if isinstance(value, Window):
        return value.to_dict()
    if isinstance(value, tuple) and f"{path}{{}}" in FIELD:
        return dict(value)
    if isinstance(value, tuple):
        return [_cr_value(f"{path}[]", item) for item in value]
    if FIELD[path].type == "object" and not isinstance(value, dict):
        shaped = {
            c.path.rsplit(".", 1)[-1]: _cr_value(c.path, getattr(value, attr(c.path))) for c in children(path)
        }
        return {k: v for k, v in shaped.items() if v not in (None, [], {})}
    return value
