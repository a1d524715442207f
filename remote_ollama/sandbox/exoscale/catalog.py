"""The simulator's fixed catalogue: zones, public templates and instance types.

Ids are stable (uuid5 of the name) so a test can hard-code none of them and still get the same
answer from every run; zones per type vary on purpose, as they do in the real cloud.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from remote_ollama.spec.fields_row import ZONES

_NS = uuid.UUID("6f1c1f0e-5d3b-4d1e-9a51-2b9c1d0e7a11")


def stable_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}/{name}"))


@dataclass
class TemplateEntry:
    name: str
    family: str
    version: str
    default_user: str = "ubuntu"
    zones: tuple[str, ...] = ZONES

    @property
    def id(self) -> str:
        return stable_id("template", self.name)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": f"{self.name} (simulated)",
            "family": self.family,
            "version": self.version,
            "build": "2025-01-01-sim",
            "default-user": self.default_user,
            "boot-mode": "uefi",
            "password-enabled": False,
            "ssh-key-enabled": True,
            "visibility": "public",
            "maintainer": "Exoscale",
            "size": 10 * 1024**3,
            "zones": list(self.zones),
            "created-at": "2025-01-01T00:00:00Z",
        }


@dataclass
class InstanceTypeEntry:
    family: str
    size: str
    cpus: int
    memory_gib: int
    gpus: int = 0
    zones: tuple[str, ...] = ZONES
    authorized: bool = True

    @property
    def name(self) -> str:
        return f"{self.family}.{self.size}"

    @property
    def id(self) -> str:
        return stable_id("instance-type", self.name)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "family": self.family,
            "size": self.size,
            "cpus": self.cpus,
            "memory": self.memory_gib * 1024**3,
            "authorized": self.authorized,
            "zones": list(self.zones),
        }
        if self.gpus:
            out["gpus"] = self.gpus
        return out


_A5000_ZONES = ("at-vie-2", "de-fra-1", "ch-gva-2")
_3080_ZONES = ("at-vie-2", "ch-gva-2", "de-muc-1")
_GPU2_ZONES = ("ch-gva-2", "de-fra-1")


def default_templates() -> list[TemplateEntry]:
    return [
        TemplateEntry("Linux Ubuntu 22.04 LTS 64-bit", "ubuntu", "22.04"),
        TemplateEntry("Linux Ubuntu 24.04 LTS 64-bit", "ubuntu", "24.04"),
        TemplateEntry("Linux Debian 12 (Bookworm) 64-bit", "debian", "12", default_user="debian"),
        TemplateEntry("Linux Rocky 9 64-bit", "rocky", "9", default_user="rocky"),
    ]


def default_instance_types() -> list[InstanceTypeEntry]:
    return [
        InstanceTypeEntry("standard", "micro", 1, 1),
        InstanceTypeEntry("standard", "small", 2, 2),
        InstanceTypeEntry("standard", "medium", 2, 4),
        InstanceTypeEntry("standard", "large", 4, 8),
        InstanceTypeEntry("gpua5000", "small", 8, 56, gpus=1, zones=_A5000_ZONES),
        InstanceTypeEntry("gpua5000", "medium", 16, 112, gpus=2, zones=_A5000_ZONES),
        InstanceTypeEntry("gpua5000", "large", 32, 224, gpus=4, zones=_A5000_ZONES),
        InstanceTypeEntry("gpu3080ti", "small", 12, 56, gpus=1, zones=_3080_ZONES),
        InstanceTypeEntry("gpu3080ti", "medium", 24, 112, gpus=2, zones=_3080_ZONES),
        InstanceTypeEntry("gpu2", "small", 4, 56, gpus=1, zones=_GPU2_ZONES),
        InstanceTypeEntry("gpu2", "medium", 8, 90, gpus=2, zones=_GPU2_ZONES),
        InstanceTypeEntry("gpu3", "small", 12, 56, gpus=1, zones=("de-fra-1",)),
    ]


def zone_entries(url: str, simulated: list[str]) -> list[dict[str, Any]]:
    """Every zone; a simulated one points at its own base URL (`url` with `{zone}` filled in),
    the others at the real cloud."""
    out = []
    for name in ZONES:
        api = url.replace("{zone}", name) if name in simulated else f"https://api-{name}.exoscale.com/v2"
        out.append({"name": name, "api-endpoint": api, "sos-endpoint": f"https://sos-{name}.exo.io"})
    return out


@dataclass
class Catalog:
    templates: list[TemplateEntry] = field(default_factory=default_templates)
    instance_types: list[InstanceTypeEntry] = field(default_factory=default_instance_types)

    def template(self, template_id: str) -> TemplateEntry | None:
        return next((t for t in self.templates if t.id == template_id), None)

    def instance_type(self, type_id: str) -> InstanceTypeEntry | None:
        return next((t for t in self.instance_types if t.id == type_id), None)

    def instance_type_by_name(self, name: str) -> InstanceTypeEntry | None:
        return next((t for t in self.instance_types if t.name == name), None)

    def gpu_families(self) -> list[str]:
        return sorted({t.family for t in self.instance_types if t.gpus})
