"""The Exoscale API's own description (the openapi.json bundled with python-exoscale) as a judge of
the simulator's traffic: each request body the product sends and each answer the simulator gives is
validated against the operation's schemas, strictly (a field the description does not name fails,
so the simulator cannot invent fields and the product cannot send unknown ones).
"""

from __future__ import annotations

import copy
import functools
import json
import re
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


def _json_schema(content: Any) -> Any:
    return (content or {}).get("application/json", {}).get("schema")


@functools.cache
def _validator(operation: str, kind: str) -> jsonschema.Draft4Validator | None:
    """The operation's request body schema (`kind` "request"), or its answer's for a status ("200",
    "404", ...); None where the description has none."""
    entry = _operations()[operation]
    if kind == "request":
        schema = _json_schema(entry.get("requestBody", {}).get("content"))
    else:
        schema = _json_schema(entry.get("responses", {}).get(kind, {}).get("content"))
    if schema is None:
        return None
    # Draft 4: OpenAPI 3.0's boolean exclusiveMaximum
    return jsonschema.Draft4Validator({**_components(), **_strict(schema)})


def described_statuses(operation: str) -> list[str]:
    return sorted(_operations()[operation].get("responses", {}))


def _validate(validator: jsonschema.Draft4Validator, value: Any, where: str) -> list[str]:
    return [
        f"{where}: {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
        for e in validator.iter_errors(value)
    ]


def check_exchange(operation: str, body: Any, status: int, answer: Any) -> list[str]:
    """What in one call contradicts the description (empty when nothing does).

    A request is judged when the simulator accepted it (a refused one may be a test of the refusal);
    an answer always: a 200 against the operation's 200 schema, an error against the schema the
    description gives that status, if it gives one (for the compute operations it gives none: the
    SDK reads an error's text only)."""
    if operation == "unknown" and status >= 400:
        return []  # no route, no zone or a refused signature: no operation to judge by
    if operation not in _operations():
        return [f"{operation}: no such operation in the API description"]
    problems: list[str] = []
    if status < 400 and body is not None:
        request = _validator(operation, "request")
        if request is None:
            problems.append(f"{operation}: a request body where the description has none")
        else:
            problems += _validate(request, body, f"{operation} request")
    answer_schema = _validator(operation, str(status))
    if status == 200 and answer_schema is None:
        problems.append(f"{operation}: a 200 answer the description does not have")
    elif answer_schema is not None:
        problems += _validate(answer_schema, answer, f"{operation} {status} answer")
    return problems


_PRECONDITION = re.compile(
    r"[^.]*\b(?:must be|must have been|only (?:when|if|while)|cannot be|requires? the)\b[^.]*\.?", re.I
)


def documented_preconditions(operation: str) -> list[str]:
    """The sentences of an operation's summary and description that state a precondition
    ("The Compute instance must be previously stopped.")."""
    entry = _operations()[operation]
    text = " ".join(str(entry.get(k) or "") for k in ("summary", "description"))
    return [m.group(0).strip() for m in _PRECONDITION.finditer(text)]


def recorded_problems(path: Path) -> list[str]:
    """What contradicts the description in the exchanges a simulator in another process recorded
    (`RECORD_ENV`, one JSON object a line)."""
    if not path.exists():
        return []
    problems: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        call = json.loads(line)
        problems += check_exchange(call["operation"], call["body"], call["status"], call["answer"])
    return problems
