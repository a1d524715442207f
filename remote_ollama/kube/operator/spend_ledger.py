"""The namespace spend meter's home: a ConfigMap `remote-ollama-spend.<namespace>` in the operator's
own namespace, one key per RemoteOllama uid (core/namespace_spend.py says what is in it).

Why there: tenants have no rights in the operator's namespace (the chart grants them none), so no
status patch, Secret edit or delete-and-recreate in their own namespace touches it; a resource's
`status.cost` and its namespace's Secrets are theirs to write. Each round merge-patches only its
own key, so the resources of a namespace never overwrite each other's spend. Kept only while the
policy sets `namespaceMonthlySpend` (spend is counted from when the cap is set).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from remote_ollama.core import cost, namespace_spend
from remote_ollama.kube.api import KubeAPI, KubeError, path_for
from remote_ollama.spec.policy import Policy
from remote_ollama.spec.vocabulary import Reason

from .children import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from .events import event
from .policy_source import NAMESPACE_ENV

PREFIX = "remote-ollama-spend."


def home() -> str:
    return os.environ.get(NAMESPACE_ENV, "") or "default"


class SpendLedger:
    def __init__(self) -> None:
        self.warned: set[str] = set()  # uids told (Warning Event) that their namespace is over its cap
        # per uid, between a round's look and its record: its meter credited so far, stale keys
        self._pending: dict[str, tuple[cost.CostMeter, list[str]]] = {}

    async def before(
        self, api: KubeAPI, body: Any, policy: Policy, prices: cost.PriceTable, now: datetime
    ) -> cost.BudgetVerdict | None:
        """The namespace's verdict for this round (None: no cap), this resource credited up to now."""
        cap = policy.namespace_monthly_spend
        if cap is None:
            return None
        namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
        meters = await self._read(api, namespace)
        mine = meters.get(uid, cost.CostMeter())
        meters[uid] = namespace_spend.credited(mine, now, mine.running_type)
        self._pending[uid] = (meters[uid], [k for k in namespace_spend.stale(meters, now) if k != uid])
        return namespace_spend.verdict(namespace, meters, cap, prices, now)

    async def cap(
        self, api: KubeAPI, namespace: str, uid: str, policy: Policy, prices: cost.PriceTable, now: datetime
    ) -> cost.BudgetVerdict | None:
        """The namespace's verdict before a replicated round decides how many replicas run (None: no
        cap), resource `uid`'s meters credited up to now; each replica's round then records its own."""
        cap = policy.namespace_monthly_spend
        if cap is None:
            return None
        meters = await self._read(api, namespace)
        for key, meter in meters.items():
            if namespace_spend.of_resource(key, uid):
                meters[key] = namespace_spend.credited(meter, now, meter.running_type)
        return namespace_spend.verdict(namespace, meters, cap, prices, now)

    async def after(
        self, api: KubeAPI, body: Any, cap: cost.BudgetVerdict | None, look: Any, prices: cost.PriceTable
    ) -> bool:
        """Record what this resource runs from now on; True when its namespace has just gone over
        its cap (the caller wakes the namespace's other resources, to stop theirs too)."""
        meta = body["metadata"]
        pending = self._pending.pop(meta["uid"], None)
        if cap is None or pending is None:
            return False
        instance = look.instance
        running = cost.billed_type(instance.state, instance.instance_type) if instance else None
        meter = namespace_spend.credited(pending[0], look.now, running)
        data: dict[str, str | None] = dict.fromkeys(pending[1])
        data[meta["uid"]] = namespace_spend.entry(meter, meta["name"], prices)
        await self._write(api, meta["namespace"], data)
        if not cap.exceeded:
            self.warned.discard(meta["uid"])
            return False
        if meta["uid"] in self.warned:
            return False
        self.warned.add(meta["uid"])
        event(body, Reason.NAMESPACE_SPEND_CAP_REACHED, cap.exceeded)
        return True

    @staticmethod
    async def _read(api: KubeAPI, namespace: str) -> dict[str, cost.CostMeter]:
        obj = await api.get(path_for("v1", "configmaps", home(), PREFIX + namespace))
        return namespace_spend.parse((obj or {}).get("data") or {})

    @staticmethod
    async def _write(api: KubeAPI, namespace: str, data: dict[str, str | None]) -> None:
        """Merge-patch these keys into the ledger (None deletes one); create it on first use."""
        path = path_for("v1", "configmaps", home(), PREFIX + namespace)
        try:
            await api.merge_patch(path, {"data": data})
            return
        except KubeError as exc:
            if exc.status != 404:
                raise
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "remoteollama.dev/namespace": namespace}
        kept = {k: v for k, v in data.items() if v is not None}
        ledger = {"metadata": {"name": PREFIX + namespace, "labels": labels}, "data": kept}
        try:
            await api.create(
                path_for("v1", "configmaps", home()), {"apiVersion": "v1", "kind": "ConfigMap", **ledger}
            )
        except KubeError as exc:  # made meanwhile by another resource's round
            if exc.status != 409:
                raise
            await api.merge_patch(path, {"data": kept})


LEDGER = SpendLedger()
