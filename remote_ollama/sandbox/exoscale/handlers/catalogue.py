"""Handlers of the catalogue and the account: zones, templates, snapshots, instance types, quotas and
operations."""

from __future__ import annotations

from typing import Any

from remote_ollama.sandbox.exoscale.catalog import zone_entries
from remote_ollama.sandbox.exoscale.handlers.registry import (
    ApiContext,
    Query,
    handles,
    json_object,
    required_name,
)
from remote_ollama.sandbox.exoscale.objects import ApiError, found

# -- catalogue -----------------------------------------------------------------------------------


@handles("list-zones")
def list_zones(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return {"zones": zone_entries(ctx.url, [z.zone for z in ctx.state.account.zones])}


@handles("list-templates")
def list_templates(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    if query.get("visibility", ["public"])[0] == "private":
        return {"templates": [t.to_api() for t in ctx.state.templates.values()]}
    family = query.get("family", [None])[0]
    found = [t for t in ctx.catalog.templates if ctx.zone in t.zones and family in (None, t.family)]
    return {"templates": [t.to_api() for t in found]}


@handles("get-template")
def get_template(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    private = ctx.state.templates.get(path["id"])
    if private is not None:
        return private.to_api()
    return found(ctx.catalog.template(path["id"]), "Template", path["id"]).to_api()


@handles("delete-template")
def delete_template(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    if ctx.catalog.template(path["id"]) is not None:
        raise ApiError(403, f"Template {path['id']} is public: not yours to delete")
    return ctx.state.delete_template(path["id"]).to_api()


# -- snapshots -------------------------------------------------------------------------------------


@handles("list-snapshots")
def list_snapshots(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return {"snapshots": [s.to_api() for s in ctx.state.snapshots.values()]}


@handles("promote-snapshot-to-template")
def promote_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = json_object(body)
    name = required_name(data)
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 4096:
        raise ApiError(400, "description: at most 4096 characters")
    user = data.get("default-user", "ubuntu")
    return ctx.state.promote_snapshot(path["id"], name, description, str(user)).to_api()


@handles("list-instance-types")
def list_instance_types(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return {"instance-types": [t.to_api() for t in ctx.catalog.instance_types]}


@handles("get-instance-type")
def get_instance_type(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return found(ctx.catalog.instance_type(path["id"]), "Instance type", path["id"]).to_api()


# -- quotas ----------------------------------------------------------------------------------------


def _quota_entities(ctx: ApiContext) -> list[str]:
    return ["instance", "security-group", *ctx.catalog.gpu_families()]


def _quota(ctx: ApiContext, entity: str) -> dict[str, Any]:
    limit = -1 if entity == "security-group" else ctx.state.quota_limit(entity)
    return {"resource": entity, "usage": ctx.state.quota_usage(entity), "limit": limit}


@handles("get-quota")
def get_quota(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    if path["entity"] not in _quota_entities(ctx):
        raise ApiError(404, f"Quota for resource {path['entity']!r} not found")
    return _quota(ctx, path["entity"])


@handles("list-quotas")
def list_quotas(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return {"quotas": [_quota(ctx, e) for e in _quota_entities(ctx)]}


@handles("get-operation")
def get_operation(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return found(ctx.state.operations.get(path["id"]), "Operation", path["id"]).to_api()
