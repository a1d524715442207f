"""Parsing a CR's `spec` (camelCase) into a `Spec`: the top-level fields here, each section's
parser in `sections.py`. Pure; collects every problem with its field path before raising.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .fields import FIELDS, KEEP_ALIVE_PATTERN, MODEL_PATTERN, ZONES
from .model import Spec, SpecError
from .schedule import Window, parse_window
from .sections import (
    MAX_DISK,
    MIN_DISK,
    InstanceType,
    Placement,
    parse_budget,
    parse_client_auth,
    parse_duration,
    parse_idle,
    parse_known_instance_type,
    parse_network_policy,
    parse_ollama,
    parse_placement,
    parse_wake,
    secret_ref_name,
)

_MODEL_RE = re.compile(MODEL_PATTERN)
# The spec's top-level fields, from the one table (fields.py), not restated here.
_KNOWN_FIELDS = frozenset(f.path for f in FIELDS if not re.search(r"[.\[{]", f.path))
_KEEP_ALIVE_RE = re.compile(KEEP_ALIVE_PATTERN)


def spec_or_defaults(raw: dict[str, Any] | None) -> Spec:
    """The spec for readers that must not fail (the proxy, the children): defaults where it is invalid
    (the operator reports the problem as Ready=False InvalidSpec)."""
    try:
        return parse_spec(raw, require_credentials=False)
    except SpecError:
        return Spec()


def _zone(v: Any) -> str:
    if v not in ZONES:
        raise ValueError(f"unknown zone {v!r}; one of {', '.join(ZONES)}")
    return str(v)


def _disk(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"must be an integer number of GiB: {v!r}")
    if not MIN_DISK <= v <= MAX_DISK:
        raise ValueError(f"must be between {MIN_DISK} and {MAX_DISK} GiB: {v}")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise TypeError(f"must be a non-empty string: {v!r}")
    return v


def _models(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise TypeError("must be a non-empty list of model names")
    bad = [m for m in v if not isinstance(m, str) or not _MODEL_RE.fullmatch(m)]
    if bad:
        raise ValueError(f"invalid model name(s): {bad!r}")
    return tuple(v)


def _cidrs(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise TypeError("must be a non-empty list of CIDRs")
    out = []
    for c in v:
        try:
            out.append(str(ipaddress.ip_network(str(c), strict=False)))
        except ValueError as exc:
            raise ValueError(f"invalid CIDR {c!r}") from exc
    return tuple(out)


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"must be true or false: {v!r}")
    return v


def _positive_duration(v: Any) -> float:
    d = parse_duration(v)
    if d <= 0:
        raise ValueError("must be > 0")
    return d


def _keep_alive(v: Any) -> str:
    text_value = str(v).strip()
    if isinstance(v, bool) or not _KEEP_ALIVE_RE.fullmatch(text_value) or not text_value:
        raise ValueError(f"must be an Ollama keep_alive duration such as 30m, 1h or -1: {v!r}")
    return text_value


def _credentials(ref: Any, require: bool, problems: list[tuple[str, str]]) -> str:
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]:
        return secret_ref_name(ref["name"], "spec.credentialsSecretRef.name", problems)
    if ref is not None or require:
        problems.append(
            ("spec.credentialsSecretRef.name", "required: the Secret holding api-key and api-secret")
        )
    return ""


def _parse_schedule(raw_schedule: Any, problems: list[tuple[str, str]]) -> tuple[Window, ...]:
    windows: list[Window] = []
    if raw_schedule is not None:
        if not isinstance(raw_schedule, list):
            problems.append(("spec.schedule", "must be a list of windows"))
        else:
            for i, item in enumerate(raw_schedule):
                try:
                    windows.append(parse_window(item))
                except (ValueError, TypeError) as exc:
                    problems.append((f"spec.schedule[{i}]", str(exc)))
    return tuple(windows)


def _parse_placements(
    raw_placements: Any, itype: InstanceType, problems: list[tuple[str, str]]
) -> tuple[Placement, ...]:
    placements: list[Placement] = []
    if raw_placements is not None:
        if not isinstance(raw_placements, list):
            problems.append(("spec.placements", "must be a list of {zone, instanceType}"))
        else:
            for i, item in enumerate(raw_placements):
                try:
                    placements.append(parse_placement(item, itype, _zone))
                except (ValueError, TypeError) as exc:
                    problems.append((f"spec.placements[{i}]", str(exc)))
    return tuple(placements)


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

    cred = _credentials(raw.get("credentialsSecretRef"), require_credentials, problems)
    client_secret = parse_client_auth(raw.get("clientAuth"), problems)
    itype = take("instanceType", parse_known_instance_type, defaults.instance_type)
    idle = parse_idle(raw.get("idle"), problems)
    wake = parse_wake(raw.get("wake"), problems)
    budget = parse_budget(raw.get("budget"), problems)
    schedule = _parse_schedule(raw.get("schedule"), problems)
    placements = _parse_placements(raw.get("placements"), itype, problems)

    spec = Spec(
        credentials_secret=cred,
        zone=take("zone", _zone, defaults.zone),
        instance_type=itype,
        template=take("template", _text, defaults.template),
        disk_size=take("diskSize", _disk, defaults.disk_size),
        models=take("models", _models, defaults.models),
        idle=idle,
        wake=wake,
        suspend=take("suspend", _boolean, False),
        allowed_source_cidrs=take("allowedSourceCIDRs", _cidrs, defaults.allowed_source_cidrs),
        activity_interval=take("activityInterval", _positive_duration, defaults.activity_interval),
        budget=budget,
        schedule=schedule,
        placements=placements,
        keep_alive=take("keepAlive", _keep_alive, defaults.keep_alive),
        warm_up=take("warmUp", _boolean, defaults.warm_up),
        client_auth_secret=client_secret,
        model_management=take("modelManagement", _boolean, defaults.model_management),
        network_policy=parse_network_policy(raw.get("networkPolicy"), problems),
        ollama=parse_ollama(raw.get("ollama"), problems),
    )
    if problems:
        raise SpecError(problems)
    return spec
