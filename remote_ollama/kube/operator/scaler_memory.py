"""The scaler's memory kept in status.scaler, so a restarted operator resumes the same decision (issue 19).

`decide_replicas` remembers the in-flight window (the last WINDOW seconds of samples) and since when
the load has been below what one replica fewer carries (`belowSince`). Kept only in the process, a
restart started `scaleDownAfter` again: an operator restarted every few minutes would never scale
down, and the GPUs would bill on. So each round writes it to status, and the first round of a new
process reads it back.

Status is writable by the namespace's tenants, so what is read back is clamped: a `belowSince` in
the future counts as now, samples outside the window (or beyond MAX_SAMPLES, or malformed) are
dropped and a load counts at most `max` x `targetInFlight`. That is safe without hiding it elsewhere
because this memory decides only *when* an idle replica of this one resource steps down, never how
many run: scale-up reads the load of the moment, and every answer stays within the resource's own
min (and keep-warm, and its last replica's stopAfter), max and budget; a step down still stops one
idle replica at a time, never one with a request in flight. A forged value can therefore only hasten
or delay this resource's own scale-down within bounds its tenant already sets (`kubectl scale` to
max keeps them all up; lowering max takes them down), and reaches no other resource.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remote_ollama.core.replicas import WINDOW, ScaleMemory
from remote_ollama.kube.signal import micro_time
from remote_ollama.spec.sections import ReplicaPolicy

from .status import parse_time

JSON = dict[str, Any]
MAX_SAMPLES = 64  # the newest kept in status (the CRD's bound); the process keeps its whole window


def scaler_status(memory: ScaleMemory) -> JSON:
    """status.scaler (a merge patch: `belowSince` is written as null to remove it)."""
    below = memory.below_since
    return {
        "belowSince": micro_time(below) if below is not None else None,
        "samples": [{"at": micro_time(at), "load": load} for at, load in memory.samples[-MAX_SAMPLES:]],
    }


def restored_memory(body: JSON, policy: ReplicaPolicy, target: int, now: datetime) -> ScaleMemory:
    """The memory status.scaler holds, clamped (see the module's docstring); empty when absent."""
    doc = (body.get("status") or {}).get("scaler")
    if not isinstance(doc, dict):
        return ScaleMemory()
    below = parse_time(doc.get("belowSince"))
    raw = doc.get("samples")
    samples = []
    for item in raw[:MAX_SAMPLES] if isinstance(raw, list) else []:
        at = parse_time(item.get("at")) if isinstance(item, dict) else None
        load = item.get("load") if isinstance(item, dict) else None
        if at is None or not isinstance(load, int) or isinstance(load, bool) or load < 0:
            continue
        if 0 <= (now - at).total_seconds() < WINDOW:
            samples.append((at, min(load, policy.max * target)))
    return ScaleMemory(tuple(sorted(samples)), min(below, now) if below is not None else None)
