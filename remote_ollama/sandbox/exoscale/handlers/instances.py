"""Handlers of instances: create (name, user-data, labels, quota), list, get, update and the
lifecycle verbs."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from remote_ollama.sandbox.exoscale.handlers.registry import ApiContext, Query, handles, json_object, ref_id
from remote_ollama.sandbox.exoscale.objects import ApiError, Instance, new_id, now_rfc3339

MAX_USER_DATA = 32768
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

# -- instances -----------------------------------------------------------------------------------


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(400, "labels: must be an object of string values")
    return dict(value)


def _user_data(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_USER_DATA:
        raise ApiError(400, f"user-data: must be 1 to {MAX_USER_DATA} base64 characters")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ApiError(400, "user-data: must be base64-encoded") from exc
    return value


@handles("create-instance")
def create_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = json_object(body)
    instance_id = new_id()
    name = data.get("name", f"vm-{instance_id[:8]}")
    if not isinstance(name, str) or not _HOSTNAME_RE.match(name):
        raise ApiError(400, f"name: {name!r} is not a valid hostname")
    disk = data.get("disk-size")
    if isinstance(disk, bool) or not isinstance(disk, int) or not 10 <= disk <= 51200:
        raise ApiError(400, "disk-size: required, an integer from 10 to 51200")
    itype = ctx.catalog.instance_type(ref_id(data, "instance-type"))
    if itype is None:
        raise ApiError(404, f"Instance type {data['instance-type']['id']} not found")
    if ctx.zone not in itype.zones:
        raise ApiError(400, f"Instance type {itype.name} is not available in zone {ctx.zone}")
    if not itype.authorized:
        raise ApiError(403, f"Instance type {itype.name} is not authorized for this organization")
    template_id = ref_id(data, "template")
    private = ctx.state.templates.get(template_id)
    template = ctx.catalog.template(template_id)
    if template is None and private is None:
        raise ApiError(404, f"Template {template_id} not found")
    if private is not None and disk < private.size:
        raise ApiError(400, f"disk-size: at least the template's {private.size} GiB")
    sg_ids = []
    for ref in data.get("security-groups") or []:
        sg_id = ref.get("id") if isinstance(ref, dict) else None
        if not isinstance(sg_id, str) or sg_id not in ctx.state.security_groups:
            raise ApiError(404, f"Security Group {sg_id} not found")
        sg_ids.append(sg_id)
    assignment = data.get("public-ip-assignment", "inet4")
    if assignment not in ("inet4", "dual", "none"):
        raise ApiError(400, "public-ip-assignment: one of inet4, dual, none")
    inst = Instance(
        id=instance_id,
        name=name,
        instance_type=itype,
        template_id=template_id,
        disk_size=disk,
        state="starting",
        created_at=now_rfc3339(),
        user_data=_user_data(data.get("user-data")),
        labels=_labels(data.get("labels")),
        security_group_ids=sg_ids,
    )
    _check_quota(ctx, itype.family, itype.gpus)
    op = ctx.state.create_instance(
        inst, auto_start=data.get("auto-start", True) is not False, public_ip=assignment != "none"
    )
    return op.to_api()


def _check_quota(ctx: ApiContext, family: str, gpus: int) -> None:
    checks = [("instance", 1)] + ([(family, gpus)] if gpus else [])
    for entity, wanted in checks:
        limit, usage = ctx.state.quota_limit(entity), ctx.state.quota_usage(entity)
        if limit >= 0 and usage + wanted > limit:
            raise ApiError(
                ctx.quota_error_status,
                f"Quota exceeded for resource {entity!r}: limit {limit}, usage {usage}, requested {wanted}",
            )


def _label_filter(values: list[str]) -> list[tuple[str, str | None]]:
    wanted: list[tuple[str, str | None]] = []
    for value in values:
        for part in value.split(","):
            key, sep, val = part.partition("=")
            if key:
                wanted.append((key, val if sep else None))
    return wanted


@handles("list-instances")
def list_instances(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    wanted = _label_filter(query.get("labels", []))
    ip = query.get("ip-address", [None])[0]
    found = [
        i
        for i in ctx.state.instances.values()
        if all(k in i.labels and (v is None or i.labels[k] == v) for k, v in wanted)
        and ip in (None, i.public_ip)
    ]
    return {"instances": [i.to_api(summary=True) for i in found]}


@handles("update-instance")
def update_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = json_object(body)
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not _HOSTNAME_RE.match(name)):
        raise ApiError(400, f"name: {name!r} is not a valid hostname")
    labels = _labels(data["labels"]) if "labels" in data else None
    return ctx.state.update_instance(
        path["id"], name=name, user_data=_user_data(data.get("user-data")), labels=labels
    ).to_api()
