"""One function per Exoscale API v2 operation the simulator implements, keyed by operationId.

Each takes the path parameters, the query and the JSON body and returns the JSON answer, or raises
ApiError with the status and `message` the real API would give. Shapes follow the SDK's bundled
openapi.json: hyphenated keys, lists wrapped under their plural name, writes answering an operation.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_ollama.sandbox.exoscale.catalog import Catalog, zone_entries
from remote_ollama.sandbox.exoscale.state import ApiError, CloudState, Instance, Rule, new_id, now_rfc3339

MAX_USER_DATA = 32768
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_PROTOCOLS = ("ah", "all", "esp", "gre", "icmp", "icmpv6", "ipip", "tcp", "udp")


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


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _ref_id(body: dict[str, Any], key: str) -> str:
    ref = body.get(key)
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise ApiError(400, f"{key}: required, an object with an id")
    return str(ref["id"])


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
    tpl = ctx.catalog.template(path["id"])
    if tpl is None:
        raise ApiError(404, f"Template {path['id']} not found")
    return tpl.to_api()


@handles("delete-template")
def delete_template(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    if ctx.catalog.template(path["id"]) is not None:
        raise ApiError(403, f"Template {path['id']} is public: not yours to delete")
    return ctx.state.delete_template(path["id"]).to_api()


# -- snapshots -------------------------------------------------------------------------------------


@handles("create-snapshot")
def create_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.create_snapshot(path["id"]).to_api()


@handles("list-snapshots")
def list_snapshots(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return {"snapshots": [s.to_api() for s in ctx.state.snapshots.values()]}


@handles("get-snapshot")
def get_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.get_snapshot(path["id"]).to_api()


@handles("delete-snapshot")
def delete_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.delete_snapshot(path["id"]).to_api()


@handles("promote-snapshot-to-template")
def promote_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = _body(body)
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise ApiError(400, "name: required, 1 to 255 characters")
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
    itype = ctx.catalog.instance_type(path["id"])
    if itype is None:
        raise ApiError(404, f"Instance type {path['id']} not found")
    return itype.to_api()


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


# -- security groups -----------------------------------------------------------------------------


@handles("list-security-groups")
def list_security_groups(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    if query.get("visibility", ["private"])[0] == "public":
        return {"security-groups": []}
    return {"security-groups": [sg.to_api() for sg in ctx.state.security_groups.values()]}


@handles("get-security-group")
def get_security_group(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.get_security_group(path["id"]).to_api()


@handles("create-security-group")
def create_security_group(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = _body(body)
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise ApiError(400, "name: required, 1 to 255 characters")
    return ctx.state.create_security_group(name, str(data.get("description", ""))).to_api()


@handles("delete-security-group")
def delete_security_group(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.delete_security_group(path["id"]).to_api()


def _port(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ApiError(400, f"{key}: must be an integer 1..65535")
    return value


@handles("add-rule-to-security-group")
def add_rule(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    sg = ctx.state.get_security_group(path["id"])
    data = _body(body)
    direction, protocol = data.get("flow-direction"), data.get("protocol")
    if direction not in ("ingress", "egress"):
        raise ApiError(400, "flow-direction: required, ingress or egress")
    if protocol not in _PROTOCOLS:
        raise ApiError(400, f"protocol: required, one of {', '.join(_PROTOCOLS)}")
    network = data.get("network")
    if network is not None:
        try:
            network = str(ipaddress.ip_network(str(network), strict=False))
        except ValueError as exc:
            raise ApiError(400, f"network: invalid CIDR {data.get('network')!r}") from exc
    elif "security-group" not in data:
        raise ApiError(400, "a rule needs a network or a security-group")
    start, end = _port(data, "start-port"), _port(data, "end-port")
    if protocol in ("tcp", "udp") and (start is None or end is None or start > end):
        raise ApiError(400, "start-port and end-port are required for tcp/udp, start-port <= end-port")
    sg.rules.append(
        Rule(new_id(), direction, protocol, network, start, end, str(data.get("description", "")))
    )
    op = ctx.state.new_operation(sg.id, "security-group")
    ctx.state.finish_later(op)
    return op.to_api()


@handles("delete-rule-from-security-group")
def delete_rule(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    sg = ctx.state.get_security_group(path["id"])
    kept = [r for r in sg.rules if r.id != path["rule-id"]]
    if len(kept) == len(sg.rules):
        raise ApiError(404, f"Security Group rule {path['rule-id']} not found")
    sg.rules = kept
    op = ctx.state.new_operation(sg.id, "security-group")
    ctx.state.finish_later(op)
    return op.to_api()


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
    data = _body(body)
    instance_id = new_id()
    name = data.get("name", f"vm-{instance_id[:8]}")
    if not isinstance(name, str) or not _HOSTNAME_RE.match(name):
        raise ApiError(400, f"name: {name!r} is not a valid hostname")
    disk = data.get("disk-size")
    if isinstance(disk, bool) or not isinstance(disk, int) or not 10 <= disk <= 51200:
        raise ApiError(400, "disk-size: required, an integer from 10 to 51200")
    itype = ctx.catalog.instance_type(_ref_id(data, "instance-type"))
    if itype is None:
        raise ApiError(404, f"Instance type {data['instance-type']['id']} not found")
    if ctx.zone not in itype.zones:
        raise ApiError(400, f"Instance type {itype.name} is not available in zone {ctx.zone}")
    if not itype.authorized:
        raise ApiError(403, f"Instance type {itype.name} is not authorized for this organization")
    template_id = _ref_id(data, "template")
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


@handles("get-instance")
def get_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.get_instance(path["id"]).to_api()


@handles("update-instance")
def update_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = _body(body)
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not _HOSTNAME_RE.match(name)):
        raise ApiError(400, f"name: {name!r} is not a valid hostname")
    labels = _labels(data["labels"]) if "labels" in data else None
    return ctx.state.update_instance(
        path["id"], name=name, user_data=_user_data(data.get("user-data")), labels=labels
    ).to_api()


@handles("start-instance")
def start_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.start_instance(path["id"]).to_api()


@handles("stop-instance")
def stop_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.stop_instance(path["id"]).to_api()


@handles("reboot-instance")
def reboot_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.reboot_instance(path["id"]).to_api()


@handles("delete-instance")
def delete_instance(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return ctx.state.delete_instance(path["id"]).to_api()


@handles("get-operation")
def get_operation(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    op = ctx.state.operations.get(path["id"])
    if op is None:
        raise ApiError(404, f"Operation {path['id']} not found")
    return op.to_api()
