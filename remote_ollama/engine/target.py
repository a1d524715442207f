"""Which VM a reconciler manages: the labels that find it and the names it gets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
)


def instance_name(*parts: str) -> str:
    """A hostname-safe instance name (Exoscale rejects underscores, max 63 characters)."""
    text = re.sub(r"[^a-z0-9-]+", "-", "-".join(("remote-ollama", *parts)).lower()).strip("-")
    return text[:63].rstrip("-")


@dataclass(frozen=True)
class Target:
    """Which VM this reconciler manages: the labels that find it and the names it gets."""

    owner_uid: str
    cluster: str
    name: str
    security_group: str
    # the older name (docs/design.md section 2); used only for a VM of ours that is attached to it (see ensure_access)
    legacy_security_group: str | None = None
    # mark the group with the owner uid and converge only a group carrying that mark (operator mode;
    # standalone's group name holds its random owner id and predates the mark)
    mark_group: bool = False
    # a replica of a replicated endpoint (issue 19): its index is a label; the replicas share the
    # first one's security group, which only that one deletes
    replica: int | None = None
    owns_group: bool = True

    def labels(self, spec: Spec) -> dict[str, str]:
        return {
            LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE,
            LABEL_OWNER: self.owner_uid,
            LABEL_CLUSTER: self.cluster,
            LABEL_SPEC_HASH: spec.instance_hash(),
        } | ({LABEL_REPLICA: str(self.replica)} if self.replica is not None else {})
