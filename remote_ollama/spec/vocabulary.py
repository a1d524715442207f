"""The status vocabulary: condition types and reasons shared by the operator, the proxy and standalone.

One enum, so the word the operator writes into a condition is the word the proxy reads, and whether
waiting can help is decided once: a `permanent` reason (one that retrying cannot fix without a person:
a bad spec, refused credentials, no quota) makes the proxy answer at once with the reason and no
Retry-After; a cloud error's `retryable` is `not reason.permanent`. Pure: no I/O library.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    INSTANCE_RUNNING = "InstanceRunning"
    OLLAMA_READY = "OllamaReady"
    MODELS_READY = "ModelsReady"
    MODEL_LOADED = "ModelLoaded"
    CREDENTIALS_VALID = "CredentialsValid"
    BUDGET_EXCEEDED = "BudgetExceeded"
    CAPACITY_UNAVAILABLE = "CapacityUnavailable"


class Reason(StrEnum):
    """Why a condition or a cloud call is as it is (CamelCase, as metav1.Condition wants)."""

    # -- permanent: the VM cannot come up until a person changes something --------------------------
    INVALID_SPEC = "InvalidSpec"  # the spec does not parse (the CRD cannot check everything)
    CREDENTIALS_INVALID = "CredentialsInvalid"  # the credentials Secret is missing or incomplete
    INVALID_CREDENTIALS = "InvalidCredentials"  # Exoscale refused the key pair
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
    # -- transient: the cloud may do it later; waiting (with backoff) is the right answer ---------------
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    CLOUD_UNAVAILABLE = "CloudUnavailable"
    OPERATION_TIMEOUT = "OperationTimeout"
    OPERATION_INTERRUPTED = "OperationInterrupted"
    CONFLICT = "Conflict"
    SECURITY_GROUP_IN_USE = "SecurityGroupInUse"
    # -- refusals that end by themselves at a known time -----------------------------------------------
    BUDGET_EXCEEDED = "BudgetExceeded"

    @property
    def permanent(self) -> bool:
        """True when no retry can help before a person acts (the proxy refuses without Retry-After)."""
        return self in PERMANENT

    @classmethod
    def of(cls, value: object) -> Reason | None:
        """The member for a stored reason string, or None for reasons outside this vocabulary."""
        try:
            return cls(str(value))
        except ValueError:
            return None


class EventReason(StrEnum):
    """Warning Events for what the operator refused to trust (no condition carries these)."""

    # status (or a Secret edited by hand) names an instance not recorded as made for this resource,
    # or one without its owner and cluster labels: it is neither stopped, started, changed nor deleted
    FOREIGN_INSTANCE_IGNORED = "ForeignInstanceIgnored"
    # an instance carries this resource's labels but its id was never recorded (labels can be copied
    # by anyone in the organisation): it is not adopted, a new VM is made when one is needed
    UNRECORDED_INSTANCE_IGNORED = "UnrecordedInstanceIgnored"


PERMANENT = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.CREDENTIALS_INVALID,
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
    }
)
