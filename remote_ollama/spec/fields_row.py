"""One row of the field table (`Field`) and the constants its rows share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ZONES = ("at-vie-1", "at-vie-2", "bg-sof-1", "ch-dk-2", "ch-gva-2", "de-fra-1", "de-muc-1", "hr-zag-1")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Field:
    """One node of the spec. `path` is under `spec`, `[]` marks list items, `{}` map values; type
    "duration" is the CRD's int-or-string. `required`: its object requires it; `schema`: CRD keys no
    column covers (CEL rules, format); `doc`: the CRD's description. Standalone (env.py): `env` is the
    variable (the embedded keyword is its name by `env.keyword`), `env_default` its default where it
    differs from the CR's (EXOSCALE_DISK_SIZE 50, spec.diskSize 100), `env_doc` its `--help` line,
    `env_zero_unsets` makes 0 mean "not set" (0 = never)."""

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
    env_doc: str = ""
    env_zero_unsets: bool = False
    required: bool = False
    schema: dict[str, Any] | None = None
    doc: str = ""


DEFAULT_MAX_HELD_BODY = 64 * 1024 * 1024
STOP_AFTER = "30m"  # the CR's default and standalone's (where idle.destroyAfter defaults to never)
# spec.replicas.routing (proxy/routing.py): the first is the default
ROUTINGS = ("leastOutstanding", "prefixAffinity")
MAX_REPLICAS = 64  # VMs behind one endpoint, at most
DEFAULT_TARGET_IN_FLIGHT = 4  # requests in flight per VM when ollama.env sets no OLLAMA_NUM_PARALLEL
