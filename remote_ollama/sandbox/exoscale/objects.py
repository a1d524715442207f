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
        out: dict[str, Any] = {
            "id": self.id,
            "flow-direction": self.flow_direction,
            "protocol": self.protocol,
        }
        if self.network is not None:
            out["network"] = self.network
        if self.start_port is not None:
            out["start-port"] = self.start_port
        if self.end_port is not None:
            out["end-port"] = self.end_port
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class SecurityGroup:
    id: str
    name: str
    description: str = ""
    rules: list[Rule] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "rules": [r.to_api() for r in self.rules]}
        if self.description:
            out["description"] = self.description
        return out


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
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "created-at": self.created_at,
            "labels": dict(self.labels),
            "instance-type": {"id": self.instance_type.id},
            "template": {"id": self.template_id},
            "security-groups": [{"id": sg} for sg in self.security_group_ids],
            "public-ip-assignment": "inet4" if self.public_ip else "none",
        }
        if self.public_ip:
            out["public-ip"] = self.public_ip
        if not summary:
            out["disk-size"] = self.disk_size
            if self.user_data is not None:
                out["user-data"] = self.user_data
        return out


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
        return {
            "id": self.id,
            "name": self.name,
            "created-at": self.created_at,
            "state": self.state,
            "size": self.size,
            "instance": {"id": self.instance_id},
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
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "family": "other",
            "default-user": self.default_user,
            "boot-mode": "legacy",
            "password-enabled": False,
            "ssh-key-enabled": True,
            "visibility": "private",
            "size": self.size * 1024**3,
            "zones": [self.zone],
            "created-at": self.created_at,
        }


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
        out: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "reference": {"id": self.reference_id, "link": self.link, "command": self.command},
        }
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        return out


def found(got: T | None, what: str, ident: str) -> T:
    """`got` (looked up by `ident`), else the API's 404 naming `what`."""
    if got is None:
        raise ApiError(404, f"{what} {ident} not found")
    return got


def new_id() -> str:
    return str(uuid.uuid4())


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
