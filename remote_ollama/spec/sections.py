"""The spec's parts (pure): durations, instance types, the idle/wake/budget/placement/network-policy/
ollama/replicas sections as the program holds them, with their defaults (from fields.py).
`parse.parse_spec` fills them from a CR by the field table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from remote_ollama.spec.fields import FIELD, default
from remote_ollama.spec.fields_row import DEFAULT_TARGET_IN_FLIGHT

from .patterns import DNS1123_SUBDOMAIN

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: str | int | float) -> float:
    """Seconds from `1800`, `1800s`, `30m`, `1h30m`, `0.5h`; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0 or value != value:
            raise ValueError(f"duration must be >= 0: {value!r}")
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    m = _DURATION_RE.fullmatch(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"not a duration (use e.g. 1800, 1800s, 30m, 1h30m): {value!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


# Every default, pattern and bound comes from the settings model's table (fields.py).
DEFAULT_ZONE: str = default("zone")
DEFAULT_INSTANCE_TYPE: str = default("instanceType")
DEFAULT_TEMPLATE: str = default("template")
DEFAULT_DISK_SIZE: int = default("diskSize")
DEFAULT_MODEL: str = default("models")[0]
DEFAULT_HOLD_TIMEOUT = parse_duration(default("wake.holdTimeout"))
DEFAULT_MAX_HELD: int = default("wake.maxHeldRequests")
DEFAULT_ACTIVITY_INTERVAL = 15.0  # the CRD leaves it unset: the proxy's own default
DEFAULT_MAX_HELD_BODY: int = default("wake.maxHeldBodyBytes")
MIN_DISK, MAX_DISK = int(FIELD["diskSize"].minimum or 0), int(FIELD["diskSize"].maximum or 0)
_DNS1123_RE = re.compile(DNS1123_SUBDOMAIN)

# GPU types written without the "gpu" prefix (a5000.small, as the first releases took them) map to their families.
# Families and sizes Exoscale sells (docs/design.md section 6); used to reject typos before any cloud call.
KNOWN_FAMILIES = frozenset(
    {
        "standard",
        "cpu",
        "memory",
        "storage",
        "colossus",
        "gpu",
        "gpu2",
        "gpu3",
        "gpu3080ti",
        "gpua30",
        "gpua5000",
        "gpub300",
        "gpurtx6000pro",
    }
)
KNOWN_SIZES = frozenset(
    {"micro", "tiny", "small", "medium", "large", "extra-large", "huge", "mega", "titan", "jumbo"}
)
FAMILY_ALIASES = {"a5000": "gpua5000", "a30": "gpua30", "3080ti": "gpu3080ti", "rtx6000pro": "gpurtx6000pro"}


def format_duration(seconds: float) -> str:
    """`1h30m`-style text for people (status lines, events)."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s or not (h or m) else ""]
    return "".join(parts)


@dataclass(frozen=True)
class InstanceType:
    family: str
    size: str

    @property
    def name(self) -> str:
        return f"{self.family}.{self.size}"


_TYPE_RE = re.compile(r"^([a-z0-9]+)\.([a-z0-9]+(?:-[a-z0-9]+)*)$")


def parse_instance_type(value: str) -> InstanceType:
    """`gpua5000.small` -> (gpua5000, small); `a5000.small` is accepted as an alias."""
    m = _TYPE_RE.fullmatch(value.strip().lower()) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"instance type must be <family>.<size>, e.g. gpua5000.small: {value!r}")
    family, size = m.groups()
    return InstanceType(FAMILY_ALIASES.get(family, family), size)


def parse_known_instance_type(value: str) -> InstanceType:
    """parse_instance_type, and the family and size must be ones Exoscale sells (a typo fails here,
    not at the cloud)."""
    itype = parse_instance_type(value)
    if itype.family not in KNOWN_FAMILIES or itype.size not in KNOWN_SIZES:
        raise ValueError(
            f"not a known instance type (e.g. gpua5000.small, gpu3080ti.small, gpu2.medium): {value!r}"
        )
    return itype


class IdleMode(StrEnum):
    """What idleness does to the VM (spec.idle; standalone EXOSCALE_IDLE_TIMEOUT, 0 = always on)."""

    ALWAYS_ON = "AlwaysOn"  # no stopAfter: never scaled to zero for idleness
    STOP_AFTER = "StopAfter"  # stopped after stopAfter idle, kept stopped
    STOP_THEN_DESTROY = "StopThenDestroy"  # stopped after stopAfter, destroyed destroyAfter later
    DESTROY_AFTER = "DestroyAfter"  # destroyAfter 0: destroyed (not stopped) after stopAfter idle


@dataclass(frozen=True)
class IdlePolicy:
    """stop_after None: always on. destroy_after None: stop only; 0: destroy instead of stop."""

    stop_after: float | None = parse_duration(default("idle")["stopAfter"])
    destroy_after: float | None = parse_duration(default("idle")["destroyAfter"])

    @property
    def mode(self) -> IdleMode:
        if self.stop_after is None:
            return IdleMode.ALWAYS_ON
        if self.destroy_after is None:
            return IdleMode.STOP_AFTER
        return IdleMode.DESTROY_AFTER if self.destroy_after == 0 else IdleMode.STOP_THEN_DESTROY


@dataclass(frozen=True)
class WakePolicy:
    hold_timeout: float = DEFAULT_HOLD_TIMEOUT
    max_held_requests: int = DEFAULT_MAX_HELD
    max_held_body_bytes: int = DEFAULT_MAX_HELD_BODY  # a held request's body kept in memory, at most
    progress: bool = False  # waking-progress chunks on every held streaming generate/chat


@dataclass(frozen=True)
class ReplicaPolicy:
    """How many VMs serve the endpoint (spec.replicas). max 1: one VM, today's behaviour.

    target_in_flight None: OLLAMA_NUM_PARALLEL from spec.ollama.env, else 4 (`Spec.target_in_flight`),
    so one replica is asked to carry what its Ollama runs at once.
    """

    min: int = default("replicas.min")
    max: int = default("replicas.max")
    target_in_flight: int | None = None
    scale_down_after: float = parse_duration(default("replicas.scaleDownAfter"))
    routing: str = default("replicas.routing")  # proxy/routing.py: leastOutstanding or prefixAffinity


def target_in_flight(replicas: ReplicaPolicy, ollama_env: tuple[tuple[str, str], ...]) -> int:
    """The in-flight requests one replica is meant to carry: the spec's, else Ollama's parallelism."""
    if replicas.target_in_flight is not None:
        return replicas.target_in_flight
    parallel = dict(ollama_env).get("OLLAMA_NUM_PARALLEL", "")
    if parallel.isdigit() and 1 <= int(parallel) <= (FIELD["replicas.targetInFlight"].maximum or 0):
        return int(parallel)
    return DEFAULT_TARGET_IN_FLIGHT


@dataclass(frozen=True)
class NetworkPolicySettings:
    """allow_from empty: only the resource's own namespace may reach the proxy."""

    enabled: bool = True
    allow_from: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class OllamaSettings:
    """image None: the image this version pins (vm/cloudinit.py)."""

    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ModelVolume:
    """spec.coldStart.modelVolume: Ollama's model directory on a block-storage volume (GiB)."""

    enabled: bool = default("coldStart.modelVolume.enabled")
    size: int = default("coldStart.modelVolume.size")


@dataclass(frozen=True)
class ColdStart:
    """spec.coldStart. `template`: auto bakes the set-up VM's disk into a private template and
    creates the next VM from it; off always sets a stock template up. `model_volume`: the parser
    hands the nested object over as a mapping of its fields."""

    template: str = "auto"
    model_volume: ModelVolume = field(default_factory=ModelVolume)

    def __post_init__(self) -> None:
        if isinstance(self.model_volume, dict):
            object.__setattr__(self, "model_volume", ModelVolume(**self.model_volume))

    @property
    def bake(self) -> bool:
        return self.template == "auto"


@dataclass(frozen=True)
class Budget:
    """Caps on use: past either one the VM is scaled to zero and wakes are refused until it resets."""

    max_running_hours_per_day: float | None = None  # resets at 00:00 UTC
    max_monthly_spend: float | None = None  # estimated, in the price table's currency; resets monthly

    @property
    def set(self) -> bool:
        return self.max_running_hours_per_day is not None or self.max_monthly_spend is not None


@dataclass(frozen=True)
class Placement:
    """Where a VM may run: a zone and an instance type."""

    zone: str
    instance_type: InstanceType

    @property
    def name(self) -> str:
        return f"{self.zone}/{self.instance_type.name}"


def parse_placement(raw: Any, default_type: InstanceType, zone_check: Any) -> Placement:
    if not isinstance(raw, dict):
        raise TypeError("must be an object with zone and instanceType")
    unknown = sorted(set(raw) - {"zone", "instanceType"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    if "zone" not in raw:
        raise ValueError("zone is required")
    zone = zone_check(raw["zone"])
    itype = parse_known_instance_type(raw["instanceType"]) if "instanceType" in raw else default_type
    return Placement(zone, itype)


def secret_ref_name(value: Any, path: str, problems: list[tuple[str, str]]) -> str:
    """A Secret name goes into an API URL: only a DNS-1123 subdomain passes."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS1123_RE.fullmatch(value):
        problems.append((path, f"must be a DNS-1123 subdomain (lower case a-z, 0-9, '-', '.'): {value!r}"))
        return ""
    return value


# Each object row's Python type: parse.py passes its children as keyword arguments by their Python names.
SECTIONS: dict[str, type] = {
    "idle": IdlePolicy,
    "wake": WakePolicy,
    "budget": Budget,
    "networkPolicy": NetworkPolicySettings,
    "ollama": OllamaSettings,
    "coldStart": ColdStart,
    "replicas": ReplicaPolicy,
}
