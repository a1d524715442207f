"""When a refused request may have the cloud asked again before the backed-off round (pure): only
for an error retrying cannot fix (a quota the user may have raised), and at most once per
RECHECK_EVERY, so a client retrying in a loop cannot hammer the cloud API."""

from __future__ import annotations

from datetime import UTC, datetime

from remote_ollama.cloud.errors import CloudError
from remote_ollama.core.backoff import RECHECK_EVERY
from remote_ollama.local.failures import CloudFailures
from remote_ollama.spec.vocabulary import Reason


def failures() -> CloudFailures:
    return CloudFailures(max_backoff=600.0, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))


def test_a_quota_refusal_is_rechecked_at_most_once_per_interval() -> None:
    f = failures()
    f.failed(CloudError("GPU quota exhausted", reason=Reason.QUOTA_EXCEEDED), began=100.0)
    assert not f.recheck(100.0 + RECHECK_EVERY - 0.1)  # the round that saw it is that check
    assert f.recheck(100.0 + RECHECK_EVERY)
    assert [f.recheck(100.0 + RECHECK_EVERY + i / 10) for i in range(50)] == [False] * 50  # a burst
    assert f.recheck(100.0 + 2 * RECHECK_EVERY)
    f.cleared()
    assert not f.recheck(1000.0)  # nothing refused


def test_an_unreachable_api_is_not_rechecked_early() -> None:
    f = failures()  # its own backoff and grace decide; asking again sooner cannot help
    f.failed(CloudError("connection refused", reason=Reason.CLOUD_UNAVAILABLE), began=100.0)
    assert not f.recheck(100.0 + 10 * RECHECK_EVERY)
