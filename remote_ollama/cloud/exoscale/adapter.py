"""The Exoscale adapter: domain verbs over the real python-exoscale v2 client.

Timeouts, retries and error mapping live in `transport`; the zone's catalogue and GPU quota in
`catalogue`, security groups in `security_groups` (mixins); this module says what to do with
instances (find, create, start, stop, delete) and waits until it is done. Every method blocks;
`AsyncExoscaleCloud` runs them in threads so an event loop never does. Credentials live only in
the client's auth object: never in messages or logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from remote_ollama.cloud.errors import (
    CloudError,
    NotFoundError,
    OperationFailed,
    OperationTimeout,
    QuotaError,
)
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.spec.names import LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_MANAGED_BY_VALUE, LABEL_OWNER

from .catalogue import Catalogue
from .security_groups import RULE_DESCRIPTION, SecurityGroups
from .templates import Templates
from .transport import JSON, ExoscaleTransport, make_client
from .volumes import Volumes

log = logging.getLogger(__name__)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def owner_labels(owner_uid: str, cluster: str) -> dict[str, str]:
    """The labels (docs/design.md section 2) that tie an instance to one resource of one cluster."""
    return {LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE, LABEL_OWNER: owner_uid, LABEL_CLUSTER: cluster}


class ExoscaleCloud:
    """One zone of one Exoscale organisation, spoken to in the product's verbs (blocking)."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        zone: str,
        *,
        endpoint: str | None = None,
        timeout: float = 30,
        retries: int = 5,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 2.0,
    ):
        self.zone = zone
        self.endpoint = endpoint
        self.client = make_client(api_key, api_secret, zone, endpoint, timeout)
        self.api = ExoscaleTransport(self.client, zone, retries, backoff_base, sleep, clock, poll_interval)
        self._call = self.api.call
        self._wait_operation = self.api.wait_operation
        self.catalogue = Catalogue(self.api, zone)
        self.security_groups = SecurityGroups(self.api)
        self.templates = Templates(self.api)
        self.volumes = Volumes(self.api)

    def __repr__(self) -> str:
        return f"<ExoscaleCloud zone={self.zone} endpoint={self.client.endpoint}>"

    def _wait_state(
        self, instance_id: str, done: Callable[[JSON | None], bool], deadline: float, what: str
    ) -> JSON | None:
        end = self.api.clock() + deadline
        while True:
            try:
                raw: JSON | None = self._call("get_instance", id=instance_id)
            except NotFoundError:
                raw = None
            if done(raw):
                return raw
            if raw is not None and raw.get("state") == "error":
                raise OperationFailed(f"instance {instance_id} is in state error while waiting to be {what}")
            if self.api.clock() >= end:
                state = raw.get("state") if raw else "gone"
                raise OperationTimeout(
                    f"instance {instance_id} not {what} after {deadline:.0f}s (state {state})"
                )
            self.api.sleep(self.api.poll_interval)

    # instances ------------------------------------------------------------------------------------
    def _observe(self, raw: JSON) -> ObservedInstance:
        itype = raw.get("instance-type") or {}
        if itype.get("family") and itype.get("size"):
            type_name = f"{itype['family']}.{itype['size']}"
        else:
            type_id = str(itype.get("id", ""))
            type_name = self.catalogue.type_name(type_id) or type_id
        return ObservedInstance(
            id=str(raw["id"]),
            state=str(raw.get("state", "")),
            public_ip=raw.get("public-ip") or None,
            zone=self.zone,
            instance_type=type_name,
            template_id=str((raw.get("template") or {}).get("id", "")),
            disk_size=int(raw.get("disk-size") or 0),
            labels=dict(raw.get("labels") or {}),
            created_at=_parse_time(raw.get("created-at")),
        )

    def find_instances(self, labels: Mapping[str, str]) -> list[ObservedInstance]:
        """Every instance carrying all `labels` (filtered here too: the server filter is advisory)."""
        query = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        raws: list[JSON] = self._call("list_instances", labels=query).get("instances", [])
        out = []
        for raw in raws:
            if "labels" not in raw:  # a summary without labels: ask for the full instance
                try:
                    raw = self._call("get_instance", id=raw["id"])
                except NotFoundError:
                    continue
            have = raw.get("labels") or {}
            if all(have.get(k) == v for k, v in labels.items()):
                out.append(self._observe(raw))
        return out

    def find_instance(self, owner_uid: str, cluster: str) -> ObservedInstance | None:
        """The newest live instance of this resource in full (lists omit e.g. disk-size), or None."""
        live = [i for i in self.find_instances(owner_labels(owner_uid, cluster)) if i.state not in GONE]
        if not live:
            return None
        newest = max(live, key=lambda i: (i.created_at.timestamp() if i.created_at else 0.0, i.id))
        full = self.get_instance(newest.id)
        return full if full is not None and full.state not in GONE else None

    def get_instance(self, instance_id: str) -> ObservedInstance | None:
        try:
            return self._observe(self._call("get_instance", id=instance_id))
        except NotFoundError:
            return None

    def _type_and_template(
        self, instance_type: str | Mapping[str, Any], template: str | Mapping[str, Any]
    ) -> tuple[JSON, JSON]:
        itype = (
            dict(instance_type)
            if isinstance(instance_type, Mapping)
            else self.catalogue.resolve_instance_type(instance_type)
        )
        tpl = dict(template) if isinstance(template, Mapping) else self.catalogue.resolve_template(template)
        return itype, tpl

    def _create(
        self,
        name: str,
        itype: JSON,
        tpl: JSON,
        disk_size: int,
        user_data_b64: str,
        security_group_id: str,
        labels: dict[str, str],
    ) -> JSON:
        result: JSON = self._call(
            "create_instance",
            before_retry=lambda: self._already_created(name, labels),
            name=name,
            instance_type={"id": itype["id"]},
            template={"id": tpl["id"]},
            disk_size=disk_size,
            user_data=user_data_b64,
            security_groups=[{"id": security_group_id}],
            labels=labels,
            public_ip_assignment="inet4",
        )
        return result

    def update_user_data(self, instance_id: str, user_data_b64: str, deadline: float = 60) -> None:
        """Replace an instance's user-data (update-instance); the running VM is not affected."""
        op = self._call("update_instance", id=instance_id, user_data=user_data_b64)
        if isinstance(op, dict) and "state" in op:
            self._wait_operation(op, deadline)

    def _already_created(self, name: str, labels: Mapping[str, str]) -> JSON | None:
        """After an ambiguous failure the create may have happened: adopt it rather than make a twin."""
        query = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        for raw in self._call("list_instances", labels=query).get("instances", []):
            have = raw.get("labels") or {}
            mine = raw.get("name") == name and all(have.get(k) == v for k, v in labels.items())
            if mine and raw.get("state") not in GONE:
                log.warning(
                    "exoscale create of %s was retried but instance %s exists: adopting", name, raw["id"]
                )
                return {"adopted": raw["id"]}
        return None

    def create_instance(
        self,
        name: str,
        instance_type: str | Mapping[str, Any],
        template: str | Mapping[str, Any],
        disk_size: int,
        user_data_b64: str,
        security_group_id: str,
        labels: Mapping[str, str],
        wait: bool = True,
        deadline: float = 600,
        confirm: bool = False,
    ) -> ObservedInstance:
        """Create (and by default wait until running) one instance; `instance_type`/`template` are names
        or the dicts `resolve_*` return. GPU quota is checked first, so no instance exists on QuotaError.
        `confirm` without `wait`: wait for the operation only (a capacity failure raises), not the boot."""
        itype, tpl = self._type_and_template(instance_type, template)
        if itype.get("gpus") and itype.get("family"):
            self.catalogue.check_gpu_quota(str(itype["family"]), int(itype["gpus"]))
        labels = dict(labels)

        try:
            result = self._create(name, itype, tpl, disk_size, user_data_b64, security_group_id, labels)
        except QuotaError as exc:
            if exc.family or not itype.get("family"):
                raise
            family = str(itype["family"])
            self.catalogue.check_gpu_quota(
                family, int(itype.get("gpus") or 0)
            )  # names family and limit when it can
            raise QuotaError(exc.message, family=family, zone=self.zone, reason=exc.reason) from exc
        if "adopted" in result:
            instance_id = result["adopted"]
        else:
            instance_id = result["reference"]["id"]
            log.info("exoscale creating instance %s (%s) operation %s", name, instance_id, result["id"])
            if wait or confirm:
                started = self.api.clock()
                self._wait_operation(result, deadline)
                deadline = max(1.0, deadline - (self.api.clock() - started))
        if wait:
            raw = self._wait_state(
                instance_id, lambda r: r is not None and r.get("state") == "running", deadline, "running"
            )
            assert raw is not None
            return self._observe(raw)
        inst = self.get_instance(instance_id)
        return inst or ObservedInstance(id=instance_id, state="starting", zone=self.zone, labels=labels)

    def _act(
        self,
        verb: str,
        instance_id: str,
        target: str,
        from_states: set[str],
        wait: bool,
        deadline: float,
        confirm: bool = False,
    ) -> ObservedInstance:
        """start/stop: idempotent when already there, waits through transitions, then acts."""
        current = self.get_instance(instance_id)
        if current is None:
            raise NotFoundError(f"instance {instance_id} not found in {self.zone}", status=404)
        if current.state != target:
            if current.state not in from_states:
                raw = self._wait_state(
                    instance_id,
                    lambda r: r is None or r.get("state") in from_states | {target},
                    deadline,
                    "ready to " + verb,
                )
                if raw is None:
                    raise NotFoundError(f"instance {instance_id} vanished", status=404)
                current = self._observe(raw)
            if current.state != target:
                started = self.api.clock()
                op = self._call(
                    f"{verb}_instance",
                    id=instance_id,
                    before_retry=lambda: self._already_acted(instance_id, target),
                )
                if "already" not in op:
                    log.info("exoscale %s instance %s operation %s", verb, instance_id, op.get("id"))
                    if wait or confirm:
                        self._wait_operation(op, deadline)
                        deadline = max(1.0, deadline - (self.api.clock() - started))
        if not wait:
            return self.get_instance(instance_id) or current
        raw = self._wait_state(instance_id, lambda r: r is None or r.get("state") == target, deadline, target)
        if raw is None:
            raise NotFoundError(f"instance {instance_id} vanished", status=404)
        return self._observe(raw)

    def _already_acted(self, instance_id: str, target: str) -> JSON | None:
        """Before retrying a start/stop whose answer was lost: it may have happened (a retry would be a 400)."""
        current = self.get_instance(instance_id)
        toward = {"running": ("starting", "running"), "stopped": ("stopping", "stopped")}[target]
        return {"already": current.state} if current is not None and current.state in toward else None

    def start_instance(
        self, instance_id: str, wait: bool = True, deadline: float = 600, confirm: bool = False
    ) -> ObservedInstance:
        return self._act("start", instance_id, "running", {"stopped"}, wait, deadline, confirm)

    def stop_instance(self, instance_id: str, wait: bool = True, deadline: float = 600) -> ObservedInstance:
        return self._act("stop", instance_id, "stopped", {"running"}, wait, deadline)

    def delete_instance(self, instance_id: str, wait: bool = True, deadline: float = 600) -> None:
        """Delete; a missing instance is already deleted. With `wait`, returns once it is gone for good."""
        try:
            op = self._call("delete_instance", id=instance_id)
        except NotFoundError:
            return
        log.info("exoscale deleting instance %s operation %s", instance_id, op.get("id"))
        if wait:
            started = self.api.clock()
            try:
                self._wait_operation(op, deadline)
            except OperationFailed as exc:
                if self.get_instance(instance_id) is not None:
                    raise
                log.info("exoscale delete of %s reported %s but it is gone", instance_id, exc.reason)
                return
            rest = max(1.0, deadline - (self.api.clock() - started))
            self._wait_state(
                instance_id, lambda r: r is None or r.get("state") == "destroyed", rest, "deleted"
            )


__all__ = ["RULE_DESCRIPTION", "CloudError", "ExoscaleCloud", "owner_labels"]
