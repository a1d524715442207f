"""The RemoteOllama spec as the program holds it: `Spec` (defaults included) and `SpecError`.

Pure. Parsing a CR's spec into it is `parse.py`; its sections are `sections.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from .fields import default
from .schedule import Window
from .sections import (
    DEFAULT_ACTIVITY_INTERVAL,
    DEFAULT_DISK_SIZE,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MODEL,
    DEFAULT_TEMPLATE,
    DEFAULT_ZONE,
    Budget,
    IdlePolicy,
    InstanceType,
    NetworkPolicySettings,
    OllamaSettings,
    Placement,
    WakePolicy,
    parse_instance_type,
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
        """The CR-shaped spec (camelCase), as `kubectl get -o yaml` would show it."""
        out: dict[str, Any] = {
            "zone": self.zone,
            "instanceType": self.instance_type.name,
            "template": self.template,
            "diskSize": self.disk_size,
            "models": list(self.models),
            "idle": {
                k: v
                for k, v in (
                    ("stopAfter", self.idle.stop_after),
                    ("destroyAfter", self.idle.destroy_after),
                )
                if v is not None
            },
            "wake": {
                "holdTimeout": self.wake.hold_timeout,
                "maxHeldRequests": self.wake.max_held_requests,
                "maxHeldBodyBytes": self.wake.max_held_body_bytes,
                "progress": self.wake.progress,
            },
            "suspend": self.suspend,
            "allowedSourceCIDRs": list(self.allowed_source_cidrs),
            "modelManagement": self.model_management,
            "networkPolicy": {"enabled": self.network_policy.enabled}
            | ({"allowFrom": list(self.network_policy.allow_from)} if self.network_policy.allow_from else {}),
            "ollama": ({"image": self.ollama.image} if self.ollama.image else {})
            | ({"env": dict(self.ollama.env)} if self.ollama.env else {}),
        }
        if self.client_auth_secret:
            out["clientAuth"] = {"secretRef": {"name": self.client_auth_secret}}
        if self.credentials_secret:
            out["credentialsSecretRef"] = {"name": self.credentials_secret}
        if self.budget.set:
            out["budget"] = {
                k: v
                for k, v in (
                    ("maxRunningHoursPerDay", self.budget.max_running_hours_per_day),
                    ("maxMonthlySpend", self.budget.max_monthly_spend),
                )
                if v is not None
            }
        if self.schedule:
            out["schedule"] = [w.to_dict() for w in self.schedule]
        if self.placements:
            out["placements"] = [
                {"zone": p.zone, "instanceType": p.instance_type.name} for p in self.placements
            ]
        return out
