"""The field table: one row per node of a RemoteOllama spec. Every reader follows it: the CRD
(`python -m remote_ollama.kube.crd --write`), the CR parser (rows.py, parse.py), standalone's
variables and the embedded keywords (env.py), the dataclass defaults (sections.py, model.py). Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .patterns import (
    CIDR_PATTERN,
    CLOCK_PATTERN,
    DNS1123_SUBDOMAIN,
    INSTANCE_TYPE_PATTERN,
    KEEP_ALIVE_PATTERN,
    MODEL_PATTERN,
    OLLAMA_ENV_VALUE_PATTERN,
    OLLAMA_IMAGE_PATTERN,
)

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
_STOP_AFTER = "30m"  # the CR's default and standalone's (where idle.destroyAfter defaults to never)
MAX_REPLICAS = 64  # VMs behind one endpoint, at most
DEFAULT_TARGET_IN_FLIGHT = 4  # requests in flight per VM when ollama.env sets no OLLAMA_NUM_PARALLEL

FIELDS: tuple[Field, ...] = (
    Field(
        "credentialsSecretRef",
        "object",
        required=True,
        doc="The Secret in the same namespace holding the Exoscale API credentials under the keys api-key and api-secret.",
    ),
    Field(
        "credentialsSecretRef.name",
        "string",
        pattern=DNS1123_SUBDOMAIN,
        min_length=1,
        max_length=253,
        required=True,
        doc="Name of the Secret with the keys api-key and api-secret.",
    ),
    Field(
        "zone",
        "string",
        "at-vie-2",
        enum=ZONES,
        env="EXOSCALE_ZONE",
        env_doc="zone, e.g. at-vie-2, ch-gva-2, de-fra-1 (default at-vie-2)",
        doc="The Exoscale zone in which the VM runs.",
    ),
    Field(
        "instanceType",
        "string",
        "gpua5000.small",
        pattern=INSTANCE_TYPE_PATTERN,
        env="EXOSCALE_INSTANCE_TYPE",
        env_doc="<family>.<size> (default gpua5000.small)",
        doc="The Exoscale instance type as <family>.<size>, looked up in the zone (e.g. gpua5000.small, gpua30.medium).",
    ),
    Field(
        "template",
        "string",
        "Linux Ubuntu 22.04 LTS 64-bit",
        min_length=1,
        env="EXOSCALE_TEMPLATE",
        env_doc="OS template name",
        doc="Name of the Exoscale template (OS image) the VM boots.",
    ),
    Field(
        "diskSize",
        "integer",
        100,
        minimum=10,
        maximum=51200,
        env="EXOSCALE_DISK_SIZE",
        env_doc="root disk, GiB (default 50)",
        env_default=50,
        doc="Size of the VM's root disk in GiB; models are stored there.",
    ),
    Field(
        "models",
        "array",
        ["granite3.1-dense:8b"],
        min_items=1,
        max_items=64,
        env="OLLAMA_MODEL",
        env_doc="model(s) pulled at boot, comma-separated",
        doc="Ollama models pulled at boot; the endpoint is Ready only when all are present.",
    ),
    Field(
        "models[]",
        "string",
        pattern=MODEL_PATTERN,
        doc="An Ollama model name with an optional tag, e.g. granite3.1-dense:8b.",
    ),
    Field(
        "idle",
        "object",
        {"stopAfter": _STOP_AFTER, "destroyAfter": "24h"},
        schema={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.destroyAfter) || has(self.stopAfter)",
                    "message": "destroyAfter requires stopAfter",
                    "fieldPath": ".destroyAfter",
                }
            ]
        },
        doc="Scale to zero. Without requests for stopAfter the VM is stopped (its disk is kept); stopped for destroyAfter it is destroyed. Omit stopAfter to never stop for idleness.",
    ),
    Field(
        "idle.stopAfter",
        "duration",
        minimum=1,
        env="EXOSCALE_IDLE_TIMEOUT",
        env_doc="stop the VM after this long without requests (1800, 30m; 0: never)",
        env_zero_unsets=True,
        env_default=_STOP_AFTER,
        doc="Idle time before the VM is stopped: seconds or a duration such as 30m, 1h30m, 90s.",
    ),
    Field(
        "idle.destroyAfter",
        "duration",
        minimum=0,
        env="REMOTE_OLLAMA_DESTROY_AFTER",
        env_doc="destroy a VM stopped this long (0: destroy instead of stopping)",
        doc="Time a stopped VM is kept before it is destroyed: seconds or a duration such as 24h; 0 destroys instead of stopping.",
    ),
    Field("wake", "object", {}, doc="How requests that find the VM down are held while it wakes."),
    Field(
        "wake.holdTimeout",
        "duration",
        "10m",
        minimum=0,
        env="REMOTE_OLLAMA_HOLD_TIMEOUT",
        env_doc="how long a request waits for the VM to wake (default 10m)",
        doc="How long a request waits for the VM to wake before it fails with 503: seconds or a duration such as 10m.",
    ),
    Field(
        "wake.maxHeldRequests",
        "integer",
        256,
        minimum=0,
        maximum=100000,
        doc="Most requests held at once while waking; more are refused with 503.",
    ),
    Field(
        "wake.maxHeldBodyBytes",
        "integer",
        DEFAULT_MAX_HELD_BODY,
        minimum=0,
        maximum=4 * 1024**3,
        env="REMOTE_OLLAMA_MAX_BODY",
        env_doc="most bytes of one request body held while the VM wakes",
        schema={"format": "int64"},
        doc="Largest request body, in bytes, kept in memory while a request is held for a wake (64 MiB by default); a larger one is refused with 413.",
    ),
    Field(
        "wake.progress",
        "boolean",
        False,
        env="REMOTE_OLLAMA_WAKE_PROGRESS",
        env_doc="1: held streaming generate/chat get wake progress chunks",
        doc="True sends waking-progress chunks on every held streaming generate and chat request (as the request header X-Remote-Ollama-Progress does for one request).",
    ),
    Field(
        "replicas",
        "object",
        {},
        schema={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "message": "min must not exceed max",
                    "fieldPath": ".min",
                }
            ]
        },
        doc="How many VMs serve the endpoint. Each replica is its own VM with the idle policy above (stopped when idle, woken on demand); the proxy routes to the least busy Ready one. The desired count follows the requests in flight (in-flight / targetInFlight, rounded up), never below min nor above max. max 1 is one VM. kubectl scale sets min.",
    ),
    Field(
        "replicas.min",
        "integer",
        0,
        minimum=0,
        maximum=MAX_REPLICAS,
        doc="Replicas kept running whatever the load (kubectl scale and an HPA or KEDA set this); 0 lets every VM scale to zero when idle.",
    ),
    Field(
        "replicas.max",
        "integer",
        1,
        minimum=1,
        maximum=MAX_REPLICAS,
        env="REMOTE_OLLAMA_MAX_REPLICAS",
        env_doc="the most VMs behind the endpoint, by load (default 1: one VM)",
        doc="The most VMs run at once; 1 is one VM (no scale-out).",
    ),
    Field(  # no default: OLLAMA_NUM_PARALLEL from ollama.env when set, else DEFAULT_TARGET_IN_FLIGHT
        "replicas.targetInFlight",
        "integer",
        minimum=1,
        maximum=1024,
        env="REMOTE_OLLAMA_TARGET_IN_FLIGHT",
        env_doc="requests in flight one VM carries (default OLLAMA_NUM_PARALLEL, 4)",
        doc="Requests in flight one replica is meant to carry; more start another replica. Unset: OLLAMA_NUM_PARALLEL from spec.ollama.env when set, else 4.",
    ),
    Field(
        "replicas.scaleDownAfter",
        "duration",
        "5m",
        minimum=0,
        env="REMOTE_OLLAMA_SCALE_DOWN_AFTER",
        env_doc="load below one VM fewer this long stops one (default 5m)",
        doc="How long the load must stay below what one replica fewer carries before one replica is stopped (one at a time, never one with a request in flight): seconds or a duration such as 5m.",
    ),
    Field(
        "suspend",
        "boolean",
        False,
        doc="True scales to zero now and keeps it there; requests then fail fast.",
    ),
    Field(
        "allowedSourceCIDRs",
        "array",
        ["0.0.0.0/0"],
        min_items=1,
        max_items=64,
        doc="Source networks allowed to reach the VM's TLS port (11435).",
    ),
    Field(
        "allowedSourceCIDRs[]",
        "string",
        pattern=CIDR_PATTERN,
        doc="An IPv4 or IPv6 network in CIDR notation, e.g. 203.0.113.0/24.",
    ),
    Field(
        "activityInterval",
        "duration",
        minimum=1,
        doc="How often the proxy writes its last-activity annotation while busy (debounce): seconds or a duration such as 15s. Defaults to 15s.",
    ),
    Field(
        "budget",
        "object",
        doc="Caps on use. Past either cap the VM is scaled to zero, wakes are refused (requests get 503 with the reason) and the BudgetExceeded condition is True until the cap resets.",
    ),
    Field(
        "budget.maxRunningHoursPerDay",
        "number",
        minimum=0,
        maximum=24,
        doc="Most hours the VM may run per UTC day (counted while it holds a GPU).",
    ),
    Field(
        "budget.maxMonthlySpend",
        "number",
        minimum=0,
        doc="Most estimated spend per UTC month, in the currency of the operator's price table (status.cost.currency).",
    ),
    Field(
        "schedule",
        "array",
        max_items=32,
        doc="Keep-warm windows: inside one the VM is woken ahead of requests and never scaled to zero for idleness; outside them the idle policy applies.",
    ),
    Field(
        "schedule[]",
        "object",
        doc="A weekly wall-clock range in a time zone; an end at or before start runs past midnight.",
    ),
    Field(
        "schedule[].days",
        "array",
        list(DAYS),
        min_items=1,
        max_items=7,
        doc="Days on which the window opens.",
    ),
    Field("schedule[].days[]", "string", enum=DAYS, doc="A day of the week."),
    Field(
        "schedule[].start",
        "string",
        pattern=CLOCK_PATTERN,
        required=True,
        doc="Local time the window opens, HH:MM (e.g. 08:55).",
    ),
    Field(
        "schedule[].end",
        "string",
        pattern=CLOCK_PATTERN,
        required=True,
        doc="Local time the window closes, HH:MM (e.g. 18:00; 24:00 is midnight).",
    ),
    Field(
        "schedule[].timeZone",
        "string",
        "UTC",
        min_length=1,
        doc="IANA time zone of start and end, e.g. Europe/Zurich.",
    ),
    Field(
        "placements",
        "array",
        max_items=16,
        doc="Fallbacks, tried in order after zone and instanceType when creating or starting the VM fails for lack of capacity or quota (condition CapacityUnavailable, an Event names what was tried). The operator stays on the placement that worked.",
    ),
    Field("placements[]", "object", doc="A zone and an instance type to try."),
    Field("placements[].zone", "string", enum=ZONES, required=True, doc="The Exoscale zone."),
    Field(
        "placements[].instanceType",
        "string",
        pattern=INSTANCE_TYPE_PATTERN,
        doc="The instance type as <family>.<size>; defaults to spec.instanceType.",
    ),
    Field(
        "warmUp",
        "boolean",
        True,
        doc="Load models[0] into memory before declaring Ready, so the first held request does not also wait for the model to load (phase Starting, reason WarmingUp, until GET /api/ps lists it; given up after 5 minutes). Off when false or when keepAlive is 0.",
    ),
    Field(
        "keepAlive",
        "string",
        "30m",
        pattern=KEEP_ALIVE_PATTERN,
        doc="Ollama keep_alive for the warm-up load (how long the model stays loaded), e.g. 30m or -1.",
    ),
    Field(
        "clientAuth",
        "object",
        doc="Optional client authentication: when set, the proxy requires Authorization: Bearer with one of the keys in the referenced Secret (every data value is one accepted key).",
    ),
    Field(
        "clientAuth.secretRef",
        "object",
        required=True,
        doc="The Secret in the same namespace whose data values are the accepted keys.",
    ),
    Field(
        "clientAuth.secretRef.name",
        "string",
        pattern=DNS1123_SUBDOMAIN,
        min_length=1,
        max_length=253,
        required=True,
        doc="Name of the Secret holding the client keys.",
    ),
    Field(
        "modelManagement",
        "boolean",
        False,
        env="REMOTE_OLLAMA_MODEL_MANAGEMENT",
        env_doc="false refuses pull, push, create, copy, delete and blobs",
        env_default=True,
        doc="True lets clients manage models through the proxy (pull, push, create, copy, delete, blobs); false refuses those routes with 403.",
    ),
    Field(
        "networkPolicy",
        "object",
        {},
        doc="The NetworkPolicy the operator keeps in front of the proxy pods (port 11434).",
    ),
    Field(
        "networkPolicy.enabled",
        "boolean",
        True,
        doc="False creates no NetworkPolicy (any pod that reaches the Service may use it).",
    ),
    Field(
        "networkPolicy.allowFrom",
        "array",
        max_items=64,
        doc="Who may reach the proxy, as NetworkPolicyPeer objects (podSelector, namespaceSelector, ipBlock); when omitted, only pods of the resource's own namespace.",
    ),
    Field(
        "networkPolicy.allowFrom[]",
        "object",
        schema={"x-kubernetes-preserve-unknown-fields": True},
        doc="A NetworkPolicyPeer (networking.k8s.io/v1).",
    ),
    Field("ollama", "object", {}, doc="The Ollama server on the VM."),
    Field(
        "ollama.image",
        "string",
        pattern=OLLAMA_IMAGE_PATTERN,
        min_length=1,
        max_length=512,
        env="OLLAMA_IMAGE",
        env_doc="the VM's Ollama image (changing it replaces the VM)",
        doc="The Ollama container image (repository:tag, optionally @sha256:digest); defaults to the image this operator version pins.",
    ),
    Field(
        "ollama.env",
        "object",
        max_properties=64,
        env="OLLAMA_ENV",
        env_doc="Ollama server settings for the VM, NAME=value comma-separated",
        doc='Extra environment of the Ollama server, e.g. OLLAMA_NUM_PARALLEL: "4". Keys must match ^OLLAMA_[A-Z0-9_]+$ (checked by the operator).',
    ),
    Field(
        "ollama.env{}",
        "string",
        pattern=OLLAMA_ENV_VALUE_PATTERN,
        max_length=1024,
        doc="A value without newline, quote, backslash, backquote, percent or dollar signs.",
    ),
    Field(
        "coldStart", "object", {}, doc="How a new VM (first start, or after a destroy) gets to Ready faster."
    ),
    Field(
        "coldStart.template",
        "string",
        "auto",
        enum=("auto", "off"),
        doc="auto: once a VM's setup succeeded, at its next stop its disk is snapshotted and promoted to a "
        "private template (named after the resource uid and the setup hash: driver, Ollama image, nginx "
        "config), and the next VM boots from it, skipping what is installed. Re-baked when the setup "
        "changes, deleted with the resource; only for diskSize up to 100 (Exoscale's template limit). "
        "off: always a stock template.",
    ),
)

FIELD = {f.path: f for f in FIELDS}


def default(path: str) -> Any:
    """The CR default of `path` (as the CRD stores it)."""
    return FIELD[path].default
