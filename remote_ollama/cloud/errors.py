"""Cloud errors the lifecycle shells act on: a short CamelCase `reason` for conditions, and `retryable`.

The operator maps `retryable` to a temporary error (try again later) and anything else to a
permanent one that needs a human (wrong credentials, no quota, unknown template).
"""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error the adapter raises; never carries credentials in its message."""

    reason: str = "CloudError"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retryable: bool | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        if reason is not None:
            self.reason = reason
        if retryable is not None:
            self.retryable = retryable


class CredentialsError(CloudError):
    """The API key/secret pair was refused (403); retrying cannot help."""

    reason = "InvalidCredentials"


class QuotaError(CloudError):
    """The organisation may not run (more of) this instance type in this zone."""

    reason = "QuotaExceeded"

    def __init__(
        self,
        message: str,
        *,
        family: str,
        zone: str,
        limit: int | None = None,
        usage: int | None = None,
        reason: str | None = None,
    ):
        super().__init__(message, reason=reason)
        self.family = family
        self.zone = zone
        self.limit = limit
        self.usage = usage


class NotAuthorizedError(QuotaError):
    """The instance type exists but the organisation is not authorised to use it (`authorized: false`)."""

    reason = "InstanceTypeNotAuthorized"


class CapacityError(CloudError):
    """The zone has no free capacity for this type right now; later may work."""

    reason = "InsufficientCapacity"
    retryable = True


class NotFoundError(CloudError):
    reason = "NotFound"


class TemplateNotFound(NotFoundError):
    reason = "TemplateNotFound"


class InstanceTypeNotFound(NotFoundError):
    reason = "InstanceTypeNotFound"


class CloudUnavailable(CloudError):
    """5xx, 429, timeouts or connection errors that outlasted every retry."""

    reason = "CloudUnavailable"
    retryable = True


class OperationTimeout(CloudError):
    """An operation was still pending at its deadline; the cloud may still finish it."""

    reason = "OperationTimeout"
    retryable = True


class OperationFailed(CloudError):
    """An asynchronous operation ended in `failure` or `timeout`."""

    reason = "OperationFailed"
