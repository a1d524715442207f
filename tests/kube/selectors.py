"""Label and field selectors as the list and watch endpoints accept them."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from kube.tables import jsonpath

Matcher = Callable[[dict[str, Any]], bool]


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` -> [`a in (x,y)`, `b`]."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _among(key: str, values: set[str], inside: bool, labels: dict[str, str]) -> bool:
    return (labels.get(key) in values) == inside


def _present(key: str, wanted: bool, labels: dict[str, str]) -> bool:
    return (key in labels) == wanted


def label_selector(text: str | None) -> Matcher:
    if not text:
        return lambda obj: True
    tests: list[Callable[[dict[str, str]], bool]] = []
    for term in _split(text):
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            tests.append(functools.partial(_among, key, values, op == "in"))
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", term):
            key, op, value = m.groups()
            tests.append(functools.partial(_among, key, {value}, op != "!="))
        elif m := re.fullmatch(r"!\s*([\w./-]+)", term):
            tests.append(functools.partial(_present, m.group(1), False))
        elif re.fullmatch(r"[\w./-]+", term):
            tests.append(functools.partial(_present, term, True))
        else:
            raise ValueError(f"unable to parse requirement: {term!r}")
    return lambda obj: all(t(obj.get("metadata", {}).get("labels") or {}) for t in tests)


def field_selector(text: str | None) -> Matcher:
    if not text:
        return lambda obj: True
    tests: list[Matcher] = []
    for term in _split(text):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise ValueError(f"invalid field selector: {term!r}")
        path, op, value = m.groups()

        def test(obj: dict[str, Any], p: str = path, o: str = op, v: str = value) -> bool:
            found = jsonpath(obj, "." + p)
            text = "" if found is None else str(found).lower() if isinstance(found, bool) else str(found)
            return (text == v) != (o == "!=")

        tests.append(test)
    return lambda obj: all(t(obj) for t in tests)
