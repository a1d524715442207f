"""Standalone's variables as spec fields, from the field table: every row with `env` is read from the
environment, turned from text into the CR's shape by the row's type, and then parsed by the one CR
parser (parse.py), so a variable is checked exactly as its field is. Pure.

The embedded API's keyword for a variable is `keyword(name)`: one rule for every variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remote_ollama.spec.fields import FIELDS
from remote_ollama.spec.fields_row import Field

from .model import SpecError
from .sections import parse_duration

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_UNSET = object()  # a value that sets nothing but its parents (`env_zero_unsets`: 0 = never)
_PREFIXES = ("EXOSCALE_", "REMOTE_OLLAMA_")


def keyword(variable: str) -> str:
    """The embedded API's keyword for `variable`: its name in lower case without an EXOSCALE_ or
    REMOTE_OLLAMA_ prefix (EXOSCALE_IDLE_TIMEOUT -> idle_timeout, OLLAMA_ENV -> ollama_env)."""
    for prefix in _PREFIXES:
        if variable.startswith(prefix):
            return variable.removeprefix(prefix).lower()
    return variable.lower()


def env_rows(fields: tuple[Field, ...] = FIELDS) -> tuple[Field, ...]:
    """The rows standalone reads from a variable, in table order."""
    return tuple(f for f in fields if f.env)


def _from_text(f: Field, text: str) -> Any:
    """The CR-shaped value of a variable's text, by the row's type (the CR parser checks the rest)."""
    if f.type == "integer":
        if not text.isdigit():
            raise ValueError("must be a whole number")
        return int(text)
    if f.type == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    if f.type == "boolean":
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError("must be true or false (1/0, yes/no, on/off)")
        return text.lower() in _TRUE
    if f.type == "array":
        return [item.strip() for item in text.split(",") if item.strip()]
    if f.type == "object":  # a map: NAME=value, comma-separated
        pairs: dict[str, str] = {}
        for item in (i.strip() for i in text.split(",")):
            name, sep, value = item.partition("=")
            if item and not sep:
                raise ValueError(f"{item!r} must be NAME=value (comma-separated)")
            if item:
                pairs[name.strip()] = value.strip()
        return pairs
    if f.type == "duration" and f.env_zero_unsets:
        try:
            return _UNSET if parse_duration(text) == 0 else text
        except ValueError:
            return text  # the CR parser names the problem
    return text


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    if value is not _UNSET:
        tree[name] = value


def cr_shape(env: Mapping[str, str], fields: tuple[Field, ...] = FIELDS) -> tuple[dict[str, Any], list[str]]:
    """The CR `spec` the variables describe (a variable left unset takes the row's `env_default`, else
    the CR's default), and the problems found turning text into values, one line each."""
    spec: dict[str, Any] = {}
    problems: list[str] = []
    for f in env_rows(fields):
        assert f.env is not None
        text = env.get(f.env, "").strip()
        if not text and f.env_default is None:
            continue
        text = text or str(f.env_default)
        try:
            _put(spec, f.path, _from_text(f, text))
        except ValueError as exc:
            problems.append(f"{f.env}={text!r}: {exc}")
    return spec, problems


def named(error: SpecError, env: Mapping[str, str], fields: tuple[Field, ...] = FIELDS) -> list[str]:
    """The CR parser's problems as standalone says them: by variable, not by field path."""
    rows = sorted(env_rows(fields), key=lambda f: -len(f.path))
    lines = []
    for path, message in error.problems:
        for f in rows:
            message = message.replace(f"spec.{f.path}", str(f.env))
        row = next((f for f in rows if path == f"spec.{f.path}" or path.startswith(f"spec.{f.path}.")), None)
        if row is None:
            lines.append(f"{path}: {message}")
            continue
        rest = path.removeprefix(f"spec.{row.path}").lstrip(".")
        text = env.get(str(row.env), "").strip() or str(row.env_default)
        lines.append(f"{row.env}={text!r}: {rest + ' ' if rest else ''}{message}")
    return lines
