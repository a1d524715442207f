"""The settings model's table (remote_ollama/spec/fields.py) and the CRD's openAPIV3Schema agree on
every field: the same fields, and for each the same type, default, enum, pattern and bounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crd_schema import openapi_schema

from remote_ollama.spec import fields_row
from remote_ollama.spec.fields import FIELD, FIELDS
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.patterns import DURATION_PATTERN
from remote_ollama.spec.sections import MAX_DISK, MIN_DISK, parse_duration

KEYS = {
    "default": "default",
    "enum": "enum",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "maxProperties": "max_properties",
}


def crd_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if path:
        yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from crd_nodes(sub, f"{path}.{key}" if path else key)
    if isinstance(node.get("items"), dict):
        yield from crd_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from crd_nodes(node["additionalProperties"], f"{path}{{}}")


def described(node: dict[str, Any]) -> dict[str, Any]:
    """What the table says about a node, read from the CRD."""
    if node.get("x-kubernetes-int-or-string"):
        # structural int-or-string: branch types only, each bound on the node applies to its own type
        assert sorted(b["type"] for b in node["anyOf"]) == ["integer", "string"]
        assert (node.get("minLength"), node.get("pattern")) == (1, DURATION_PATTERN)
        out = {"type": "duration", "minimum": node.get("minimum")}
        if "default" in node:
            out["default"] = node["default"]
        return out
    out = {"type": node["type"]}
    out |= {ours: node[theirs] for theirs, ours in KEYS.items() if theirs in node}
    if "enum" in out:
        out["enum"] = tuple(out["enum"])
    return out


def test_the_same_fields() -> None:
    crd = {path for path, _ in crd_nodes(openapi_schema()["properties"]["spec"])}
    assert crd == set(FIELD), f"only in the CRD: {crd - set(FIELD)}; only in the table: {set(FIELD) - crd}"


def test_every_type_default_enum_pattern_and_bound_agree() -> None:
    nodes = dict(crd_nodes(openapi_schema()["properties"]["spec"]))
    for field in FIELDS:
        ours = {"type": field.type} | {
            attr: getattr(field, attr)
            for attr in ("default", *KEYS.values())
            if attr != "default" and getattr(field, attr) is not None
        }
        if field.default is not None:
            ours["default"] = field.default
        assert described(nodes[field.path]) == ours, field.path


def test_the_parser_uses_the_table() -> None:
    """parse_spec's defaults are the table's (parsed), so the CR path, standalone and the proxy agree."""
    spec = parse_spec({"credentialsSecretRef": {"name": "c"}})
    assert spec.zone == FIELD["zone"].default and FIELD["zone"].enum == fields_row.ZONES
    assert spec.instance_type.name == FIELD["instanceType"].default
    assert spec.template == FIELD["template"].default
    assert spec.disk_size == FIELD["diskSize"].default
    assert list(spec.models) == FIELD["models"].default
    assert spec.idle.stop_after == parse_duration(FIELD["idle"].default["stopAfter"])
    assert spec.idle.destroy_after == parse_duration(FIELD["idle"].default["destroyAfter"])
    assert spec.wake.hold_timeout == parse_duration(FIELD["wake.holdTimeout"].default)
    assert spec.wake.max_held_requests == FIELD["wake.maxHeldRequests"].default
    assert spec.wake.max_held_body_bytes == FIELD["wake.maxHeldBodyBytes"].default
    assert spec.keep_alive == FIELD["keepAlive"].default and spec.warm_up is FIELD["warmUp"].default
    assert spec.model_management is FIELD["modelManagement"].default
    assert list(spec.allowed_source_cidrs) == FIELD["allowedSourceCIDRs"].default
    assert (FIELD["diskSize"].minimum, FIELD["diskSize"].maximum) == (MIN_DISK, MAX_DISK)
