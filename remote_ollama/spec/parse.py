"""Parsing a CR's `spec` (camelCase) into a `Spec`, by the field table: every row's type, enum,
pattern and bounds are checked generically (rows.py); this module adds only what a schema cannot
say, by path: converters, the fields read by hand (Secret references, schedules, placements), and
rules across fields. Pure; collects every problem with its field path before raising.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from remote_ollama.spec.fields_row import ZONES

from .model import Spec, SpecError
from .patterns import OLLAMA_ENV_KEY_PATTERN
from .rows import Own, Problems, RowParser, attr
from .schedule import parse_window
from .sections import (
    SECTIONS,
    IdlePolicy,
    InstanceType,
    Placement,
    ReplicaPolicy,
    parse_known_instance_type,
    parse_placement,
    secret_ref_name,
)

_ENV_KEY_RE = re.compile(OLLAMA_ENV_KEY_PATTERN)


def spec_or_defaults(raw: dict[str, Any] | None) -> Spec:
    """The spec for readers that must not fail (the proxy, the children): defaults where it is invalid
    (the operator reports the problem as Ready=False InvalidSpec)."""
    try:
        return parse_spec(raw, require_credentials=False)
    except SpecError:
        return Spec()


def _cidrs(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(c, strict=False)) for c in value)


def _env_key(item: tuple[str, Any]) -> None:
    if not isinstance(item[0], str) or not _ENV_KEY_RE.fullmatch(item[0]):
        raise ValueError(f"name must match {OLLAMA_ENV_KEY_PATTERN}")


def _zone(value: Any) -> str:  # a placement's zone (parse_placement)
    if value not in ZONES:
        raise ValueError(f"unknown zone {value!r}; one of {', '.join(ZONES)}")
    return str(value)


def _reference(path: str, what: str, required: bool) -> Own:
    """A Secret reference read by hand (`path` ends in `.name`): required once its object is given."""
    parts = path.split(".")

    def read(raw: Any, problems: Problems) -> str:
        if raw is None and not required:
            return ""
        node = raw
        for depth, part in enumerate(parts[1:], start=1):
            if not isinstance(node, dict):
                node = None
                break
            problems += [(f"spec.{'.'.join(parts[:depth])}.{k}", "unknown field") for k in node if k != part]
            node = node.get(part)
        if isinstance(node, str) and node:
            return secret_ref_name(node, f"spec.{path}", problems)
        problems.append((f"spec.{path}", f"required: the Secret holding {what}"))
        return ""

    return read


def _items(path: str, parse: Any, shape: str) -> Own:
    """A list read item by item, each problem at its index."""

    def read(raw: Any, problems: Problems) -> tuple[Any, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            problems.append((f"spec.{path}", f"must be a list of {shape}"))
            return ()
        out = []
        for i, item in enumerate(raw):
            try:
                out.append(parse(item))
            except (ValueError, TypeError) as exc:
                problems.append((f"spec.{path}[{i}]", str(exc)))
        return tuple(out)

    return read


def _idle_rule(idle: IdlePolicy) -> Problems:
    if idle.destroy_after is not None and idle.stop_after is None:
        return [("spec.idle.destroyAfter", "requires spec.idle.stopAfter")]
    return []


def _replicas_rule(replicas: ReplicaPolicy) -> Problems:
    if replicas.min > replicas.max:
        return [("spec.replicas.min", f"must be <= spec.replicas.max ({replicas.max}): {replicas.min}")]
    return []


# Rules across one section's fields, by the section's path, checked once its fields are valid (the CRD
# says each as a CEL rule in its row's `schema`).
RULES: dict[str, Callable[[Any], Problems]] = {"idle": _idle_rule, "replicas": _replicas_rule}


def parse_spec(raw: dict[str, Any] | None, *, require_credentials: bool = True) -> Spec:
    """Build a Spec from the CR's `spec` (camelCase), applying defaults.

    Collects every problem before raising, so a user fixes them all in one round.
    """
    raw = dict(raw or {})
    itype: list[InstanceType] = []  # the spec's own type, the placements' default

    def instance_type(value: Any) -> InstanceType:
        itype.append(parse_known_instance_type(value))
        return itype[-1]

    def placement(item: Any) -> Placement:
        return parse_placement(item, itype[-1] if itype else Spec().instance_type, _zone)

    rows = RowParser(
        convert={"instanceType": instance_type, "allowedSourceCIDRs": _cidrs, "ollama.env{}": _env_key},
        own={
            "credentialsSecretRef": _reference(
                "credentialsSecretRef.name", "api-key and api-secret", require_credentials
            ),
            "clientAuth": _reference("clientAuth.secretRef.name", "the client keys", False),
            "schedule": _items("schedule", parse_window, "windows"),
            "placements": _items("placements", placement, "{zone, instanceType}"),  # after instanceType
        },
        trim=frozenset({"instanceType", "keepAlive"}),
    )
    values = rows.section("", raw)
    for path, section in SECTIONS.items():
        if isinstance(values.get(attr(path)), dict):
            values[attr(path)] = section(**values[attr(path)])
            valid = not any(p == f"spec.{path}" or p.startswith(f"spec.{path}.") for p, _ in rows.problems)
            if path in RULES and valid:
                rows.problems += RULES[path](values[attr(path)])
    if rows.problems:
        raise SpecError(rows.problems)
    values["credentials_secret"] = values.pop("credentials_secret_ref")
    values["client_auth_secret"] = values.pop("client_auth")
    return Spec(**{k: v for k, v in values.items() if v is not None})
