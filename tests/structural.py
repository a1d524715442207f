"""What a real API server does with a CRD's openAPIV3Schema: defaulting, pruning, validation, offline.

The one piece of the retired Kubernetes emulator kept: `tests/crd_schema.py` uses it to check
examples, chart values and the many bad-input cases in milliseconds without a server; that it
agrees with the real kube-apiserver is itself tested (tests/test_crd_server.py).
CEL rules (`x-kubernetes-validations`) are evaluated by a tiny interpreter that understands the
subset our CRDs use (`has()`, `!`, `&&`, `||`, comparisons, `size()`); any other rule is an error,
so a rule can never be silently skipped.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from typing import Any

import jsonschema

Problem = tuple[str, str]  # (field path like spec.idle.stopAfter, message)

_VALUE_KEYS = (
    "type", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
    "uniqueItems", "multipleOf", "required", "format", "minProperties", "maxProperties",
)  # fmt: skip
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema node into JSON Schema (draft 2020-12)."""
    out: dict[str, Any] = {k: copy.deepcopy(node[k]) for k in _VALUE_KEYS if k in node}
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(flag) is True and bound in node:  # OpenAPI 3.0's boolean form
            out[flag] = out.pop(bound)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in node:
        out["properties"] = {k: to_jsonschema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_jsonschema(node["additionalProperties"])
    elif "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if "items" in node:
        out["items"] = to_jsonschema(node["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [to_jsonschema(sub) for sub in node[key]]
    if "not" in node:
        out["not"] = to_jsonschema(node["not"])
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def field_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill absent fields with their `default`, top-down (defaults inside defaults apply too)."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def default_in_place(schema: dict[str, Any], value: Any) -> None:
    """`apply_defaults` without the copy."""
    _default_into(schema, value)


def _default_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default_into(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(value) - set(schema.get("properties", {})):
                _default_into(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_into(schema["items"], item)


def prune(schema: dict[str, Any], value: Any, *, root: bool = True) -> list[str]:
    """Drop fields the schema does not know (in place), as the API server does; returns their paths."""
    return list(_prune(schema, value, [], root))


def _prune(schema: dict[str, Any], value: Any, path: list[str | int], root: bool) -> Iterator[str]:
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
        for key in list(value):
            if key in props:
                yield from _prune(props[key], value[key], [*path, key], False)
            elif isinstance(extra, dict):
                yield from _prune(extra, value[key], [*path, key], False)
            elif not keep_unknown and not (root and key in _ROOT_KEEP) and (props or root):
                del value[key]
                yield field_path([*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _prune(schema["items"], item, [*path, index], False)


def validate(schema: dict[str, Any], value: Any) -> list[Problem]:
    """Every schema and CEL violation, each with the field path it concerns."""
    root = to_jsonschema(schema)
    if root.get("additionalProperties") is False:  # a server always accepts the object's own envelope
        for key in _ROOT_KEEP:
            root.setdefault("properties", {}).setdefault(key, {})
    validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
    problems = [_describe(err) for err in validator.iter_errors(value)]
    problems.extend(_cel_problems(schema, value, []))
    return sorted(set(problems))


def _describe(err: jsonschema.ValidationError) -> Problem:
    path = list(err.absolute_path)
    if err.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        return field_path([*path, *missing[:1]]), "Required value"
    if err.validator == "additionalProperties" and err.validator_value is False:
        names = re.findall(r"'([^']+)'", err.message.split("(")[-1])
        return field_path([*path, *names[:1]]), f"unknown field {names[0] if names else ''!r}".strip()
    message = err.message
    if err.validator == "anyOf" and err.context:  # int-or-string: report the branch of the value's type
        fitting = [c for c in err.context if c.validator != "type"] or list(err.context)
        message = "; ".join(sorted({c.message for c in fitting}))
    return field_path(path), f"Invalid value: {err.instance!r}: {message}"


def _cel_problems(schema: dict[str, Any], value: Any, path: list[str | int]) -> Iterator[Problem]:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        if not evaluate_cel(rule["rule"], value):
            where = field_path([*path, *[p for p in rule.get("fieldPath", "").split(".") if p]])
            yield where, rule.get("message") or f"failed rule: {rule['rule']}"
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _cel_problems(sub, value[key], [*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _cel_problems(schema["items"], item, [*path, index])


class CelUnsupported(ValueError):
    """A rule outside the subset this interpreter understands."""


_TOKEN = re.compile(r"\s*(\|\||&&|==|!=|<=|>=|[!()<>]|'[^']*'|\"[^\"]*\"|-?\d+|[A-Za-z_][\w.]*)")


def evaluate_cel(rule: str, self_value: Any) -> bool:
    """Evaluate a CEL rule from our subset with `self` bound to `self_value`."""
    tokens = _tokenize(rule)
    parser = _Cel(tokens, self_value)
    result = parser.expr()
    if parser.pos != len(tokens):
        raise CelUnsupported(f"unsupported CEL syntax in {rule!r}")
    return bool(result)


def _tokenize(rule: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(rule.rstrip()):
        m = _TOKEN.match(rule, pos)
        if not m:
            raise CelUnsupported(f"unsupported CEL syntax in {rule!r} at {pos}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


_MISSING = object()


class _Cel:
    def __init__(self, tokens: list[str], self_value: Any):
        self.tokens, self.pos, self.self_value = tokens, 0, self_value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise CelUnsupported(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def expr(self) -> Any:
        left = self.conj()
        while self.peek() == "||":
            self.take()
            right = self.conj()
            left = bool(left) or bool(right)
        return left

    def conj(self) -> Any:
        left = self.unary()
        while self.peek() == "&&":
            self.take()
            right = self.unary()
            left = bool(left) and bool(right)
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not self.unary()
        left = self.primary()
        op = self.peek()
        if op in ("==", "!=", "<", ">", "<=", ">="):
            self.take()
            right = self.primary()
            return {
                "==": lambda: left == right, "!=": lambda: left != right, "<": lambda: left < right,
                ">": lambda: left > right, "<=": lambda: left <= right, ">=": lambda: left >= right,
            }[op]()  # fmt: skip
        return left

    def primary(self) -> Any:
        token = self.take()
        if token == "(":
            value = self.expr()
            self.take(")")
            return value
        if token in ("has", "size"):
            self.take("(")
            value = self.lookup(self.take())
            self.take(")")
            if token == "has":
                return value is not _MISSING
            if value is _MISSING:
                raise CelUnsupported("size() of a missing field")
            return len(value)
        if token[0] in "'\"":
            return token[1:-1]
        if token in ("true", "false"):
            return token == "true"
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        value = self.lookup(token)
        if value is _MISSING:
            raise CelUnsupported(f"no such key: {token}")
        return value

    def lookup(self, dotted: str) -> Any:
        head, *rest = dotted.split(".")
        if head != "self":
            raise CelUnsupported(f"unknown identifier {head!r}")
        value: Any = self.self_value
        for part in rest:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value
