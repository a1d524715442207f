"""The CR parser's generic part: a value checked against its row of the field table (type, enum,
pattern, bounds, items, map values, an object's children), every problem collected with its field
path. What a schema cannot say (a known instance type, a CIDR's normal form, a rule across fields)
is a converter that parse.py names by path. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from remote_ollama.spec.fields import FIELD
from remote_ollama.spec.fields_row import Field

from .sections import parse_duration

Problems = list[tuple[str, str]]
Converter = Callable[[Any], Any]
# A field parse.py reads by itself (raw value, problems) -> value: references, schedules, placements.
Own = Callable[[Any, Problems], Any]


def attr(path: str) -> str:
    """The Python name of a row: its last segment in snake case (`stopAfter` -> `stop_after`)."""
    name = re.split(r"[.\[\]{}]+", path.rstrip("[]{}"))[-1]
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def children(path: str, fields: Mapping[str, Field] = FIELD) -> list[Field]:
    """The rows of an object's own fields (`path` "" is the spec)."""
    prefix = f"{path}." if path else ""
    return [
        f for p, f in fields.items() if p.startswith(prefix) and re.fullmatch(r"[A-Za-z]+", p[len(prefix) :])
    ]


def _number(f: Field, v: Any, kind: str) -> Any:
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or (f.type == "integer" and not isinstance(v, int))
    ):
        raise TypeError(f"must be {kind}: {v!r}")
    low, high = f.minimum, f.maximum
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else f">= {low:g}"
        raise ValueError(f"must be {bounds}: {v!r}")
    return v


def _string(f: Field, v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"must be a string: {v!r}")
    if f.enum is not None and v not in f.enum:
        raise ValueError(f"unknown {attr(f.path).replace('_', ' ')} {v!r}; one of {', '.join(f.enum)}")
    if f.min_length is not None and len(v.strip()) < f.min_length:
        raise ValueError(f"must be a non-empty string: {v!r}")
    if (f.max_length is not None and len(v) > f.max_length) or (f.pattern and not re.fullmatch(f.pattern, v)):
        raise ValueError(f"not valid here: {v!r} (expected: {f.doc or f.pattern})")
    return v


def scalar(f: Field, v: Any) -> Any:
    """`v` checked against a scalar row; raises ValueError/TypeError with a user's message."""
    if f.type == "boolean":
        if not isinstance(v, bool):
            raise TypeError(f"must be true or false: {v!r}")
        return v
    if f.type == "integer":
        return _number(f, v, "an integer")
    if f.type == "number":
        return float(_number(f, v, "a number"))
    if f.type == "duration":
        seconds = parse_duration(v)
        if f.minimum is not None and f.minimum < 1 and seconds < f.minimum:
            raise ValueError(f"must be at least {f.minimum:g}s")
        if f.minimum and seconds <= 0:
            raise ValueError("must be > 0")
        return seconds
    return _string(f, v)


class RowParser:
    """Parses values by their rows; `convert` maps a path to what checks and converts it further."""

    def __init__(
        self,
        convert: Mapping[str, Converter],
        own: Mapping[str, Own],
        trim: frozenset[str] = frozenset(),
        fields: Mapping[str, Field] = FIELD,
    ):
        self.convert, self.own, self.trim, self.fields = convert, own, trim, fields
        self.problems: Problems = []

    def value(self, path: str, raw: Any) -> Any:
        """The value at `path` (a row's path) of the raw `raw`, or None after noting a problem."""
        f = self.fields[path]
        if path in self.own:
            return self.own[path](raw, self.problems)
        try:
            if f.type == "object" and f"{path}{{}}" in self.fields:
                if not isinstance(raw, dict):
                    raise TypeError("must be a map of names to values")
                return self._map(f, raw)
            if f.type == "object":
                return self.section(path, raw)
            if path in self.trim and isinstance(raw, str):  # read with surrounding blanks removed
                raw = raw.strip()
            value = self._array(f, raw) if f.type == "array" else scalar(f, raw)
            return self.convert[path](value) if path in self.convert else value
        except (ValueError, TypeError) as exc:
            self.problems.append((f"spec.{path}", str(exc)))
            return None

    def default(self, path: str) -> Any:
        """The row's default as parsed (an object's default is parsed as if given), else empty."""
        f = self.fields[path]
        if path in self.own:
            return self.own[path](None, self.problems)
        if f.default is not None or f.type == "object":
            return self.value(path, f.default if f.default is not None else {})
        return () if f.type == "array" else None

    def section(self, path: str, raw: Any) -> dict[str, Any]:
        """An object's children by their Python names (`path` "" is the spec itself)."""
        where = f"spec.{path}" if path else "spec"
        if not isinstance(raw, dict):
            raise TypeError("must be an object")
        own = {c.path.rsplit(".", 1)[-1]: c for c in children(path, self.fields)}
        for key in raw:
            if key not in own:
                self.problems.append((f"{where}.{key}", "unknown field"))
        return {
            attr(c.path): self.value(c.path, raw[name]) if raw.get(name) is not None else self.default(c.path)
            for name, c in own.items()
        }

    def _array(self, f: Field, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list):
            raise TypeError("must be a list")
        if (f.min_items and len(raw) < f.min_items) or (f.max_items is not None and len(raw) > f.max_items):
            raise ValueError(f"must hold {f.min_items or 0} to {f.max_items} items")
        item = self.fields[f"{f.path}[]"]
        if item.type == "object":  # each item's problem at its own index
            out = []
            for i, entry in enumerate(raw):
                if isinstance(entry, dict):
                    out.append(entry)
                else:
                    self.problems.append((f"spec.{item.path[:-2]}[{i}]", "must be an object"))
            return tuple(out)
        bad = []
        for entry in raw:
            try:
                scalar(item, entry)
            except (ValueError, TypeError):
                bad.append(entry)
        if bad:
            raise ValueError(f"invalid item(s): {bad!r}")
        return tuple(raw)

    def _map(self, f: Field, raw: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        where = f"spec.{f.path}"
        if f.max_properties is not None and len(raw) > f.max_properties:
            self.problems.append((where, f"at most {f.max_properties} entries"))
        values = self.fields[f"{f.path}{{}}"]
        check = self.convert.get(f"{f.path}{{}}")
        ok = True
        for key, value in raw.items():
            try:
                scalar(values, value)
                if check:
                    check((key, value))
            except (ValueError, TypeError) as exc:
                self.problems.append((f"{where}.{key}", str(exc)))
                ok = False
        return tuple(sorted(raw.items())) if ok else ()
