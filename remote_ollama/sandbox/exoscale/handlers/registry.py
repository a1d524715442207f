"""The simulator's operation table: one function per Exoscale API v2 operation, keyed by operationId
(`handles`), and the helpers every handler uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_ollama.sandbox.exoscale.catalog import Catalog
from remote_ollama.sandbox.exoscale.objects import ApiError
from remote_ollama.sandbox.exoscale.state import CloudState


@dataclass
class ApiContext:
    state: CloudState
    catalog: Catalog
    zone: str
    url: str  # the base URL template, "{zone}" in place of the zone
    quota_error_status: int


Query = dict[str, list[str]]
Handler = Callable[[ApiContext, dict[str, str], Query, Any], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handles(operation_id: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[operation_id] = fn
        return fn

    return register


def json_object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def ref_id(body: dict[str, Any], key: str) -> str:
    ref = body.get(key)
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise ApiError(400, f"{key}: required, an object with an id")
    return str(ref["id"])


def required_name(data: dict[str, Any]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise ApiError(400, "name: required, 1 to 255 characters")
    return name
