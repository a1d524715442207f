"""The newest status of a resource, between our status patch and its watch event.

A round reads kopf's live body, which the watch updates. A round that starts before the watch has
delivered the previous round's status patch (or that sees the event of an annotation written just
before it) would act on the older status and write it back: a capacity fallback's status.placement
went back to the first zone. Every status the operator wrote is known: a live status equal to one
of the earlier ones is stale, and the last one stands in for it. A status nobody here wrote (a
tenant's edit) is read as it is: the round judges it (and refuses a VM it names that is not ours).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

KEPT = 16  # statuses remembered: more than the watch can lag behind by


@dataclass
class Freshest:
    written: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT))  # ours, oldest first

    def read(self, live: dict[str, Any]) -> dict[str, Any]:
        """The resource to act on: the live body, with our last status if its own is an older one of ours."""
        status = live.get("status")
        if self.written and status != self.written[-1] and status in self.written:
            return {**live, "status": self.written[-1]}
        return live

    def wrote(self, answer: dict[str, Any]) -> None:
        """The API's answer to our status patch: the resource right after it."""
        if isinstance(answer.get("status"), dict):
            self.written.append(answer["status"])
