"""Where the operator finds the platform team's spend policy, read afresh at every round.

Under the chart (and the plain manifests) it is the ConfigMap named by $REMOTE_OLLAMA_POLICY_CONFIGMAP
in the operator's namespace ($REMOTE_OLLAMA_NAMESPACE): the very object the admission policy takes
as its parameters, so the two never disagree and an edit takes effect in both without a restart.
Outside the chart, $REMOTE_OLLAMA_POLICY (JSON) is read instead. A ConfigMap that is named but
missing or unreadable, or a policy that does not parse, refuses every spec (closed, as admission).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from remote_ollama.kube.api import KubeAPI, KubeError, path_for
from remote_ollama.spec.model import Spec
from remote_ollama.spec.policy import POLICY_ENV, Policy, policy_from, policy_from_data, violations

POLICY_CONFIGMAP_ENV = "REMOTE_OLLAMA_POLICY_CONFIGMAP"
NAMESPACE_ENV = "REMOTE_OLLAMA_NAMESPACE"


@dataclass(frozen=True)
class PolicyRead:
    """The policy, what messages call it, and why it refuses everything (None: it does not)."""

    policy: Policy
    name: str
    problem: str | None = None

    def problems(self, spec: Spec) -> list[str]:
        """How `spec` leaves the policy; one that cannot be read or parsed refuses every spec."""
        if self.problem is not None:
            return [f"{self.name} cannot be used, so nothing is created: {self.problem}"]
        return [f"{self.name}: {v}" for v in violations(spec, self.policy)]


class PolicySource:
    """One GET per round (a round makes several): an edit counts at the next round, as it does at
    admission."""

    async def read(self, api: KubeAPI, env: Mapping[str, str] = os.environ) -> PolicyRead:
        configmap = env.get(POLICY_CONFIGMAP_ENV, "")
        if not configmap:
            try:
                return PolicyRead(policy_from(env), POLICY_ENV)
            except ValueError as exc:
                return PolicyRead(Policy(), POLICY_ENV, str(exc))
        return await self._fetch(api, env.get(NAMESPACE_ENV, "") or "default", configmap)

    @staticmethod
    async def _fetch(api: KubeAPI, namespace: str, name: str) -> PolicyRead:
        where = f"platform policy {namespace}/{name}"
        try:
            obj = await api.get(path_for("v1", "configmaps", namespace, name))
        except (KubeError, OSError) as exc:
            return PolicyRead(Policy(), where, f"cannot read the ConfigMap: {exc}")
        if obj is None:
            return PolicyRead(Policy(), where, "the ConfigMap does not exist")
        data = obj.get("data") or {}
        try:
            return PolicyRead(policy_from_data({str(k): str(v) for k, v in data.items()}, where), where)
        except ValueError as exc:
            return PolicyRead(Policy(), where, str(exc))


SOURCE = PolicySource()
