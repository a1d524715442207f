"""The field table's rows of who reaches it and what it runs: client auth, model management, the
network policy, Ollama's image and environment, the cold start."""

from __future__ import annotations

from .fields_row import (
    Field,
)
from .patterns import (
    DNS1123_SUBDOMAIN,
    OLLAMA_ENV_VALUE_PATTERN,
    OLLAMA_IMAGE_PATTERN,
)

ACCESS: tuple[Field, ...] = (
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
    Field(
        "coldStart.modelVolume",
        "object",
        {},
        doc="Ollama's model directory on an Exoscale block-storage volume that outlives the VM: created at "
        "the first create (named after the resource, labelled with the cluster and owner uid), attached to "
        "the VM (replica 0 only: a volume attaches to one instance at a time), kept when the VM is "
        "destroyed, attached again to the next one (which pulls only what is missing), deleted with the "
        "resource. Where block storage is not offered (zone or instance family), the ModelVolume "
        "condition says so and models are pulled to the VM's disk.",
    ),
    Field(
        "coldStart.modelVolume.enabled",
        "boolean",
        False,
        env="REMOTE_OLLAMA_MODEL_VOLUME",
        env_doc="1: models on a block-storage volume that survives a destroy (billed as storage)",
        doc="Off by default: a volume is billed per GB and month for as long as the resource exists, VM "
        "or not (status.cost shows it), and a baked template already carries the models pulled before it.",
    ),
    Field(
        "coldStart.modelVolume.size",
        "integer",
        100,
        minimum=10,
        maximum=10240,
        env="REMOTE_OLLAMA_MODEL_VOLUME_SIZE",
        env_doc="its size in GiB, 10 to 10240 (default 100)",
        doc="The volume's size in GiB (Exoscale: 10 GiB to 10 TiB). A volume can only grow: a larger size "
        "is applied to the existing volume while it is detached; a smaller one leaves it as it is "
        "(Exoscale volumes only grow).",
    ),
)
