"""What the namespace spend cap's cluster tests share: the operator's clock the test moves, the
round a new wake-requested value runs at once, the conditions and the meter only the operator writes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, operator_world

from remote_ollama.kube.operator.context import OPERATOR

PRICES = {"currency": "CHF", "perHour": {"gpua5000.small": 1.5}}


class FakeClock:
    """The operator's clock: where the test puts it, `tick` later at each read (time passes, if
    slowly: a frozen clock would see a scaler's wake no later than the stop decided with it)."""

    def __init__(self, start: datetime, tick: timedelta = timedelta(0)):
        self.now, self.tick = start, tick

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now


def kick(world: OperatorWorld, name: str, at: datetime) -> None:
    """A new wake-requested value makes the operator run a round for `name` at once."""
    stamp = f"remoteollama.dev/wake-requested={at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    world.kube.kubectl("annotate", "rol", name, stamp, "--overwrite", check=True)


def condition(world: OperatorWorld, name: str, kind: str) -> dict[str, Any]:
    obj = world.get("remoteollama", name) or {}
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def entries(world: OperatorWorld) -> list[dict[str, Any]]:
    """The namespace's meter, one entry per VM metered (what only the operator can write)."""
    name = f"remote-ollama-spend.{world.namespace}"
    obj = world.get("configmap", name, "remote-ollama") or {}
    return [json.loads(text) for text in (obj.get("data") or {}).values()]


@contextlib.contextmanager
def capped_world(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> Iterator[OperatorWorld]:
    """The operator on `clock`, with PRICES and a policy capping the namespace at 10 a month; the
    namespace's meter (in the operator's namespace, which outlives the test's) deleted after."""
    monkeypatch.setattr(OPERATOR, "clock", clock)
    env = {
        "REMOTE_OLLAMA_PRICES": json.dumps(PRICES),
        "REMOTE_OLLAMA_POLICY": json.dumps({"namespaceMonthlySpend": 10}),
        "REMOTE_OLLAMA_NAMESPACE": "remote-ollama",  # the operator's namespace: the meter's home
    }
    try:
        with operator_world(kube, monkeypatch, extra_env=env) as world:
            yield world
    finally:
        kube.kubectl("delete", "configmap", f"remote-ollama-spend.{kube.namespace}", "-n", "remote-ollama")
