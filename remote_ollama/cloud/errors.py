"""Cloud errors the lifecycle shells act on: a `Reason` of the status vocabulary, and `retryable`.

`retryable` is `not reason.permanent`: the operator makes a retryable error a temporary one (try again
later) and anything else a permanent one that needs a human (wrong credentials, no quota, unknown
template), and the proxy refuses requests at once on the same reasons.
"""

from __future__ import annotations

from remote_ollama.spec.vocabulary import Reason


class CloudError(Exception):
    """Base of every error the adapter raises; never carries credentials in its message."""

    reason: Reason = Reason.CLOUD_ERROR

    def __init_subclass__(cls, reason: Reason | None = None, **kwargs: object) -> None:
        """`class X(CloudError, reason=Reason.Y)`: the reason every X carries (unless given one)."""
        super().__init_subclass__(**kwargs)
        if reason is not None:
            cls.reason = reason

    def __init__(self, message: str, *, reason: Reason | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        if reason is not None:
            self.reason = reason

    @property
    def retryable(self) -> bool:
        return not self.reason.permanent


class CredentialsError(CloudError, reason=Reason.INVALID_CREDENTIALS):
    """The API key/secret pair was refused (403); retrying cannot help."""


class QuotaError(CloudError, reason=Reason.QUOTA_EXCEEDED):
    """The organisation may not run (more of) this instance type in this zone."""

    def __init__(
        self,
        message: str,
        *,
        family: str,
        zone: str,
        limit: int | None = None,
        usage: int | None = None,
        reason: Reason | None = None,
    ):
        super().__init__(message, reason=reason)
        self.family = family
        self.zone = zone
        self.limit = limit
        self.usage = usage


class NotAuthorizedError(QuotaError, reason=Reason.INSTANCE_TYPE_NOT_AUTHORIZED):
    """The instance type exists but the organisation is not authorised to use it (`authorized: false`)."""


class CapacityError(CloudError, reason=Reason.INSUFFICIENT_CAPACITY):
    """The zone has no free capacity for this type right now; later may work."""


class NotFoundError(CloudError, reason=Reason.NOT_FOUND):
    """The API answered 404: the object does not exist (any more)."""


class TemplateNotFound(NotFoundError, reason=Reason.TEMPLATE_NOT_FOUND):
    """No template of that name or id in the zone."""


class InstanceTypeNotFound(NotFoundError, reason=Reason.INSTANCE_TYPE_NOT_FOUND):
    """No instance type of that name in the zone."""


class CloudUnavailable(CloudError, reason=Reason.CLOUD_UNAVAILABLE):
    """5xx, 429, timeouts or connection errors that outlasted every retry."""


class OperationTimeout(CloudError, reason=Reason.OPERATION_TIMEOUT):
    """An operation was still pending at its deadline; the cloud may still finish it."""


class OperationFailed(CloudError, reason=Reason.OPERATION_FAILED):
    """An asynchronous operation ended in `failure` or `timeout`."""
