"""OpenAPI v3 documents built from the registered resources, as `/openapi/v3` serves them.

kubectl reads them for `kubectl explain` (the CRD schemas, with descriptions) and to learn that the
server validates fields itself (the `fieldValidation` query parameter on PATCH/POST/PUT), so
`kubectl apply` needs no `--validate=false`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": "Ignore, Warn or Strict: how unknown or duplicate fields are treated.",
    "schema": {"type": "string", "uniqueItems": True},
}


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


def schema_name(group: str, version: str, kind: str) -> str:
    prefix = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
    return f"{prefix}.{version}.{kind}"


def build_gv_doc(group: str, version: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """entries: {plural, kind, namespaced, schema (openAPIV3Schema or None)} of one group/version."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for entry in entries:
        gvk = {"group": group, "version": version, "kind": entry["kind"]}
        schema = copy.deepcopy(
            entry.get("schema") or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schema.setdefault("description", f"{entry['kind']} (schema not published by this emulator)")
        schema["x-kubernetes-group-version-kind"] = [gvk]
        name = schema_name(group, version, entry["kind"])
        schemas[name] = schema
        ref = {"$ref": f"#/components/schemas/{name}"}
        body = {"content": {"application/json": {"schema": ref}}}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        base = f"/{gv_path(group, version)}/" + ("namespaces/{namespace}/" if entry["namespaced"] else "")
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": [_FIELD_VALIDATION], "responses": ok}
        paths[f"{base}{entry['plural']}"] = {
            "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "list", "responses": ok},
            "post": {**op, "x-kubernetes-action": "post", "requestBody": body},
        }
        paths[f"{base}{entry['plural']}/{{name}}"] = {
            "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get", "responses": ok},
            "put": {**op, "x-kubernetes-action": "put", "requestBody": body},
            "patch": {**op, "x-kubernetes-action": "patch", "requestBody": body},
            "delete": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "delete",
                "responses": ok,
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (emulated)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def doc_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
