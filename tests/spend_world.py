"""What the namespace spend cap's cluster tests share: the operator's clock the test moves, the
round a new wake-requested value runs at once, the conditions and the meter only the operator writes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from operator_world import OperatorWorld

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
