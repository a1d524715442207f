"""The status vocabulary: condition types and reasons shared by the operator, the proxy and standalone.

One enum, so the word the operator writes into a condition is the word the proxy reads, and whether
waiting can help is decided once: a `permanent` reason (one that retrying cannot fix without a person:
a bad spec, refused credentials, no quota) makes the proxy answer at once with the reason and no
Retry-After; a cloud error's `retryable` is `not reason.permanent`. Pure: no I/O library.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """The resource's phase (status.phase), as the operator writes it and the proxy reads it."""

    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    STARTING = "Starting"
    READY = "Ready"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    DELETING = "Deleting"
    FAILED = "Failed"


class ConditionType(StrEnum):
    READY = "Ready"
    INSTANCE_RUNNING = "InstanceRunning"
    OLLAMA_READY = "OllamaReady"
    MODELS_READY = "ModelsReady"
    MODEL_LOADED = "ModelLoaded"
    CREDENTIALS_VALID = "CredentialsValid"
    BUDGET_EXCEEDED = "BudgetExceeded"
    CAPACITY_UNAVAILABLE = "CapacityUnavailable"
    VM_SETUP = "VMSetup"  # what the VM's setup script says it is doing (present while it says so)
    MODEL_VOLUME = "ModelVolume"  # spec.coldStart.modelVolume: the models' volume, or why there is none


class Reason(StrEnum):
    """Why a condition or a cloud call is as it is (CamelCase, as metav1.Condition wants)."""

    # -- permanent: the VM cannot come up until a person changes something --------------------------
    INVALID_SPEC = "InvalidSpec"  # the spec does not parse (the CRD cannot check everything)
    POLICY_VIOLATION = "PolicyViolation"  # outside the platform team's policy (REMOTE_OLLAMA_POLICY)
    # the credentials Secret is missing or incomplete, or Exoscale refused the key pair
    INVALID_CREDENTIALS = "InvalidCredentials"
    QUOTA_EXCEEDED = "QuotaExceeded"  # e.g. GPU quota 0 in the organisation
    INSTANCE_TYPE_NOT_AUTHORIZED = "InstanceTypeNotAuthorized"
    INSTANCE_TYPE_NOT_IN_ZONE = "InstanceTypeNotInZone"
    INSTANCE_TYPE_NOT_FOUND = "InstanceTypeNotFound"
    TEMPLATE_NOT_FOUND = "TemplateNotFound"
    INVALID_ZONE = "InvalidZone"
    NOT_FOUND = "NotFound"
    BAD_REQUEST = "BadRequest"
    OPERATION_FAILED = "OperationFailed"
    CLOUD_ERROR = "CloudError"
    SECURITY_GROUP_CONFLICT = "SecurityGroupConflict"  # a same-named group that is not ours
    # a step of the VM's setup failed (its status document says which, with the last log lines):
    # requests are answered at once; the next wake request after it tries a new VM
    SETUP_FAILED = "SetupFailed"
    # -- transient: the cloud may do it later; waiting (with backoff) is the right answer ---------------
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    CLOUD_UNAVAILABLE = "CloudUnavailable"
    OPERATION_TIMEOUT = "OperationTimeout"
    OPERATION_INTERRUPTED = "OperationInterrupted"
    CONFLICT = "Conflict"
    SECURITY_GROUP_IN_USE = "SecurityGroupInUse"
    # -- refusals that end by themselves at a known time -----------------------------------------------
    BUDGET_EXCEEDED = "BudgetExceeded"
    # the namespace's estimated spend this month reached the platform policy's namespaceMonthlySpend:
    # every RemoteOllama of the namespace is stopped and refused until the month ends
    NAMESPACE_SPEND_CAP_REACHED = "NamespaceSpendCapReached"
    # -- the lifecycle: why the VM should run, or not (a decision's reason) ----------------------------
    BLOCKED = "Blocked"  # something outside the spec stops it (e.g. the credentials Secret)
    SUSPENDED = "Suspended"
    SLEEP_REQUESTED = "SleepRequested"
    IN_USE = "InUse"
    KEEP_WARM = "KeepWarm"
    IDLE = "Idle"
    MONITOR_OFF = "MonitorOff"
    ALWAYS_ON = "AlwaysOn"
    BOOTING = "Booting"
    NEW = "New"
    ACTIVE = "Active"
    # -- scale-out: why the desired number of replicas is what it is (core/replicas.py) -----------------
    SCALING_UP = "ScalingUp"  # the requests in flight need more replicas than run
    SCALING_DOWN = "ScalingDown"  # the load stayed below one replica fewer for scaleDownAfter
    SCALE_DOWN_PENDING = "ScaleDownPending"  # below target, waiting for scaleDownAfter or an idle replica
    AT_TARGET = "AtTarget"  # the replicas carry the load
    AT_MAX_REPLICAS = "AtMaxReplicas"  # more would help, spec.replicas.max (or the budget) forbids
    # -- the lifecycle: what the round is doing -----------------------------------------------------------
    CREATING = "Creating"
    WAITING_FOR_OLD_INSTANCE = "WaitingForOldInstance"
    STARTING = "Starting"
    WAITING_FOR_OLLAMA = "WaitingForOllama"
    PULLING_MODELS = "PullingModels"
    DESTROYING = "Destroying"
    SPEC_CHANGED = "SpecChanged"
    BAKING_TEMPLATE = "BakingTemplate"
    INSTANCE_ERROR = "InstanceError"
    STOPPED_TOO_LONG = "StoppedTooLong"
    INSTANCE_STARTING = "InstanceStarting"
    INSTANCE_STOPPING = "InstanceStopping"
    INSTANCE_MIGRATING = "InstanceMigrating"
    INSTANCE_TRANSITIONING = "InstanceTransitioning"  # a state this code does not know yet
    # -- condition reasons --------------------------------------------------------------------------------
    READY = "Ready"
    WARMING_UP = "WarmingUp"
    NOT_READY = "NotReady"
    RUNNING = "Running"
    NOT_RUNNING = "NotRunning"
    ANSWERING = "Answering"
    NOT_ANSWERING = "NotAnswering"
    ALL_PRESENT = "AllPresent"
    MISSING = "Missing"
    UNKNOWN = "Unknown"
    LOADED = "Loaded"
    LOADING = "Loading"
    WARM_UP_TIMED_OUT = "WarmUpTimedOut"
    WARM_UP_DISABLED = "WarmUpDisabled"
    NOT_LOADED = "NotLoaded"
    SETUP_IN_PROGRESS = "SetupInProgress"
    SETUP_DONE = "SetupDone"
    OVER_BUDGET = "OverBudget"
    WITHIN_BUDGET = "WithinBudget"
    VALID = "Valid"
    AVAILABLE = "Available"
    FELL_BACK = "FellBack"
    CAPACITY_UNAVAILABLE = "CapacityUnavailable"
    VOLUME_READY = "VolumeReady"
    # block storage refused here (zone or instance family): the models go to the VM's disk
    VOLUME_UNSUPPORTED = "VolumeUnsupported"
    # -- Events about the resource's objects --------------------------------------------------------------
    MALFORMED_ANNOTATION = "MalformedAnnotation"
    CLOUD_OBJECTS_ABANDONED = "CloudObjectsAbandoned"
    CLOUD_OBJECTS_UNKNOWN = "CloudObjectsUnknown"
    DELETED = "Deleted"
    ORPHAN_DELETED = "OrphanDeleted"
    INTERNAL_ERROR = "InternalError"  # a failure outside the cloud's words; its type is in the message
    # a child's name (Service, Deployment, Secret, ...) is taken by an object that is not ours: left as is
    NAME_CONFLICT = "NameConflict"
    # -- Warnings for what the operator refused to trust (no condition carries these) ---------------------
    # status (or a Secret edited by hand) names an instance not recorded as made for this resource,
    # or one without its owner and cluster labels: it is neither stopped, started, changed nor deleted
    FOREIGN_INSTANCE_IGNORED = "ForeignInstanceIgnored"
    # an instance carries this resource's labels but its id was never recorded (labels can be copied
    # by anyone in the organisation): it is not adopted, a new VM is made when one is needed
    UNRECORDED_INSTANCE_IGNORED = "UnrecordedInstanceIgnored"
    # a block-storage volume carries this resource's labels but its id was never recorded: it is
    # never attached (it would be Ollama's model directory), grown, detached nor deleted
    UNRECORDED_VOLUME_IGNORED = "UnrecordedVolumeIgnored"
    # status.placement (or a replica's) names another zone than the one the recorded instance is in:
    # the operator acts in the recorded zone and overwrites the status
    PLACEMENT_NOT_RECORDED = "PlacementNotRecorded"
    # the spec no longer names the zone the recorded instance is in: that VM is deleted (once nothing
    # is in flight to it) before one is made in the new placement
    PLACEMENT_DROPPED = "PlacementDropped"

    @property
    def permanent(self) -> bool:
        """True when no retry can help before a person acts (the proxy refuses without Retry-After)."""
        return self in PERMANENT

    @property
    def warning(self) -> bool:
        """An Event with this reason is a Warning (something failed or needs a look), else Normal."""
        return self in WARNING

    @classmethod
    def of(cls, value: object) -> Reason | None:
        """The member for a stored reason string, or None for reasons outside this vocabulary."""
        try:
            return cls(str(value))
        except ValueError:
            return None


PERMANENT = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.POLICY_VIOLATION,
        Reason.INVALID_CREDENTIALS,
        Reason.QUOTA_EXCEEDED,
        Reason.INSTANCE_TYPE_NOT_AUTHORIZED,
        Reason.INSTANCE_TYPE_NOT_IN_ZONE,
        Reason.INSTANCE_TYPE_NOT_FOUND,
        Reason.TEMPLATE_NOT_FOUND,
        Reason.INVALID_ZONE,
        Reason.NOT_FOUND,
        Reason.BAD_REQUEST,
        Reason.OPERATION_FAILED,
        Reason.CLOUD_ERROR,
        Reason.SECURITY_GROUP_CONFLICT,
        Reason.SETUP_FAILED,
    }
)
TRANSIENT = frozenset(
    {
        Reason.INSUFFICIENT_CAPACITY,
        Reason.CLOUD_UNAVAILABLE,
        Reason.OPERATION_TIMEOUT,
        Reason.OPERATION_INTERRUPTED,
        Reason.CONFLICT,
        Reason.SECURITY_GROUP_IN_USE,
    }
)
WARNING = (
    PERMANENT
    | TRANSIENT
    | {
        Reason.CAPACITY_UNAVAILABLE,
        Reason.MALFORMED_ANNOTATION,
        Reason.VOLUME_UNSUPPORTED,
        Reason.CLOUD_OBJECTS_ABANDONED,
        Reason.CLOUD_OBJECTS_UNKNOWN,
        Reason.INTERNAL_ERROR,
        Reason.NAME_CONFLICT,
        Reason.FOREIGN_INSTANCE_IGNORED,
        Reason.UNRECORDED_INSTANCE_IGNORED,
        Reason.UNRECORDED_VOLUME_IGNORED,
        Reason.PLACEMENT_NOT_RECORDED,
        Reason.NAMESPACE_SPEND_CAP_REACHED,
    }
)
# The reason of a VM in a transitional state (any other: INSTANCE_TRANSITIONING).
INSTANCE_IN = {
    "starting": Reason.INSTANCE_STARTING,
    "stopping": Reason.INSTANCE_STOPPING,
    "migrating": Reason.INSTANCE_MIGRATING,
}
