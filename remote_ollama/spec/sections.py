"""The spec's parts (pure): durations, instance types, the idle/wake/budget/placement/network-policy/
ollama sections with their defaults (from fields.py) and the parsers of each section, every
problem with its field path. `resource.parse_spec` puts them together into a `Spec`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .fields import (
    DNS1123_SUBDOMAIN,
    FIELD,
    OLLAMA_ENV_KEY_PATTERN,
    OLLAMA_ENV_VALUE_PATTERN,
    OLLAMA_IMAGE_PATTERN,
    default,
)

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
DEFAULT_STOP_AFTER = parse_duration(default("idle")["stopAfter"])
DEFAULT_DESTROY_AFTER = parse_duration(default("idle")["destroyAfter"])
DEFAULT_HOLD_TIMEOUT = parse_duration(default("wake.holdTimeout"))
DEFAULT_MAX_HELD: int = default("wake.maxHeldRequests")
DEFAULT_ACTIVITY_INTERVAL = 15.0  # the CRD leaves it unset: the proxy's own default
DEFAULT_MAX_HELD_BODY: int = default("wake.maxHeldBodyBytes")
MAX_HELD_BODY = int(FIELD["wake.maxHeldBodyBytes"].maximum or 0)
MAX_HELD = int(FIELD["wake.maxHeldRequests"].maximum or 0)
MIN_DISK, MAX_DISK = int(FIELD["diskSize"].minimum or 0), int(FIELD["diskSize"].maximum or 0)
MAX_OLLAMA_ENV = FIELD["ollama.env"].max_properties or 0
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

    stop_after: float | None = DEFAULT_STOP_AFTER
    destroy_after: float | None = DEFAULT_DESTROY_AFTER

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


def parse_budget(raw: Any, problems: list[tuple[str, str]]) -> Budget:
    if raw is None:
        return Budget()
    if not isinstance(raw, dict):
        problems.append(("spec.budget", "must be an object"))
        return Budget()
    values: dict[str, float | None] = {"maxRunningHoursPerDay": None, "maxMonthlySpend": None}
    for key, value in raw.items():
        if key not in values:
            problems.append((f"spec.budget.{key}", "unknown field"))
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            problems.append((f"spec.budget.{key}", f"must be a number >= 0: {value!r}"))
            continue
        if key == "maxRunningHoursPerDay" and value > 24:
            problems.append((f"spec.budget.{key}", f"a day has 24 hours: {value!r}"))
            continue
        values[key] = float(value)
    return Budget(values["maxRunningHoursPerDay"], values["maxMonthlySpend"])


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


def _object(raw: Any, path: str, known: tuple[str, ...], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """`raw` as a dict (None -> {}), every unknown key reported."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append((path, "must be an object"))
        return {}
    for key in raw:
        if key not in known:
            problems.append((f"{path}.{key}", "unknown field"))
    return raw


def parse_client_auth(raw: Any, problems: list[tuple[str, str]]) -> str:
    if raw is None:
        return ""
    obj = _object(raw, "spec.clientAuth", ("secretRef",), problems)
    ref = _object(obj.get("secretRef"), "spec.clientAuth.secretRef", ("name",), problems)
    if not ref.get("name"):
        problems.append(("spec.clientAuth.secretRef.name", "required: the Secret holding the client keys"))
        return ""
    return secret_ref_name(ref["name"], "spec.clientAuth.secretRef.name", problems)


def parse_network_policy(raw: Any, problems: list[tuple[str, str]]) -> NetworkPolicySettings:
    obj = _object(raw, "spec.networkPolicy", ("enabled", "allowFrom"), problems)
    enabled = obj.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(("spec.networkPolicy.enabled", f"must be true or false: {enabled!r}"))
        enabled = True
    peers = obj.get("allowFrom") or []
    if not isinstance(peers, list) or len(peers) > 64:
        problems.append(
            ("spec.networkPolicy.allowFrom", "must be a list of at most 64 NetworkPolicyPeer objects")
        )
        peers = []
    for i, peer in enumerate(peers):
        if not isinstance(peer, dict):
            problems.append((f"spec.networkPolicy.allowFrom[{i}]", "must be a NetworkPolicyPeer object"))
    return NetworkPolicySettings(enabled, tuple(p for p in peers if isinstance(p, dict)))


_IMAGE_RE = re.compile(OLLAMA_IMAGE_PATTERN)
_ENV_KEY_RE = re.compile(OLLAMA_ENV_KEY_PATTERN)
_ENV_VALUE_RE = re.compile(OLLAMA_ENV_VALUE_PATTERN)


def parse_ollama_image(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 512 or not _IMAGE_RE.fullmatch(value):
        raise ValueError(f"must be an image reference such as ollama/ollama:0.11.4[@sha256:...]: {value!r}")
    return value


def check_ollama_env(env: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """Problems of an Ollama environment; each key's path is `path.KEY`."""
    problems: list[tuple[str, str]] = []
    if len(env) > MAX_OLLAMA_ENV:
        problems.append((path, f"at most {MAX_OLLAMA_ENV} variables"))
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.fullmatch(key):
            problems.append((f"{path}.{key}", f"name must match {OLLAMA_ENV_KEY_PATTERN}"))
        elif not isinstance(value, str) or len(value) > 1024 or not _ENV_VALUE_RE.fullmatch(value):
            problems.append(
                (
                    f"{path}.{key}",
                    "must be a string of at most 1024 characters without newline, quotes, "
                    "backslash, backquote, % or $",
                )
            )
    return problems


def parse_ollama(raw: Any, problems: list[tuple[str, str]]) -> OllamaSettings:
    obj = _object(raw, "spec.ollama", ("image", "env"), problems)
    image = None
    if obj.get("image") is not None:
        try:
            image = parse_ollama_image(obj["image"])
        except ValueError as exc:
            problems.append(("spec.ollama.image", str(exc)))
    env = obj.get("env") or {}
    if not isinstance(env, dict):
        problems.append(("spec.ollama.env", "must be a map of OLLAMA_* names to strings"))
        env = {}
    found = check_ollama_env(env, "spec.ollama.env")
    problems += found
    return OllamaSettings(image, () if found else tuple(sorted(env.items())))


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be > 0")
    return seconds


_WAKE = WakePolicy()


def parse_idle(raw_idle: Any, problems: list[tuple[str, str]]) -> IdlePolicy:
    if raw_idle is None:
        return IdlePolicy()
    if not isinstance(raw_idle, dict):
        problems.append(("spec.idle", "must be an object"))
        return IdlePolicy()
    stop_after: float | None = None
    destroy_after: float | None = None
    for key in raw_idle:
        if key not in ("stopAfter", "destroyAfter"):
            problems.append((f"spec.idle.{key}", "unknown field"))
    try:
        stop_after = _positive_duration(raw_idle["stopAfter"]) if "stopAfter" in raw_idle else None
    except (ValueError, TypeError) as exc:
        problems.append(("spec.idle.stopAfter", str(exc)))
    try:
        destroy_after = parse_duration(raw_idle["destroyAfter"]) if "destroyAfter" in raw_idle else None
    except (ValueError, TypeError) as exc:
        problems.append(("spec.idle.destroyAfter", str(exc)))
    if "destroyAfter" in raw_idle and "stopAfter" not in raw_idle:
        problems.append(("spec.idle.destroyAfter", "requires spec.idle.stopAfter"))
    return IdlePolicy(stop_after, destroy_after)


def parse_wake(raw_wake: Any, problems: list[tuple[str, str]]) -> WakePolicy:
    if raw_wake is None:
        return WakePolicy()
    if not isinstance(raw_wake, dict):
        problems.append(("spec.wake", "must be an object"))
        return WakePolicy()
    hold = _WAKE.hold_timeout
    held = _WAKE.max_held_requests
    body = _WAKE.max_held_body_bytes
    progress = _WAKE.progress
    for key in raw_wake:
        if key not in ("holdTimeout", "maxHeldRequests", "maxHeldBodyBytes", "progress"):
            problems.append((f"spec.wake.{key}", "unknown field"))
    mb = raw_wake.get("maxHeldBodyBytes", body)
    if isinstance(mb, bool) or not isinstance(mb, int) or not 0 <= mb <= MAX_HELD_BODY:
        problems.append(("spec.wake.maxHeldBodyBytes", f"must be an integer 0..{MAX_HELD_BODY}: {mb!r}"))
    else:
        body = mb
    pr = raw_wake.get("progress", progress)
    if not isinstance(pr, bool):
        problems.append(("spec.wake.progress", f"must be true or false: {pr!r}"))
    else:
        progress = pr
    try:
        if "holdTimeout" in raw_wake:
            hold = parse_duration(raw_wake["holdTimeout"])
    except (ValueError, TypeError) as exc:
        problems.append(("spec.wake.holdTimeout", str(exc)))
    mh = raw_wake.get("maxHeldRequests", held)
    if isinstance(mh, bool) or not isinstance(mh, int) or not 0 <= mh <= MAX_HELD:
        problems.append(("spec.wake.maxHeldRequests", f"must be an integer 0..{MAX_HELD}: {mh!r}"))
    else:
        held = mh
    return WakePolicy(hold, held, body, progress)
