"""The VM's security group: find or create it, converge its ingress rules, detach-checks, delete.

`ExoscaleCloud` has one. A group has no labels, so ownership is a mark in its description; a
group of the same name without the mark is someone else's and is never touched.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Any

from remote_ollama.cloud.errors import CloudError, NotFoundError
from remote_ollama.spec.names import VM_PORT
from remote_ollama.spec.vocabulary import Reason

from .transport import JSON, ExoscaleTransport

log = logging.getLogger(__name__)

RULE_DESCRIPTION = "remote-ollama: VM TLS port"


class SecurityGroups:
    """Security groups of one zone (blocking)."""

    def __init__(self, api: ExoscaleTransport) -> None:
        self._call: Callable[..., Any] = api.call
        self._wait_operation: Callable[[JSON, float], JSON] = api.wait_operation

    def security_group_names(self, prefix: str) -> list[str]:
        """Names of the zone's security groups starting with `prefix` (the orphan sweep's listing)."""
        groups: list[JSON] = self._call("list_security_groups").get("security-groups", [])
        return [str(g["name"]) for g in groups if str(g.get("name", "")).startswith(prefix)]

    def _find_security_group(self, name: str) -> JSON | None:
        groups: list[JSON] = self._call("list_security_groups").get("security-groups", [])
        return next((g for g in groups if g.get("name") == name), None)

    def ensure_security_group(
        self, name: str, cidrs: Sequence[str], port: int = VM_PORT, *, owner: str | None = None
    ) -> str:
        """Find or create the group `name`; make its ingress rules exactly tcp `port` from each CIDR.

        With `owner`, the group is marked with it in its description (groups have no labels), and a
        group of that name without the mark is someone else's: refused, never converged."""
        wanted = {str(ipaddress.ip_network(c, strict=False)) for c in cidrs}
        mark = f"owner={owner}" if owner else ""
        group = self._find_security_group(name)
        if group is not None and mark and mark not in str(group.get("description", "")).split():
            raise CloudError(
                f"security group {name} exists and is not this resource's (its description lacks {mark}); "
                "nothing was changed",
                reason=Reason.SECURITY_GROUP_CONFLICT,
            )
        sg_id = str(group["id"]) if group is not None else self._create_group(name, mark)
        have = self._keep_exact_rules(sg_id, wanted, port)
        for network in sorted(wanted - set(have)):
            self._add_rule(sg_id, network, port)
        return sg_id

    def _create_group(self, name: str, mark: str) -> str:
        """Create the group (`mark` in its description); one created concurrently is used."""
        try:
            op = self._call(
                "create_security_group",
                name=name,
                description=f"remote-ollama: access to the GPU VM's TLS port {mark}".strip(),
                before_retry=lambda: self._find_security_group(name),
            )
        except CloudError as exc:
            if exc.status != 409:
                raise
            op = None  # created concurrently (or by a retried request): use it
        if op is not None and "state" in op:
            sg_id = str(self._wait_operation(op, 60)["reference"]["id"])
            log.info("exoscale created security group %s (%s)", name, sg_id)
            return sg_id
        found = op if op is not None else self._find_security_group(name)
        if found is None:
            raise CloudError(f"security group {name} vanished while being created", reason=Reason.CONFLICT)
        return str(found["id"])

    def _keep_exact_rules(self, sg_id: str, wanted: set[str], port: int) -> dict[str, str]:
        """Remove every ingress rule but one tcp `port` rule per wanted network; the kept ones by network."""
        full: JSON = self._call("get_security_group", id=sg_id)
        have: dict[str, str] = {}
        for rule in full.get("rules", []):
            exact = (
                rule.get("flow-direction") == "ingress"
                and rule.get("protocol") == "tcp"
                and rule.get("start-port") == port
                and rule.get("end-port") == port
                and rule.get("network") in wanted
                and rule.get("network") not in have
            )
            if exact:
                have[rule["network"]] = rule["id"]
            elif rule.get("flow-direction") == "ingress":
                op = self._call("delete_rule_from_security_group", id=sg_id, rule_id=rule["id"])
                self._wait_operation(op, 60)
                log.info("exoscale removed rule %s from security group %s", rule["id"], sg_id)
        return have

    def _add_rule(self, sg_id: str, network: str, port: int) -> None:
        op = self._call(
            "add_rule_to_security_group",
            # an answer lost after the rule was added must not add a twin rule on retry
            before_retry=functools.partial(self._rule_present, sg_id, network, port),
            id=sg_id,
            flow_direction="ingress",
            protocol="tcp",
            network=network,
            start_port=port,
            end_port=port,
            description=RULE_DESCRIPTION,
        )
        if "present" not in op:
            self._wait_operation(op, 60)
        log.info("exoscale allowed %s on tcp/%d in security group %s", network, port, sg_id)

    def _rule_present(self, sg_id: str, network: str, port: int) -> JSON | None:
        for rule in self._call("get_security_group", id=sg_id).get("rules", []):
            if (rule.get("flow-direction"), rule.get("protocol"), rule.get("network")) == (
                "ingress",
                "tcp",
                network,
            ) and (rule.get("start-port"), rule.get("end-port")) == (port, port):
                return {"present": rule.get("id")}
        return None

    def instance_security_groups(self, instance_id: str) -> list[str]:
        """Names of the groups attached to an instance."""
        raw: JSON = self._call("get_instance", id=instance_id)
        names = []
        for ref in raw.get("security-groups") or []:
            name = ref.get("name") or self._call("get_security_group", id=ref["id"]).get("name")
            if name:
                names.append(str(name))
        return names

    def delete_security_group(self, name: str, *, deadline: float = 120) -> None:
        """Delete the group if it exists (missing is fine); raises a retryable error while it is in use."""
        group = self._find_security_group(name)
        if group is None:
            return
        try:
            op = self._call("delete_security_group", id=group["id"])
        except NotFoundError:
            return
        except CloudError as exc:
            if exc.status == 400 and "in use" in exc.message.lower():
                raise CloudError(exc.message, reason=Reason.SECURITY_GROUP_IN_USE, status=400) from exc
            raise
        self._wait_operation(op, deadline)
        log.info("exoscale deleted security group %s (%s)", name, group["id"])
