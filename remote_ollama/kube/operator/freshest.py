"""The newest status of a resource, between our status patch and its watch event.

A round reads kopf's live body, which the watch updates. A round that starts before the watch has
delivered the previous round's status patch (or that sees the event of an annotation written just
before it) would act on the older status and write it back: a capacity fallback's status.placement
went back to the first zone. The operator is the only writer of the status (the proxy and the CLI
write annotations), so the status its last patch produced is the newest there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Freshest:
    status: dict[str, Any] | None = None  # as the API answered our last status patch

    def read(self, live: dict[str, Any]) -> dict[str, Any]:
        """The resource to act on: the live body's metadata and spec, our last status."""
        return live if self.status is None else {**live, "status": self.status}

    def wrote(self, answer: dict[str, Any]) -> None:
        self.status = answer.get("status") if isinstance(answer.get("status"), dict) else self.status
