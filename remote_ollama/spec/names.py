"""Names (API group, annotations, labels, ports) that the operator, the proxy, standalone mode and
the tests share. Pure: no I/O library is imported here."""

from __future__ import annotations

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
LABEL_REPLICA = "remote-ollama-replica"  # the replica's index, on a replicated endpoint's VMs (issue 19)
# on a VM made for the model volume (spec.coldStart.modelVolume): the volume's id, attached to it
LABEL_VOLUME = "remote-ollama-volume"
STANDALONE_CLUSTER = "standalone"

VM_PORT = 11435
PROXY_PORT = 11434
# The VM's certificate is issued for this fixed name (its IP is unknown before create);
# the proxy connects to the IP and verifies the certificate against this name (SNI).
VM_TLS_SERVER_NAME = "vm.remote-ollama.internal"
API_KEY_HEADER = "X-Ollama-Key"
# A private template baked from a set-up VM's disk (spec.coldStart) has no labels: its name says whose
# it is (cluster and owner uid) and which setup it holds (vm.cloudinit.setup_hash).
TEMPLATE_PREFIX = "remote-ollama-tpl"
SETUP_HASH_LENGTH = 12  # hex characters of the setup hash at the end of a template's name
# Exoscale templates are 10-100 GB (virtual size): a bigger disk cannot be baked.
MAX_TEMPLATE_GB = 100


def template_prefix(cluster: str, owner_uid: str) -> str:
    """Every template of one resource's VMs starts with this (then the setup hash)."""
    return f"{TEMPLATE_PREFIX}-{cluster}-{owner_uid}-"


def template_name(cluster: str, owner_uid: str, setup_hash: str) -> str:
    return f"{template_prefix(cluster, owner_uid)}{setup_hash}"


def owner_in_name(name: str, prefix: str, suffix_length: int = 0) -> str | None:
    """The owner uid in a name made by security_group_name or template_name (the cluster's prefix
    `remote-ollama-<cluster>-` or `remote-ollama-tpl-<cluster>-`, then the uid, then for a template
    `-<setup hash>` of `suffix_length`); None for a name of another shape."""
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    owner = rest[: -suffix_length - 1] if suffix_length else rest
    return owner or None


# Where the VM's nginx serves its setup status document (behind the same mutual TLS), before Ollama is up.
SETUP_STATUS_PATH = "/remote-ollama/setup"


def security_group_name(cluster: str, owner_uid: str) -> str:
    """Unique across namespaces, clusters and standalone users sharing one Exoscale organisation."""
    return f"remote-ollama-{cluster}-{owner_uid}"


def legacy_security_group_name(namespace: str, name: str) -> str:
    """The older name (`team-a/llm` and `team/a-llm` collided); still used by a VM that
    was created with it, because that VM (labelled with the owner uid) proves the group is ours."""
    return f"remote-ollama-{namespace}-{name}"


def secret_name(name: str) -> str:
    """The proxy's Secret: the CA and the client certificate and key (what the proxy uses)."""
    return f"{name}-remote-ollama"


def vm_secret_name(name: str) -> str:
    """The operator's own Secret: the VM credentials and the record of its instance (which the
    proxy's Role does not name)."""
    return f"{name}-remote-ollama-vm"


# The load signal of a replicated endpoint (issue 19): each proxy pod keeps a coordination.k8s.io
# Lease `<resource>-proxy-<pod>` carrying its requests in flight per replica and its held requests.
ANN_SIGNAL_IN_FLIGHT = "remoteollama.dev/in-flight-by-replica"  # JSON {"<index>": count}
ANN_SIGNAL_HELD = "remoteollama.dev/held"  # requests held for want of a Ready replica with room
ANN_SIGNAL_LAST_ACTIVITY = "remoteollama.dev/last-activity-by-replica"  # JSON {"<index>": RFC 3339}
SIGNAL_COMPONENT = "proxy-signal"  # the Leases' app.kubernetes.io/component label


def signal_lease_name(resource: str, pod: str) -> str:
    return f"{resource}-proxy-{pod}"[:253]


def replica_secret_suffix(index: int) -> str:
    """Replica 0 keeps the resource's two Secrets (its VM is the one VM of `max: 1`); replica i>0
    has its own pair, `<secret>-<i>`: its own credentials and the record of its instance."""
    return f"-{index}" if index else ""
