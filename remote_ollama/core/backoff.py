"""The one backoff policy: exponential from `base`, capped, with optional jitter (pure).

Used by the operator's round (failures, waiting for a credentials Secret), standalone's loop and the
cloud adapter's retries, so "how long until we try again" is decided in one place.
"""

from __future__ import annotations

import random

# How long the cloud API may stay unreachable before requests waiting for a wake are answered 503
# (standalone's loop and the operator-mode proxy): a burst that the next round outlives is ridden
# through; a real outage is said within ~30 s.
UNREACHABLE_GRACE = 15.0

# While a permanent-looking cloud error (a quota) is refused, a request may have the cloud asked once
# more before the backed-off round (the user may have raised the quota meanwhile), at most once per
# this many seconds, so that a client retrying in a loop cannot hammer the cloud API.
RECHECK_EVERY = 10.0


def backoff(attempt: int, *, cap: float, base: float = 1.0, jitter: str = "none") -> float:
    """Seconds to wait before try `attempt + 1`: base * 2**attempt, at most `cap`.

    jitter "none": exactly that; "half": a random 50-100% of it (spreads rounds that fail together);
    "full": a random 0-100% of it (AWS's full jitter, for many clients of one API).
    """
    delay = min(cap, base * 2.0 ** min(max(attempt, 0), 30))
    if jitter == "half":
        return delay * (0.5 + random.random() / 2)
    if jitter == "full":
        return random.uniform(0, delay)
    return delay
