"""Talking to the Exoscale API reliably: request timeouts, retries with jittered backoff, error mapping.

The python-exoscale client has neither timeouts nor retries. This module adds both (retrying 5xx,
429 and connection failures, never another 4xx), turns SDK exceptions into `errors.CloudError`
subclasses a person can act on, and waits on async operations with a deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from exoscale.api.exceptions import (
    ExoscaleAPIAuthException,
    ExoscaleAPIClientException,
    ExoscaleAPIException,
    ExoscaleAPIServerException,
)
from exoscale.api.v2 import Client

from remote_ollama.cloud.errors import (
    CapacityError,
    CloudError,
    CloudUnavailable,
    CredentialsError,
    NotAuthorizedError,
    NotFoundError,
    OperationFailed,
    OperationTimeout,
    QuotaError,
)
from remote_ollama.core.backoff import backoff
from remote_ollama.spec.vocabulary import Reason

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MAX_BACKOFF = 30.0


class _TimeoutSession(requests.Session):
    """A requests Session with a default timeout (the SDK passes none, so a dead peer hangs forever)."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def _api_message(exc: ExoscaleAPIException) -> str:
    """The `message` of an API error body, or its text."""
    resp = getattr(exc, "response", None)
    if resp is None:
        return str(exc)
    try:
        body = resp.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return (resp.text or str(exc))[:300]


def _status(exc: ExoscaleAPIException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None)


def _retry_after(exc: Exception) -> float | None:
    resp = getattr(exc, "response", None)
    value = resp.headers.get("Retry-After") if resp is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _host(exc: requests.RequestException, zone: str) -> str:
    """The API host a request failed to reach (the log and the 503 name it)."""
    url = getattr(exc.request, "url", None) if exc.request is not None else None
    host = urlsplit(str(url)).netloc if url else ""
    return host or f"api-{zone}.exoscale.com"


def _is_capacity(reason: str, message: str) -> bool:
    text = message.lower()
    return reason == "unavailable" or "capacity" in text or "insufficient" in text


ZONE_PLACEHOLDER = "{zone}"


def zone_endpoint(endpoint: str, zone: str) -> str:
    """The base URL of `zone` under an endpoint override: `{zone}` in it is replaced by the zone's
    name, as in the API description's own `https://api-{zone}.exoscale.com/v2`; an override
    without it sends every zone to the same URL."""
    return endpoint.replace(ZONE_PLACEHOLDER, zone).rstrip("/")


def make_client(api_key: str, api_secret: str, zone: str, endpoint: str | None, timeout: float) -> Client:
    """The SDK client for `zone` (at `endpoint` when overridden), its Session given a default timeout."""
    try:
        if endpoint:
            client = Client(api_key, api_secret, url=zone_endpoint(endpoint, zone))
        else:
            client = Client(api_key, api_secret, zone=zone)
    except TypeError as exc:  # the SDK's way of refusing an unknown zone
        raise CloudError(str(exc), reason=Reason.INVALID_ZONE) from exc
    session = _TimeoutSession(timeout)
    session.auth = client.http_client.auth
    client.http_client = session
    return client


@dataclass
class ExoscaleTransport:
    """Calls SDK operations by name with the retry policy; waits on operations."""

    client: Client
    zone: str
    retries: int = 5
    backoff_base: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_interval: float = 2.0

    def backoff(self, attempt: int, exc: Exception) -> float:
        """Full jitter: uniform(0, base * 2**attempt), capped; a server's Retry-After is a floor."""
        delay = backoff(attempt, base=self.backoff_base, cap=MAX_BACKOFF, jitter="full")
        hint = _retry_after(exc)
        return min(MAX_BACKOFF, max(delay, hint)) if hint is not None else delay

    def call(
        self, operation: str, *, before_retry: Callable[[], JSON | None] | None = None, **kwargs: Any
    ) -> Any:
        """Call one SDK operation with retries; `before_retry` may return a result that makes a retry moot."""
        method = getattr(self.client, operation)
        attempt = 0
        while True:
            try:
                return method(**kwargs)
            except ExoscaleAPIAuthException as exc:
                msg = _api_message(exc)
                # Exoscale answers 403 for more than bad keys: quota and unauthorised types too.
                if "quota" in msg.lower():
                    raise QuotaError(
                        f"{operation}: {msg} (zone {self.zone}) — request a quota increase in the Exoscale portal",
                        family="",
                        zone=self.zone,
                    ) from exc
                if "instance type" in msg.lower() and "authorized" in msg.lower():
                    raise NotAuthorizedError(
                        f"{operation}: {msg} (zone {self.zone})", family="", zone=self.zone
                    ) from exc
                raise CredentialsError(
                    f"Exoscale refused the API credentials ({msg}): check the api-key and api-secret "
                    "and that the key's IAM role allows compute operations",
                    status=403,
                ) from exc
            except ExoscaleAPIClientException as exc:
                status = _status(exc)
                msg = _api_message(exc)
                if status != 429:
                    if status == 404:
                        raise NotFoundError(f"{operation}: {msg}", status=404) from exc
                    if status == 409:
                        raise CloudError(f"{operation}: {msg}", reason=Reason.CONFLICT, status=409) from exc
                    raise CloudError(f"{operation}: {msg}", reason=Reason.BAD_REQUEST, status=status) from exc
                failure: Exception = exc
                why = f"429 {msg}"
            except ExoscaleAPIServerException as exc:
                failure, why = exc, f"{_status(exc)} {_api_message(exc)}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure, why = exc, f"{type(exc).__name__} reaching {_host(exc, self.zone)}"
            if attempt >= self.retries:
                raise CloudUnavailable(
                    f"Exoscale API unavailable for {operation} after {attempt + 1} attempts: {why}"
                ) from failure
            delay = self.backoff(attempt, failure)
            attempt += 1
            log.warning(
                "exoscale %s failed (%s); retry %d/%d in %.2fs", operation, why, attempt, self.retries, delay
            )
            self.sleep(delay)
            if before_retry is not None:
                done = before_retry()
                if done is not None:
                    return done

    def wait_operation(self, op: JSON, deadline: float) -> JSON:
        """Poll an async operation until it leaves `pending`; raise on failure or at the deadline."""
        op_id = op["id"]
        end = self.clock() + deadline
        while op.get("state", "pending") == "pending":
            if self.clock() >= end:
                raise OperationTimeout(f"operation {op_id} still pending after {deadline:.0f}s")
            self.sleep(self.poll_interval)
            op = self.call("get_operation", id=op_id)
        state = op.get("state")
        if state == "success":
            return op
        reason = str(op.get("reason") or state)
        message = str(op.get("message") or "")
        ref = (op.get("reference") or {}).get("id", "")
        text = f"operation {op_id} on {ref} ended in {state}: {reason}" + (f" ({message})" if message else "")
        log.warning("exoscale %s", text)
        if _is_capacity(reason, message):
            raise CapacityError(text)
        transient = reason in ("busy", "interrupted", "fault", "unknown")
        raise OperationFailed(text, reason=Reason.OPERATION_INTERRUPTED if transient else None)
