"""Handlers of security groups and their rules."""

from __future__ import annotations

import ipaddress
from typing import Any

from remote_ollama.sandbox.exoscale.handlers.registry import (
    ApiContext,
    Query,
    handles,
    json_object,
    required_name,
)
from remote_ollama.sandbox.exoscale.objects import ApiError, Rule, new_id

_PROTOCOLS = ("ah", "all", "esp", "gre", "icmp", "icmpv6", "ipip", "tcp", "udp")

# -- security groups -----------------------------------------------------------------------------


@handles("list-security-groups")
def list_security_groups(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    if query.get("visibility", ["private"])[0] == "public":
        return {"security-groups": []}
    return {"security-groups": [sg.to_api() for sg in ctx.state.security_groups.values()]}


@handles("create-security-group")
def create_security_group(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = json_object(body)
    return ctx.state.create_security_group(required_name(data), str(data.get("description", ""))).to_api()


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
    data = json_object(body)
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
    return ctx.state.done_soon(sg.id, "security-group").to_api()


@handles("delete-rule-from-security-group")
def delete_rule(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    sg = ctx.state.get_security_group(path["id"])
    kept = [r for r in sg.rules if r.id != path["rule-id"]]
    if len(kept) == len(sg.rules):
        raise ApiError(404, f"Security Group rule {path['rule-id']} not found")
    sg.rules = kept
    return ctx.state.done_soon(sg.id, "security-group").to_api()
