"""Names (API group, annotations, labels, ports) and the one home of the spec's public names.

Pure: no I/O library is imported here, so the operator, standalone mode and the tests all share
one definition of what a valid spec is. The model is `spec_model`, parsing `spec_parse`, the
sections `spec_sections`; their names are re-exported here, so `resource` is what callers import.
"""

from __future__ import annotations

from .spec_fields import ZONES as ZONES
from .spec_model import Spec as Spec
from .spec_model import SpecError as SpecError
from .spec_parse import parse_spec as parse_spec
from .spec_parse import spec_or_defaults as spec_or_defaults
from .spec_sections import (
    DEFAULT_ACTIVITY_INTERVAL as DEFAULT_ACTIVITY_INTERVAL,
)
from .spec_sections import (
    DEFAULT_DESTROY_AFTER as DEFAULT_DESTROY_AFTER,
)
from .spec_sections import (
    DEFAULT_DISK_SIZE as DEFAULT_DISK_SIZE,
)
from .spec_sections import (
    DEFAULT_HOLD_TIMEOUT as DEFAULT_HOLD_TIMEOUT,
)
from .spec_sections import (
    DEFAULT_INSTANCE_TYPE as DEFAULT_INSTANCE_TYPE,
)
from .spec_sections import (
    DEFAULT_MAX_HELD as DEFAULT_MAX_HELD,
)
from .spec_sections import (
    DEFAULT_MAX_HELD_BODY as DEFAULT_MAX_HELD_BODY,
)
from .spec_sections import (
    DEFAULT_MODEL as DEFAULT_MODEL,
)
from .spec_sections import (
    DEFAULT_STOP_AFTER as DEFAULT_STOP_AFTER,
)
from .spec_sections import (
    DEFAULT_TEMPLATE as DEFAULT_TEMPLATE,
)
from .spec_sections import (
    DEFAULT_ZONE as DEFAULT_ZONE,
)
from .spec_sections import (
    FAMILY_ALIASES as FAMILY_ALIASES,
)
from .spec_sections import (
    KNOWN_FAMILIES as KNOWN_FAMILIES,
)
from .spec_sections import (
    KNOWN_SIZES as KNOWN_SIZES,
)
from .spec_sections import (
    MAX_DISK as MAX_DISK,
)
from .spec_sections import (
    MAX_HELD as MAX_HELD,
)
from .spec_sections import (
    MAX_HELD_BODY as MAX_HELD_BODY,
)
from .spec_sections import (
    MAX_OLLAMA_ENV as MAX_OLLAMA_ENV,
)
from .spec_sections import (
    MIN_DISK as MIN_DISK,
)
from .spec_sections import (
    Budget as Budget,
)
from .spec_sections import (
    IdleMode as IdleMode,
)
from .spec_sections import (
    IdlePolicy as IdlePolicy,
)
from .spec_sections import (
    InstanceType as InstanceType,
)
from .spec_sections import (
    NetworkPolicySettings as NetworkPolicySettings,
)
from .spec_sections import (
    OllamaSettings as OllamaSettings,
)
from .spec_sections import (
    Placement as Placement,
)
from .spec_sections import (
    WakePolicy as WakePolicy,
)
from .spec_sections import (
    check_ollama_env as check_ollama_env,
)
from .spec_sections import (
    format_duration as format_duration,
)
from .spec_sections import (  # re-exported: the model's names are resource's
    parse_duration as parse_duration,
)
from .spec_sections import (
    parse_instance_type as parse_instance_type,
)
from .spec_sections import (
    parse_known_instance_type as parse_known_instance_type,
)
from .spec_sections import (
    parse_ollama_image as parse_ollama_image,
)

GROUP = "remoteollama.dev"
VERSION = "v1alpha1"
KIND = "RemoteOllama"
PLURAL = "remoteollamas"
SHORT_NAME = "rol"
FINALIZER = "remoteollama.dev/cleanup"

ANN_LAST_ACTIVITY = "remoteollama.dev/last-activity"
ANN_WAKE_REQUESTED = "remoteollama.dev/wake-requested"
# Requests the proxy has in flight, written with last-activity: the VM is never scaled to zero under one.
ANN_IN_FLIGHT = "remoteollama.dev/in-flight"
ANN_SLEEP_REQUESTED = "remoteollama.dev/sleep-requested"
# Set (to "true") on a resource being deleted whose cloud objects cannot be deleted (credentials
# revoked): the finalizer then lets go, with a Warning Event naming what may remain.
ANN_ABANDON_CLOUD_OBJECTS = "remoteollama.dev/abandon-cloud-objects"

LABEL_MANAGED_BY = "managed-by"
LABEL_MANAGED_BY_VALUE = "remote-ollama"
LABEL_OWNER = "remote-ollama-owner"
LABEL_CLUSTER = "remote-ollama-cluster"
# Hash of the fields whose change needs a new VM; lets an adopter tell a stale VM from a current one.
LABEL_SPEC_HASH = "remote-ollama-spec"
# A random token per create, recorded before the call: finds our instance after a crash before its
# id was recorded (a look-alike can copy it only from our instance, so it is always younger).
LABEL_CREATION = "remote-ollama-creation"
STANDALONE_CLUSTER = "standalone"

VM_PORT = 11435
PROXY_PORT = 11434
# The VM's certificate is issued for this fixed name (its IP is unknown before create);
# the proxy connects to the IP and verifies the certificate against this name (SNI).
VM_TLS_SERVER_NAME = "vm.remote-ollama.internal"
API_KEY_HEADER = "X-Ollama-Key"


def security_group_name(cluster: str, owner_uid: str) -> str:
    """Unique across namespaces, clusters and standalone users sharing one Exoscale organisation."""
    return f"remote-ollama-{cluster}-{owner_uid}"


def legacy_security_group_name(namespace: str, name: str) -> str:
    """The name before issue 14 (`team-a/llm` and `team/a-llm` collided); still used by a VM that
    was created with it, because that VM (labelled with the owner uid) proves the group is ours."""
    return f"remote-ollama-{namespace}-{name}"


def secret_name(name: str) -> str:
    """The proxy's Secret: the CA and the client certificate and key (what the proxy uses)."""
    return f"{name}-remote-ollama"


def vm_secret_name(name: str) -> str:
    """The operator's own Secret: the VM's server key too, and the record of its instance."""
    return f"{name}-remote-ollama-vm"
