"""Whether the operator has answered this proxy's newest wake request (operator mode).

A refusal for a cause a lifecycle round may lift (a permanent cloud reason such as QuotaExceeded:
the user may have raised the quota meanwhile) is not final for the request whose wake asked for
that round: the operator runs it at once and echoes the wake-requested value the round began with
in status.wakeRequestAnswered. Until the echo reaches the wake, or ANSWER_WAIT passes, the request
waits; then it is held (the VM is coming) or refused with the fresh reason, as standalone's
re-check does. A budget cap or an unreachable cloud API is not re-checked by a round: refused at once.

Trust: the status is tenant-writable; a forged echo only makes this proxy answer sooner (as it did
before the echo) or later (at most ANSWER_WAIT).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remote_ollama.proxy.interfaces import Refusal

from .operator.status import parse_time

# The longest a request waits for the operator's round on its wake (the round itself takes about a
# second: read, one cloud call, the status patch).
ANSWER_WAIT = 10.0


@dataclass
class WakeAnswer:
    asked: datetime | None = None  # the newest wake this proxy wrote (as the annotation has it: ms)
    until: float = 0.0  # loop time after which its refusal stands unanswered

    def ask(self, at: datetime, now: float) -> None:
        """A wake request written at `at` (wall clock), at loop time `now`."""
        self.asked = at.replace(microsecond=at.microsecond // 1000 * 1000)
        self.until = now + ANSWER_WAIT

    def waiting(self, status: dict[str, Any], refusal: Refusal, now: float) -> float:
        """Seconds a request waits for the answer to the wake before `refusal` stands (0: it stands)."""
        lifted = refusal.reason is not None and refusal.reason.permanent  # what a round may lift
        if not lifted or self.asked is None or now >= self.until:
            return 0.0
        echo = parse_time(status.get("wakeRequestAnswered"))
        return 0.0 if echo is not None and echo >= self.asked else self.until - now
