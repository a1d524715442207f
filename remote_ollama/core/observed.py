"""What the cloud says about an instance: the cloud adapter's output and the lifecycle's input (pure,
so `cloud/` and `lifecycle` share it without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Exoscale instance states, grouped by what the lifecycle does with them.
TRANSITIONAL = {"starting", "stopping", "migrating"}
GONE = {"destroying", "destroyed", "expunging"}


@dataclass(frozen=True)
class ObservedInstance:
    """What the cloud says about our instance (adapter output, lifecycle input)."""

    id: str
    state: str
    public_ip: str | None = None
    zone: str = ""
    instance_type: str = ""
    template_id: str = ""
    disk_size: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
