"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

Custom resources get Name plus their CRD's additionalPrinterColumns (JSONPath, dates humanized
as the API server does); a few built-ins get their familiar columns; anything else Name and Age.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

Column = dict[str, Any]  # {name, type, jsonPath | fn, description, priority}


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath subset printer columns use: `.a.b`, `.a[0].b`, `.a.b\\.c`."""
    value = obj
    for part in re.findall(r"(?:\\.|[^.\[\]])+|\[\d+\]", path.strip().removeprefix("{").removesuffix("}")):
        if part.startswith("["):
            index = int(part[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            key = part.replace("\\.", ".")
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def human_age(stamp: str | None, now: datetime.datetime | None = None) -> str | None:
    if not stamp:
        return None
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _age(obj: dict[str, Any]) -> Any:
    return human_age(obj.get("metadata", {}).get("creationTimestamp"))


def _ports(obj: dict[str, Any]) -> str:
    ports = obj.get("spec", {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _ready(obj: dict[str, Any]) -> str:
    status = obj.get("status", {})
    return f"{status.get('readyReplicas', 0)}/{obj.get('spec', {}).get('replicas', 1)}"


_BUILTIN: dict[str, list[tuple[str, Callable[[dict[str, Any]], Any]]]] = {
    "secrets": [
        ("Type", lambda o: o.get("type", "Opaque")),
        ("Data", lambda o: len(o.get("data") or {}) + len(o.get("stringData") or {})),
    ],
    "services": [
        ("Type", lambda o: o.get("spec", {}).get("type", "ClusterIP")),
        ("Cluster-IP", lambda o: o.get("spec", {}).get("clusterIP", "<none>")),
        ("External-IP", lambda o: "<none>"),
        ("Port(s)", _ports),
    ],
    "deployments": [
        ("Ready", _ready),
        ("Up-to-date", lambda o: o.get("status", {}).get("updatedReplicas", 0)),
        ("Available", lambda o: o.get("status", {}).get("availableReplicas", 0)),
    ],
    "namespaces": [("Status", lambda o: o.get("status", {}).get("phase", "Active"))],
}


def render_table(
    plural: str, objects: list[dict[str, Any]], printer_columns: list[Column] | None, resource_version: str
) -> dict[str, Any]:
    defs: list[dict[str, Any]] = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name of the object",
            "priority": 0,
        }
    ]
    getters: list[Callable[[dict[str, Any]], Any]] = [lambda o: o.get("metadata", {}).get("name")]
    if printer_columns is not None:
        for col in printer_columns:
            defs.append(
                {
                    "name": col["name"],
                    "type": "string" if col.get("type") == "date" else col.get("type", "string"),
                    "format": col.get("format", ""),
                    "description": col.get("description", ""),
                    "priority": col.get("priority", 0),
                }
            )
            getters.append(_column_getter(col))
    else:
        for name, fn in [*_BUILTIN.get(plural, []), ("Age", _age)]:
            defs.append({"name": name, "type": "string", "format": "", "description": name, "priority": 0})
            getters.append(fn)
    rows = [
        {
            "cells": [get(obj) for get in getters],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    }


def _column_getter(col: Column) -> Callable[[dict[str, Any]], Any]:
    path, kind = col["jsonPath"], col.get("type")

    def get(obj: dict[str, Any]) -> Any:
        value = jsonpath(obj, path)
        if kind == "date":
            return human_age(value) if isinstance(value, str) else None
        return value

    return get
