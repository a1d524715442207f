"""The simulated cloud's objects (instances, security groups, snapshots, templates, operations) and
their API shapes; `state.py` holds them and runs their transitions."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from remote_ollama.sandbox.exoscale.catalog import InstanceTypeEntry

T = TypeVar("T")

GONE_STATES = ("destroying", "destroyed", "expunging")
GIB = 1024**3


def api_shape(obj: object, *names: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """`obj`'s attributes `names` in the API's spelling (`created_at` -> `created-at`), then those of
    `optional` that are set (not None or ""); dicts are copied so no answer aliases the state."""
    out: dict[str, Any] = {}
    for name in names + optional:
        value = getattr(obj, name)
        if name in optional and value in (None, ""):
            continue
        out[name.replace("_", "-")] = dict(value) if isinstance(value, dict) else value
    return out


class ApiError(Exception):
    """An error the API answers synchronously: HTTP status and the `message` the client sees."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Rule:
    id: str
    flow_direction: str
    protocol: str
    network: str | None = None
    start_port: int | None = None
    end_port: int | None = None
    description: str = ""

    def to_api(self) -> dict[str, Any]:
        set_only = ("network", "start_port", "end_port", "description")
        return api_shape(self, "id", "flow_direction", "protocol", optional=set_only)


@dataclass
class SecurityGroup:
    id: str
    name: str
    description: str = ""
    rules: list[Rule] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        rules = [r.to_api() for r in self.rules]
        return api_shape(self, "id", "name", optional=("description",)) | {"rules": rules}


@dataclass
class Instance:
    id: str
    name: str
    instance_type: InstanceTypeEntry
    template_id: str
    disk_size: int
    state: str
    created_at: str
    user_data: str | None = None
    # every user-data an update-instance replaced (oldest first): tests see what was scrubbed
    replaced_user_data: list[str] = field(default_factory=list, repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    security_group_ids: list[str] = field(default_factory=list)
    public_ip: str | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def to_api(self, *, summary: bool = False) -> dict[str, Any]:
        """`summary`: the shorter shape list-instances returns (no user-data, no disk-size)."""
        out = api_shape(self, "id", "name", "state", "created_at", "labels", optional=("public_ip",)) | {
            "instance-type": {"id": self.instance_type.id},
            "template": {"id": self.template_id},
            "security-groups": [{"id": sg} for sg in self.security_group_ids],
            "public-ip-assignment": "inet4" if self.public_ip else "none",
        }
        if summary:
            return out
        return out | api_shape(self, "disk_size", optional=("user_data",))


@dataclass
class Snapshot:
    """create-snapshot of an instance's root disk (dies with its instance)."""

    id: str
    name: str
    instance_id: str
    size: int  # GiB
    created_at: str
    state: str = "snapshotting"

    def to_api(self) -> dict[str, Any]:
        return api_shape(self, "id", "name", "created_at", "state", "size") | {
            "instance": {"id": self.instance_id}
        }


PRIVATE_TEMPLATE = {  # what every private template shows alike
    "family": "other",
    "boot-mode": "legacy",
    "password-enabled": False,
    "ssh-key-enabled": True,
    "visibility": "private",
}


@dataclass
class PrivateTemplate:
    """promote-snapshot-to-template: a private template (outlives the instance), 10-100 GB."""

    id: str
    name: str
    description: str
    size: int  # GiB (the API shows bytes)
    zone: str
    created_at: str
    default_user: str = "ubuntu"

    def to_api(self) -> dict[str, Any]:
        shown = api_shape(self, "id", "name", "description", "default_user", "created_at")
        return shown | PRIVATE_TEMPLATE | {"size": self.size * GIB, "zones": [self.zone]}


@dataclass
class Operation:
    id: str
    reference_id: str
    link: str
    command: str
    state: str = "pending"
    reason: str | None = None
    message: str | None = None

    def to_api(self) -> dict[str, Any]:
        reference = {"id": self.reference_id, "link": self.link, "command": self.command}
        return api_shape(self, "id", "state", optional=("reason", "message")) | {"reference": reference}


def found(got: T | None, what: str, ident: str) -> T:
    """`got` (looked up by `ident`), else the API's 404 naming `what`."""
    if got is None:
        raise ApiError(404, f"{what} {ident} not found")
    return got


def new_id() -> str:
    return str(uuid.uuid4())


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
