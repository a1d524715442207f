"""The platform team's spend policy: what a RemoteOllama may ask for, set where tenants cannot write.

The operator reads it from $REMOTE_OLLAMA_POLICY (JSON; the chart's `policy` value, on the
operator's own Deployment). A spec outside it is refused before any cloud call, as `Ready=False
PolicyViolation`. A policy that does not parse refuses every spec (closed, not open) and says so.

    {"instanceTypes": ["gpua5000.small", "gpu3080ti.*"], "zones": ["at-vie-2"],
     "maxDiskSize": 200, "allowedSourceCIDRs": ["10.0.0.0/8"]}

Every key is optional; an absent or empty list allows anything. `allowedSourceCIDRs` bounds the
widening: each of a spec's `allowedSourceCIDRs` must lie within one of these networks.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .model import Spec

POLICY_ENV = "REMOTE_OLLAMA_POLICY"
MAX_POLICY_CHARS = 64 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Policy:
    instance_types: tuple[str, ...] = ()  # `family.size`, or `family.*`
    zones: tuple[str, ...] = ()
    max_disk_size: int | None = None  # GiB
    source_cidrs: tuple[Network, ...] = ()

    def allows_type(self, name: str) -> bool:
        family = name.split(".", 1)[0]
        return not self.instance_types or name in self.instance_types or f"{family}.*" in self.instance_types


def _strings(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{POLICY_ENV}: {key} must be a list of strings")
    return tuple(value)


def parse_policy(text: str | None) -> Policy:
    """The policy in `text` (None or blank: no policy); ValueError names the field at fault."""
    if text is None or not text.strip():
        return Policy()
    if len(text) > MAX_POLICY_CHARS:
        raise ValueError(f"{POLICY_ENV} is longer than {MAX_POLICY_CHARS} characters")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{POLICY_ENV} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{POLICY_ENV} must be a JSON object")
    unknown = sorted(set(doc) - {"instanceTypes", "zones", "maxDiskSize", "allowedSourceCIDRs"})
    if unknown:
        raise ValueError(f"{POLICY_ENV}: unknown field(s) {', '.join(unknown)}")
    disk = doc.get("maxDiskSize")
    if disk is not None and (isinstance(disk, bool) or not isinstance(disk, int) or disk < 10):
        raise ValueError(f"{POLICY_ENV}: maxDiskSize must be an integer of GiB, at least 10")
    try:
        cidrs = tuple(ipaddress.ip_network(c) for c in _strings(doc, "allowedSourceCIDRs"))
    except ValueError as exc:
        raise ValueError(f"{POLICY_ENV}: allowedSourceCIDRs: {exc}") from exc
    return Policy(_strings(doc, "instanceTypes"), _strings(doc, "zones"), disk, cidrs)


def policy_from(env: Mapping[str, str]) -> Policy:
    """The operator's policy; ValueError when it does not parse (the caller refuses every spec)."""
    return parse_policy(env.get(POLICY_ENV))


def _within(cidr: str, allowed: tuple[Network, ...]) -> bool:
    net = ipaddress.ip_network(cidr, strict=False)
    return any(net.version == a.version and net.subnet_of(a) for a in allowed)  # type: ignore[arg-type]


def violations(spec: Spec, policy: Policy) -> list[str]:
    """Every way `spec` leaves `policy`, each naming the spec field and what the policy allows."""
    out: list[str] = []
    for where, p in (
        ("", spec.candidates()[0]),
        *((f"placements[{i}].", p) for i, p in enumerate(spec.placements)),
    ):
        if not policy.allows_type(p.instance_type.name):
            out.append(
                f"spec.{where}instanceType {p.instance_type.name} is not allowed "
                f"(allowed: {', '.join(policy.instance_types)})"
            )
        if policy.zones and p.zone not in policy.zones:
            out.append(f"spec.{where}zone {p.zone} is not allowed (allowed: {', '.join(policy.zones)})")
    if policy.max_disk_size is not None and spec.disk_size > policy.max_disk_size:
        out.append(f"spec.diskSize {spec.disk_size} is above the maximum of {policy.max_disk_size} GiB")
    if policy.source_cidrs:
        outside = [c for c in spec.allowed_source_cidrs if not _within(c, policy.source_cidrs)]
        if outside:
            allowed = ", ".join(str(n) for n in policy.source_cidrs)
            out.append(
                f"spec.allowedSourceCIDRs {', '.join(outside)} is wider than allowed (within: {allowed})"
            )
    return out
