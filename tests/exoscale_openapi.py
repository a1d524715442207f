"""The Exoscale API's own description (the openapi.json bundled with python-exoscale) as a judge of
the simulator's traffic: each request body the product sends and each answer the simulator gives is
validated against the operation's schemas, strictly (a field the description does not name fails,
so the simulator cannot invent fields and the product cannot send unknown ones).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import exoscale
import jsonschema

SPEC_PATH = Path(exoscale.__file__).resolve().parent / "openapi.json"


def _strict(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: `nullable` as a null type, objects closed to unnamed fields."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _strict(v) for k, v in node.items() if k not in ("nullable", "readOnly", "writeOnly", "example")
    }
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return spec


@functools.cache
def _components() -> dict[str, Any]:
    return {"components": _strict(copy.deepcopy(_spec()["components"]))}


@functools.cache
def _operations() -> dict[str, dict[str, Any]]:
    ops: dict[str, dict[str, Any]] = {}
    for entries in _spec()["paths"].values():
        for entry in entries.values():
            if isinstance(entry, dict) and "operationId" in entry:
                ops[entry["operationId"]] = entry
    return ops


@functools.cache
def _validator(operation: str, kind: str) -> jsonschema.Draft4Validator | None:
    """The operation's request body (`kind` "request") or 200 answer ("answer") schema."""
    entry = _operations()[operation]
    if kind == "request":
        schema = entry.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    else:
        schema = (
            entry.get("responses", {})
            .get("200", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema")
        )
    if schema is None:
        return None
    return jsonschema.Draft4Validator(
        {**_components(), **_strict(schema)}
    )  # OpenAPI 3.0: boolean exclusiveMaximum


def _validate(validator: jsonschema.Draft4Validator, value: Any, where: str) -> list[str]:
    return [
        f"{where}: {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
        for e in validator.iter_errors(value)
    ]


def check_exchange(operation: str, body: Any, status: int, answer: Any) -> list[str]:
    """What in one call contradicts the description (empty when nothing does)."""
    if operation not in _operations():
        return [f"{operation}: no such operation in the API description"]
    problems: list[str] = []
    request = _validator(operation, "request")
    if body is not None:
        if request is None:
            problems.append(f"{operation}: a request body where the description has none")
        else:
            problems += _validate(request, body, f"{operation} request")
    if status == 200:
        answer_schema = _validator(operation, "answer")
        if answer_schema is None:
            problems.append(f"{operation}: a 200 answer the description does not have")
        else:
            problems += _validate(answer_schema, answer, f"{operation} answer")
    return problems
