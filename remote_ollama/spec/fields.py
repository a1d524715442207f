"""The settings model's table: every field of a RemoteOllama spec with its default, type, enum,
pattern and bounds, and the standalone variable that sets it. The one place these live.

`parse.py` parses with these values, `local/settings.py` (standalone variables) takes its defaults and
bounds from here, and tests/test_spec_fields.py holds the CRD's openAPIV3Schema against this table
(every field, default, enum, pattern and bound), so the two cannot drift. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ZONES = ("at-vie-1", "at-vie-2", "bg-sof-1", "ch-dk-2", "ch-gva-2", "de-fra-1", "de-muc-1", "hr-zag-1")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Names that end up in an API URL path (Secret names): a DNS-1123 subdomain, as Kubernetes requires.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?h)?([0-9]+(\.[0-9]+)?m)?([0-9]+(\.[0-9]+)?s)?$|^[0-9]+$"
INSTANCE_TYPE_PATTERN = r"^[a-z0-9]+\.[a-z0-9]+(-[a-z0-9]+)*$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$"
KEEP_ALIVE_PATTERN = r"^-1$|^0$|^[0-9]+(\.[0-9]+)?(ms|s|m|h)$|^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
CLOCK_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
OLLAMA_IMAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*(@sha256:[a-f0-9]{64})?$"
OLLAMA_ENV_KEY_PATTERN = r"^OLLAMA_[A-Z0-9_]+$"
# Values are written into the VM's container arguments by cloud-init: nothing that quotes or expands.
OLLAMA_ENV_VALUE_PATTERN = "^[^\\n\\r\"'\\\\%$`]*$"
CIDR_PATTERN = (
    r"^(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    r"/([0-9]|[12][0-9]|3[0-2])|[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$"
)


@dataclass(frozen=True)
class Field:
    """One node of the spec. `path` is under `spec`, `[]` marks list items, `{}` map values.

    type "duration" is the CRD's int-or-string: seconds (`minimum` applies) or a text duration.
    `env` / `env_default`: the standalone variable, and its default where it differs from the CR's
    (documented, e.g. EXOSCALE_DISK_SIZE 50 against spec.diskSize 100).
    """

    path: str
    type: str
    default: Any = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    max_properties: int | None = None
    env: str | None = None
    env_default: Any = None


DEFAULT_MAX_HELD_BODY = 64 * 1024 * 1024

FIELDS: tuple[Field, ...] = (
    Field("credentialsSecretRef", "object"),
    Field("credentialsSecretRef.name", "string", pattern=DNS1123_SUBDOMAIN, min_length=1, max_length=253),
    Field("zone", "string", "at-vie-2", enum=ZONES, env="EXOSCALE_ZONE"),
    Field(
        "instanceType",
        "string",
        "gpua5000.small",
        pattern=INSTANCE_TYPE_PATTERN,
        env="EXOSCALE_INSTANCE_TYPE",
    ),
    Field("template", "string", "Linux Ubuntu 22.04 LTS 64-bit", min_length=1, env="EXOSCALE_TEMPLATE"),
    Field("diskSize", "integer", 100, minimum=10, maximum=51200, env="EXOSCALE_DISK_SIZE", env_default=50),
    Field("models", "array", ["granite3.1-dense:8b"], min_items=1, max_items=64, env="OLLAMA_MODEL"),
    Field("models[]", "string", pattern=MODEL_PATTERN),
    Field("idle", "object", {"stopAfter": "30m", "destroyAfter": "24h"}),
    Field("idle.stopAfter", "duration", minimum=1, env="EXOSCALE_IDLE_TIMEOUT", env_default="1800"),
    Field("idle.destroyAfter", "duration", minimum=0, env="REMOTE_OLLAMA_DESTROY_AFTER"),
    Field("wake", "object", {}),
    Field("wake.holdTimeout", "duration", "10m", minimum=0, env="REMOTE_OLLAMA_HOLD_TIMEOUT"),
    Field("wake.maxHeldRequests", "integer", 256, minimum=0, maximum=100000),
    Field(
        "wake.maxHeldBodyBytes",
        "integer",
        DEFAULT_MAX_HELD_BODY,
        minimum=0,
        maximum=4 * 1024**3,
        env="REMOTE_OLLAMA_MAX_BODY",
    ),
    Field("wake.progress", "boolean", False, env="REMOTE_OLLAMA_WAKE_PROGRESS"),
    Field("suspend", "boolean", False),
    Field("allowedSourceCIDRs", "array", ["0.0.0.0/0"], min_items=1, max_items=64),
    Field("allowedSourceCIDRs[]", "string", pattern=CIDR_PATTERN),
    Field("activityInterval", "duration", minimum=1),
    Field("budget", "object"),
    Field("budget.maxRunningHoursPerDay", "number", minimum=0, maximum=24),
    Field("budget.maxMonthlySpend", "number", minimum=0),
    Field("schedule", "array", max_items=32),
    Field("schedule[]", "object"),
    Field("schedule[].days", "array", list(DAYS), min_items=1, max_items=7),
    Field("schedule[].days[]", "string", enum=DAYS),
    Field("schedule[].start", "string", pattern=CLOCK_PATTERN),
    Field("schedule[].end", "string", pattern=CLOCK_PATTERN),
    Field("schedule[].timeZone", "string", "UTC", min_length=1),
    Field("placements", "array", max_items=16),
    Field("placements[]", "object"),
    Field("placements[].zone", "string", enum=ZONES),
    Field("placements[].instanceType", "string", pattern=INSTANCE_TYPE_PATTERN),
    Field("warmUp", "boolean", True),
    Field("keepAlive", "string", "30m", pattern=KEEP_ALIVE_PATTERN),
    Field("clientAuth", "object"),
    Field("clientAuth.secretRef", "object"),
    Field("clientAuth.secretRef.name", "string", pattern=DNS1123_SUBDOMAIN, min_length=1, max_length=253),
    Field("modelManagement", "boolean", False, env="REMOTE_OLLAMA_MODEL_MANAGEMENT", env_default=True),
    Field("networkPolicy", "object", {}),
    Field("networkPolicy.enabled", "boolean", True),
    Field("networkPolicy.allowFrom", "array", max_items=64),
    Field("networkPolicy.allowFrom[]", "object"),
    Field("ollama", "object", {}),
    Field(
        "ollama.image",
        "string",
        pattern=OLLAMA_IMAGE_PATTERN,
        min_length=1,
        max_length=512,
        env="OLLAMA_IMAGE",
    ),
    Field("ollama.env", "object", max_properties=64, env="OLLAMA_ENV"),
    Field("ollama.env{}", "string", pattern=OLLAMA_ENV_VALUE_PATTERN, max_length=1024),
)

FIELD = {f.path: f for f in FIELDS}


def default(path: str) -> Any:
    """The CR default of `path` (as the CRD stores it)."""
    return FIELD[path].default


def env_default(path: str) -> Any:
    """The standalone default of `path`: its own where documented, else the CR's."""
    f = FIELD[path]
    return f.default if f.env_default is None else f.env_default
