"""The zone's catalogue and the organisation's GPU quota: instance types, templates, quota checks.

`ExoscaleCloud` has one: it resolves the names a spec uses into what the create call needs and
refuses early (typed errors) what Exoscale would refuse late.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from remote_ollama.cloud.errors import (
    CloudError,
    InstanceTypeNotFound,
    NotAuthorizedError,
    NotFoundError,
    QuotaError,
    TemplateNotFound,
)
from remote_ollama.spec.sections import parse_instance_type
from remote_ollama.spec.vocabulary import Reason

from .transport import JSON, ExoscaleTransport

log = logging.getLogger(__name__)


class Catalogue:
    """Instance types, templates and GPU quota of one zone (blocking)."""

    def __init__(self, api: ExoscaleTransport, zone: str) -> None:
        self.zone = zone
        self._call: Callable[..., Any] = api.call
        self._type_names: dict[str, str] = {}  # instance type id -> family.size, as listed
        self._lock = threading.Lock()

    def type_name(self, type_id: str) -> str | None:
        """`family.size` of an instance type id (the list is read again for an id not seen yet)."""
        with self._lock:
            known = self._type_names.get(type_id)
        if known is None and type_id:
            with contextlib.suppress(CloudError):
                self._instance_types()
            with self._lock:
                known = self._type_names.get(type_id)
        return known

    def _instance_types(self) -> list[JSON]:
        types: list[JSON] = self._call("list_instance_types").get("instance-types", [])
        with self._lock:
            for t in types:
                if t.get("family") and t.get("size"):
                    self._type_names[t["id"]] = f"{t['family']}.{t['size']}"
        return types

    def check_credentials(self) -> None:
        """Raise CredentialsError unless the key pair is accepted (an authenticated, read-only call)."""
        self._instance_types()

    def resolve_instance_type(self, name: str) -> JSON:
        """The zone's instance type for `family.size`; raises when it is unknown, absent or unauthorised."""
        try:
            wanted = parse_instance_type(name)
        except ValueError as exc:
            raise InstanceTypeNotFound(str(exc)) from exc
        match = [
            t
            for t in self._instance_types()
            if (t.get("family"), t.get("size")) == (wanted.family, wanted.size)
        ]
        if not match:
            raise InstanceTypeNotFound(f"instance type {wanted.name} does not exist (zone {self.zone})")
        itype = match[0]
        zones = itype.get("zones")
        if zones is not None and self.zone not in zones:
            where = ", ".join(sorted(zones)) or "no zone"
            raise InstanceTypeNotFound(
                f"instance type {wanted.name} is not offered in {self.zone} (offered in: {where})",
                reason=Reason.INSTANCE_TYPE_NOT_IN_ZONE,
            )
        if itype.get("authorized") is False:
            raise NotAuthorizedError(
                f"instance type {wanted.name} is not authorized for this organization in {self.zone}: "
                "request access (GPU quota) in the Exoscale portal",
                family=wanted.family,
                zone=self.zone,
            )
        return itype

    def resolve_template(self, name: str) -> JSON:
        """The newest public template named exactly `name` that is available in the zone."""
        templates: list[JSON] = self._call("list_templates", visibility="public").get("templates", [])
        match = [t for t in templates if t.get("name") == name]
        match = [t for t in match if t.get("zones") is None or self.zone in t["zones"]] or match
        if not match:
            raise TemplateNotFound(f"template {name!r} not found among public templates in {self.zone}")
        return max(match, key=lambda t: (str(t.get("created-at") or ""), str(t.get("build") or "")))

    def check_gpu_quota(self, family: str, gpus: int = 1) -> None:
        """Raise QuotaError unless `gpus` more GPUs of `family` fit in the organisation's quota."""
        try:
            quota: JSON = self._call("get_quota", entity=family)
        except NotFoundError:
            log.info("exoscale has no quota entry for %s; not checking", family)
            return
        limit, usage = int(quota.get("limit", -1)), int(quota.get("usage", 0))
        if limit >= 0 and usage + gpus > limit:
            raise QuotaError(
                f"GPU quota exhausted for family {family} in {self.zone}: limit {limit}, in use {usage}, "
                f"needed {gpus} more — request a quota increase in the Exoscale portal",
                family=family,
                zone=self.zone,
                limit=limit,
                usage=usage,
            )
