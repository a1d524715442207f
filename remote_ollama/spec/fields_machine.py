"""The field table's rows of the VM itself: credentials, zone, instance type, template, disk, models."""

from __future__ import annotations

from .fields_row import (
    ZONES,
    Field,
)
from .patterns import (
    DNS1123_SUBDOMAIN,
    INSTANCE_TYPE_PATTERN,
    MODEL_PATTERN,
)

MACHINE: tuple[Field, ...] = (
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
)
