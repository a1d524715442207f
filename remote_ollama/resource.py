"""Names, the RemoteOllama spec model with defaults, and parsing of its values.

Pure: no I/O library is imported here, so the operator, standalone mode and the tests
all share one definition of what a valid spec is.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from .schedule import Window, parse_window
from .spec_fields import (
    KEEP_ALIVE_PATTERN,
    MODEL_PATTERN,
    ZONES,
)
from .spec_sections import (
    DEFAULT_ACTIVITY_INTERVAL as DEFAULT_ACTIVITY_INTERVAL,
)
from .spec_sections import (
    DEFAULT_DESTROY_AFTER as DEFAULT_DESTROY_AFTER,
)
from .spec_sections import (
    DEFAULT_DISK_SIZE as DEFAULT_DISK_SIZE,
)
from .spec_sections import (
    DEFAULT_HOLD_TIMEOUT as DEFAULT_HOLD_TIMEOUT,
)
from .spec_sections import (
    DEFAULT_INSTANCE_TYPE as DEFAULT_INSTANCE_TYPE,
)
from .spec_sections import (
    DEFAULT_MAX_HELD as DEFAULT_MAX_HELD,
)
from .spec_sections import (
    DEFAULT_MAX_HELD_BODY as DEFAULT_MAX_HELD_BODY,
)
from .spec_sections import (
    DEFAULT_MODEL as DEFAULT_MODEL,
)
from .spec_sections import (
    DEFAULT_STOP_AFTER as DEFAULT_STOP_AFTER,
)
from .spec_sections import (
    DEFAULT_TEMPLATE as DEFAULT_TEMPLATE,
)
from .spec_sections import (
    DEFAULT_ZONE as DEFAULT_ZONE,
)
from .spec_sections import (
    FAMILY_ALIASES as FAMILY_ALIASES,
)
from .spec_sections import (
    KNOWN_FAMILIES as KNOWN_FAMILIES,
)
from .spec_sections import (
    KNOWN_SIZES as KNOWN_SIZES,
)
from .spec_sections import (
    MAX_DISK as MAX_DISK,
)
from .spec_sections import (
    MAX_HELD as MAX_HELD,
)
from .spec_sections import (
    MAX_HELD_BODY as MAX_HELD_BODY,
)
from .spec_sections import (
    MAX_OLLAMA_ENV as MAX_OLLAMA_ENV,
)
from .spec_sections import (
    MIN_DISK as MIN_DISK,
)
from .spec_sections import (
    Budget as Budget,
)
from .spec_sections import (
    IdleMode as IdleMode,
)
from .spec_sections import (
    IdlePolicy as IdlePolicy,
)
from .spec_sections import (
    InstanceType as InstanceType,
)
from .spec_sections import (
    NetworkPolicySettings as NetworkPolicySettings,
)
from .spec_sections import (
    OllamaSettings as OllamaSettings,
)
from .spec_sections import (
    Placement as Placement,
)
from .spec_sections import (
    WakePolicy as WakePolicy,
)
from .spec_sections import (
    _parse_budget,
    _parse_client_auth,
    _parse_idle,
    _parse_network_policy,
    _parse_ollama,
    _parse_placement,
    _parse_wake,
    _secret_name,
)
from .spec_sections import (
    check_ollama_env as check_ollama_env,
)
from .spec_sections import (
    format_duration as format_duration,
)
from .spec_sections import (  # re-exported: the model's names are resource's
    parse_duration as parse_duration,
)
from .spec_sections import (
    parse_instance_type as parse_instance_type,
)
from .spec_sections import (
    parse_known_instance_type as parse_known_instance_type,
)
from .spec_sections import (
    parse_ollama_image as parse_ollama_image,
)

GROUP = "remoteollama.dev"
VERSION = "v1alpha1"
KIND = "RemoteOllama"
PLURAL = "remoteollamas"
SHORT_NAME = "rol"
FINALIZER = "remoteollama.dev/cleanup"

ANN_LAST_ACTIVITY = "remoteollama.dev/last-activity"
ANN_WAKE_REQUESTED = "remoteollama.dev/wake-requested"
# Requests the proxy has in flight, written with last-activity: the VM is never scaled to zero under one.
ANN_IN_FLIGHT = "remoteollama.dev/in-flight"
ANN_SLEEP_REQUESTED = "remoteollama.dev/sleep-requested"
# Set (to "true") on a resource being deleted whose cloud objects cannot be deleted (credentials
# revoked): the finalizer then lets go, with a Warning Event naming what may remain.
ANN_ABANDON_CLOUD_OBJECTS = "remoteollama.dev/abandon-cloud-objects"

LABEL_MANAGED_BY = "managed-by"
LABEL_MANAGED_BY_VALUE = "remote-ollama"
LABEL_OWNER = "remote-ollama-owner"
LABEL_CLUSTER = "remote-ollama-cluster"
# Hash of the fields whose change needs a new VM; lets an adopter tell a stale VM from a current one.
LABEL_SPEC_HASH = "remote-ollama-spec"
STANDALONE_CLUSTER = "standalone"

VM_PORT = 11435
PROXY_PORT = 11434
# The VM's certificate is issued for this fixed name (its IP is unknown before create);
# the proxy connects to the IP and verifies the certificate against this name (SNI).
VM_TLS_SERVER_NAME = "vm.remote-ollama.internal"
API_KEY_HEADER = "X-Ollama-Key"


def security_group_name(cluster: str, owner_uid: str) -> str:
    """Unique across namespaces, clusters and standalone users sharing one Exoscale organisation."""
    return f"remote-ollama-{cluster}-{owner_uid}"


def legacy_security_group_name(namespace: str, name: str) -> str:
    """The name before issue 14 (`team-a/llm` and `team/a-llm` collided); still used by a VM that
    was created with it, because that VM (labelled with the owner uid) proves the group is ours."""
    return f"remote-ollama-{namespace}-{name}"


def secret_name(name: str) -> str:
    return f"{name}-remote-ollama"


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
    suspend: bool = False
    allowed_source_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    activity_interval: float = DEFAULT_ACTIVITY_INTERVAL
    budget: Budget = field(default_factory=Budget)
    schedule: tuple[Window, ...] = ()
    # Fallbacks tried in order after (zone, instanceType) when a create or start fails for capacity/quota.
    placements: tuple[Placement, ...] = ()
    keep_alive: str = "30m"  # how long Ollama keeps the warmed-up model loaded
    warm_up: bool = True  # load models[0] before declaring Ready
    client_auth_secret: str = ""  # Secret whose data values are the accepted Bearer keys; "" = open
    model_management: bool = False  # pull/push/create/copy/delete/blobs allowed through the proxy
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


_MODEL_RE = re.compile(MODEL_PATTERN)
_KNOWN_FIELDS = {
    "credentialsSecretRef",
    "zone",
    "instanceType",
    "template",
    "diskSize",
    "models",
    "idle",
    "wake",
    "suspend",
    "allowedSourceCIDRs",
    "activityInterval",
    "budget",
    "schedule",
    "placements",
    "keepAlive",
    "warmUp",
    "clientAuth",
    "modelManagement",
    "networkPolicy",
    "ollama",
}
_KEEP_ALIVE_RE = re.compile(KEEP_ALIVE_PATTERN)


def spec_or_defaults(raw: dict[str, Any] | None) -> Spec:
    """The spec for readers that must not fail (the proxy, the children): defaults where it is invalid
    (the operator reports the problem as Ready=False InvalidSpec)."""
    try:
        return parse_spec(raw, require_credentials=False)
    except SpecError:
        return Spec()


def parse_spec(raw: dict[str, Any] | None, *, require_credentials: bool = True) -> Spec:
    """Build a Spec from the CR's `spec` (camelCase), applying defaults.

    Collects every problem before raising, so a user fixes them all in one round.
    """
    raw = dict(raw or {})
    problems: list[tuple[str, str]] = []
    defaults = Spec()

    def take(path: str, fn: Any, default: Any) -> Any:
        if path not in raw or raw[path] is None:
            return default
        try:
            return fn(raw[path])
        except (ValueError, TypeError) as exc:
            problems.append((f"spec.{path}", str(exc)))
            return default

    for unknown in sorted(set(raw) - _KNOWN_FIELDS):
        problems.append((f"spec.{unknown}", "unknown field"))

    cred = ""
    ref = raw.get("credentialsSecretRef")
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]:
        cred = _secret_name(ref["name"], "spec.credentialsSecretRef.name", problems)
    elif ref is not None or require_credentials:
        problems.append(
            ("spec.credentialsSecretRef.name", "required: the Secret holding api-key and api-secret")
        )
    client_secret = _parse_client_auth(raw.get("clientAuth"), problems)

    def zone(v: Any) -> str:
        if v not in ZONES:
            raise ValueError(f"unknown zone {v!r}; one of {', '.join(ZONES)}")
        return str(v)

    def disk(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"must be an integer number of GiB: {v!r}")
        if not MIN_DISK <= v <= MAX_DISK:
            raise ValueError(f"must be between {MIN_DISK} and {MAX_DISK} GiB: {v}")
        return v

    def text(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise TypeError(f"must be a non-empty string: {v!r}")
        return v

    def models(v: Any) -> tuple[str, ...]:
        if not isinstance(v, list) or not v:
            raise TypeError("must be a non-empty list of model names")
        bad = [m for m in v if not isinstance(m, str) or not _MODEL_RE.match(m)]
        if bad:
            raise ValueError(f"invalid model name(s): {bad!r}")
        return tuple(v)

    def cidrs(v: Any) -> tuple[str, ...]:
        if not isinstance(v, list) or not v:
            raise TypeError("must be a non-empty list of CIDRs")
        out = []
        for c in v:
            try:
                out.append(str(ipaddress.ip_network(str(c), strict=False)))
            except ValueError as exc:
                raise ValueError(f"invalid CIDR {c!r}") from exc
        return tuple(out)

    def boolean(v: Any) -> bool:
        if not isinstance(v, bool):
            raise TypeError(f"must be true or false: {v!r}")
        return v

    def positive_duration(v: Any) -> float:
        d = parse_duration(v)
        if d <= 0:
            raise ValueError("must be > 0")
        return d

    itype = take("instanceType", parse_known_instance_type, defaults.instance_type)
    idle = _parse_idle(raw.get("idle"), problems)
    wake = _parse_wake(raw.get("wake"), problems)
    budget = _parse_budget(raw.get("budget"), problems)
    windows: list[Window] = []
    raw_schedule = raw.get("schedule")
    if raw_schedule is not None:
        if not isinstance(raw_schedule, list):
            problems.append(("spec.schedule", "must be a list of windows"))
        else:
            for i, item in enumerate(raw_schedule):
                try:
                    windows.append(parse_window(item))
                except (ValueError, TypeError) as exc:
                    problems.append((f"spec.schedule[{i}]", str(exc)))
    placements: list[Placement] = []
    raw_placements = raw.get("placements")
    if raw_placements is not None:
        if not isinstance(raw_placements, list):
            problems.append(("spec.placements", "must be a list of {zone, instanceType}"))
        else:
            for i, item in enumerate(raw_placements):
                try:
                    placements.append(_parse_placement(item, itype, zone))
                except (ValueError, TypeError) as exc:
                    problems.append((f"spec.placements[{i}]", str(exc)))

    def keep_alive(v: Any) -> str:
        text_value = str(v).strip()
        if isinstance(v, bool) or not _KEEP_ALIVE_RE.match(text_value) or not text_value:
            raise ValueError(f"must be an Ollama keep_alive duration such as 30m, 1h or -1: {v!r}")
        return text_value

    spec = Spec(
        credentials_secret=cred,
        zone=take("zone", zone, defaults.zone),
        instance_type=itype,
        template=take("template", text, defaults.template),
        disk_size=take("diskSize", disk, defaults.disk_size),
        models=take("models", models, defaults.models),
        idle=idle,
        wake=wake,
        suspend=take("suspend", boolean, False),
        allowed_source_cidrs=take("allowedSourceCIDRs", cidrs, defaults.allowed_source_cidrs),
        activity_interval=take("activityInterval", positive_duration, defaults.activity_interval),
        budget=budget,
        schedule=tuple(windows),
        placements=tuple(placements),
        keep_alive=take("keepAlive", keep_alive, defaults.keep_alive),
        warm_up=take("warmUp", boolean, defaults.warm_up),
        client_auth_secret=client_secret,
        model_management=take("modelManagement", boolean, defaults.model_management),
        network_policy=_parse_network_policy(raw.get("networkPolicy"), problems),
        ollama=_parse_ollama(raw.get("ollama"), problems),
    )
    if problems:
        raise SpecError(problems)
    return spec
