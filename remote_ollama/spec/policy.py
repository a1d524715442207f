"""The platform team's spend policy: what a RemoteOllama may ask for, set where tenants cannot write.

Its one home is a ConfigMap in the operator's namespace (the chart's `policy` value renders it; see
`policy_from_data`): the admission policy takes it as its parameters and the operator reads it
(kube/operator/policy_source.py). An operator run outside the chart may take the same document
as JSON in $REMOTE_OLLAMA_POLICY instead. A spec outside it is refused before any cloud call, as
`Ready=False PolicyViolation`. A policy that does not parse refuses every spec (closed, not open).

    {"instanceTypes": ["gpua5000.small", "gpu3080ti.*"], "zones": ["at-vie-2"],
     "maxDiskSize": 200, "allowedSourceCIDRs": ["10.0.0.0/8"], "namespaceMonthlySpend": 500}

Every key is optional; an absent or empty list allows anything. `allowedSourceCIDRs` bounds the
widening: each of a spec's `allowedSourceCIDRs` must lie within one of these networks.
`namespaceMonthlySpend` caps the estimated spend of all RemoteOllamas of a namespace in a UTC
month, in the price table's currency (core/namespace_spend.py).
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
KEYS = ("instanceTypes", "zones", "maxDiskSize", "allowedSourceCIDRs", "namespaceMonthlySpend")
LIST_KEYS = ("instanceTypes", "zones", "allowedSourceCIDRs")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Policy:
    instance_types: tuple[str, ...] = ()  # `family.size`, or `family.*`
    zones: tuple[str, ...] = ()
    max_disk_size: int | None = None  # GiB
    source_cidrs: tuple[Network, ...] = ()
    namespace_monthly_spend: float | None = None  # the price table's currency

    def allows_type(self, name: str) -> bool:
        family = name.split(".", 1)[0]
        return not self.instance_types or name in self.instance_types or f"{family}.*" in self.instance_types


def _strings(doc: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def parse_policy(text: str | None, where: str = POLICY_ENV) -> Policy:
    """The policy in `text` (None or blank: no policy); ValueError names the field at fault."""
    if text is None or not text.strip():
        return Policy()
    if len(text) > MAX_POLICY_CHARS:
        raise ValueError(f"{where} is longer than {MAX_POLICY_CHARS} characters")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{where} must be a JSON object")
    return policy_of(doc, where)


def policy_from_data(data: Mapping[str, str], where: str) -> Policy:
    """The policy in a ConfigMap's `data`, the form the admission policy's CEL reads: lists as
    comma-separated strings, numbers as decimal strings, e.g. {"instanceTypes": "gpua5000.small,
    gpu3080ti.*", "maxDiskSize": "200"}. Absent or empty keys allow anything."""
    if sum(len(k) + len(v) for k, v in data.items()) > MAX_POLICY_CHARS:
        raise ValueError(f"{where} is longer than {MAX_POLICY_CHARS} characters")
    doc: dict[str, Any] = {}
    for key, text in data.items():
        if key in LIST_KEYS:
            doc[key] = [item.strip() for item in text.split(",") if item.strip()]
        elif key in ("maxDiskSize", "namespaceMonthlySpend") and text.strip():
            try:
                doc[key] = int(text) if key == "maxDiskSize" else float(text)
            except ValueError as exc:
                raise ValueError(f"{where}: {key} must be a number: {text!r}") from exc
        elif key not in KEYS:
            doc[key] = text
    return policy_of(doc, where)


def policy_of(doc: dict[str, Any], where: str) -> Policy:
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    disk = doc.get("maxDiskSize")
    if disk is not None and (isinstance(disk, bool) or not isinstance(disk, int) or disk < 10):
        raise ValueError(f"{where}: maxDiskSize must be an integer of GiB, at least 10")
    spend = doc.get("namespaceMonthlySpend")
    if spend is not None and (
        isinstance(spend, bool) or not isinstance(spend, int | float) or not 0 <= spend < float("inf")
    ):
        raise ValueError(f"{where}: namespaceMonthlySpend must be a number >= 0")
    try:
        cidrs = tuple(ipaddress.ip_network(c) for c in _strings(doc, "allowedSourceCIDRs", where))
    except ValueError as exc:
        raise ValueError(f"{where}: allowedSourceCIDRs: {exc}") from exc
    return Policy(
        _strings(doc, "instanceTypes", where),
        _strings(doc, "zones", where),
        disk,
        cidrs,
        None if spend is None else float(spend),
    )


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
