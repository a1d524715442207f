"""The newest known state of a resource, between our status patch and its watch event.

A round reads kopf's live body, which the watch updates. A round that starts before the watch has
delivered the previous round's status patch would act on the older status and write it back (a
capacity fallback's status.placement reverted to the first zone). The API's answer to the patch is
the resource after it, so it stands in for the live body until the watch catches up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _version(resource: dict[str, Any]) -> str | None:
    version = (resource.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None


@dataclass
class Freshest:
    """Resource versions are opaque: only those we saw before our own answer are known older."""

    latest: dict[str, Any] | None = None  # the API's answer to our last status patch
    older: set[str] = field(default_factory=set)  # versions known to come before `latest`
    reading: str | None = None  # the live body's version this round read

    def read(self, live: dict[str, Any]) -> dict[str, Any]:
        """The resource to act on: the live body, unless it predates our last patch."""
        self.reading = _version(live)
        if self.latest is not None and self.reading in self.older:
            return self.latest
        self.latest, self.older = None, set()  # the watch caught up (or someone wrote after us)
        return live

    def wrote(self, answer: dict[str, Any]) -> None:
        """Our status patch's answer: newer than everything this round read or wrote before."""
        before = {self.reading} | ({_version(self.latest)} if self.latest is not None else set())
        self.older |= {v for v in before if v is not None}
        self.latest = answer
