"""The loop's cloud failures and what they mean for held requests: a permanent one (quota,
credentials), or a cloud API unreachable for UNREACHABLE_GRACE, refuses them after one round that
still sees it instead of letting them wait out the whole hold timeout; the wait before the next
round backs off. A refused request may have that error re-checked early, at most once per
RECHECK_EVERY: a raised quota serves the next request, not the one after the backoff."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from remote_ollama.cloud.errors import CloudError
from remote_ollama.core.backoff import RECHECK_EVERY, UNREACHABLE_GRACE, backoff
from remote_ollama.proxy.interfaces import NotReady
from remote_ollama.spec.vocabulary import Reason


@dataclass
class CloudFailures:
    max_backoff: float
    clock: Callable[[], datetime]
    count: int = 0  # rounds failed in a row
    permanent: CloudError | None = None  # the error held requests are refused with
    seen_at: float = 0.0  # loop time the round that saw it began
    unreachable_since: float | None = None  # loop time the current outage's first round began
    retry_at: datetime | None = None  # when the loop tries again after that error
    checked_at: float = 0.0  # loop time the cloud was last asked about a permanent error

    def cleared(self) -> None:
        """A round went through."""
        self.count, self.permanent, self.unreachable_since = 0, None, None

    def failed(self, exc: CloudError, began: float) -> float:
        """The round that began at loop time `began` failed with `exc`: the wait before the next."""
        self.count += 1
        unreachable = exc.reason is Reason.CLOUD_UNAVAILABLE
        self.permanent = exc if unreachable or not exc.retryable else None
        self.seen_at = self.checked_at = began
        if not unreachable:
            self.unreachable_since = None
        elif self.unreachable_since is None:
            self.unreachable_since = began
        delay = backoff(self.count, cap=self.max_backoff, jitter="half")
        if not exc.retryable:
            delay = max(delay, self.max_backoff)
        self.retry_at = self.clock() + timedelta(seconds=delay)
        return delay

    def crashed(self) -> float:
        """The round failed with a bug: the wait before the next."""
        self.count += 1
        return self.max_backoff

    def outage(self, now: float) -> float:
        """Seconds the cloud API has been unreachable at loop time `now` (0: it is not)."""
        return 0.0 if self.unreachable_since is None else now - self.unreachable_since

    def refusal(self, phase: str, wake_asked_at: float, now: float) -> NotReady | None:
        """The refusal held requests get, if a round that began after the last wake request saw a
        permanent reason (a newer wake request gets a round of its own first: the quota may have
        been raised meanwhile), or the API has been unreachable for UNREACHABLE_GRACE."""
        err = self.permanent
        fresh = self.seen_at >= wake_asked_at
        if err is None or not fresh or (err.retryable and self.outage(now) < UNREACHABLE_GRACE):
            return None
        retry_at = self.retry_at if err.retryable else None
        return NotReady(phase, str(err), refused=True, reason=err.reason, retry_at=retry_at)

    def recheck(self, now: float) -> bool:
        """Whether a request refused at loop time `now` may have the cloud asked again before the
        backed-off round: for an error retrying cannot fix, once per RECHECK_EVERY (noted as done)."""
        err = self.permanent
        if err is None or err.retryable or now - self.checked_at < RECHECK_EVERY:
            return False
        self.checked_at = now
        return True

    def look_again_in(self, remaining: float, now: float) -> float:
        """A wait of `remaining` seconds, cut to the end of an outage's grace."""
        outage = self.outage(now)
        if self.unreachable_since is not None and outage < UNREACHABLE_GRACE:
            return min(remaining, UNREACHABLE_GRACE - outage)
        return remaining
