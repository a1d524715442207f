"""How many replicas (VMs) the load asks for, and which to start or stop: a pure decision.

The signal is the number of requests in flight across the proxies (Ollama has no metrics endpoint,
so our own count is the only one), plus the requests held waiting for a replica. Like KubeAI,
the level is a moving average over a short window; unlike a pure average, a rise counts at once:
the decision scales up in the round the instantaneous load crosses, and scales down one replica at
a time, only after the windowed load has stayed below what one replica fewer carries for
`scaleDownAfter`, and never a replica with a request in flight. No I/O and no clock reads: the
shell passes `now` and carries out `start` / `stop`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from remote_ollama.spec.model import Spec
from remote_ollama.spec.schedule import active_window
from remote_ollama.spec.sections import ReplicaPolicy
from remote_ollama.spec.vocabulary import Reason

WINDOW = 10.0  # seconds of in-flight samples averaged for the scale-down signal
RECHECK_BUSY = 1.0  # a scale-down waiting for a replica to finish its requests looks again this soon


@dataclass(frozen=True)
class ScaleMemory:
    """What the decision remembers between rounds (the shell keeps it, e.g. in the state file)."""

    samples: tuple[tuple[datetime, int], ...] = ()  # (when, requests in flight + held), within WINDOW
    below_since: datetime | None = None  # since when fewer replicas would carry the load


@dataclass(frozen=True)
class ScaleInput:
    policy: ReplicaPolicy
    target: int  # requests in flight one replica carries (Spec.target_in_flight)
    now: datetime
    running: frozenset[int]  # replicas running or on their way up (indices)
    in_flight: Mapping[int, int] = field(default_factory=dict)  # per replica index, summed over proxies
    held: int = 0  # requests held by the proxies for want of a Ready replica
    floor: int = 0  # a keep-warm window's replicas (spec.schedule), besides spec.replicas.min
    ceiling: int | None = None  # the budget or the namespace policy: at most this many
    memory: ScaleMemory = field(default_factory=ScaleMemory)


@dataclass(frozen=True)
class ScaleDecision:
    desired: int
    start: tuple[int, ...]  # replica indices to bring up (wake or create)
    stop: tuple[int, ...]  # replica indices to stop (each with no request in flight)
    reason: Reason
    message: str
    memory: ScaleMemory
    recheck_after: float | None  # seconds until the answer may change by itself; None: on the next signal


def needed(load: float, target: int) -> int:
    """Replicas that carry `load` requests at `target` each (KubeAI: ceil(in-flight / target))."""
    return math.ceil(load / target - 1e-9) if load > 0 else 0


def decide_replicas(given: ScaleInput) -> ScaleDecision:
    """The desired count and the replicas to start or stop this round."""
    policy, now = given.policy, given.now
    load = sum(given.in_flight.values()) + given.held
    samples = (*(s for s in given.memory.samples if (now - s[0]).total_seconds() < WINDOW), (now, load))
    average = sum(n for _, n in samples) / len(samples)
    low = max(policy.min, given.floor)
    high = policy.max if given.ceiling is None else max(0, min(policy.max, given.ceiling))
    low = min(low, high)
    current = len(given.running)

    def clamp(n: int) -> int:
        return max(low, min(high, n))

    up = clamp(needed(load, given.target))
    # the level a scale-down weighs: the window's average smooths dips, but never below the load
    # now (the average of a rise lags behind it)
    level = clamp(needed(max(average, load), given.target))
    free = sorted(i for i in range(policy.max) if i not in given.running)

    if up > current or current < low:
        want = max(up, low)
        memory = ScaleMemory(samples, None)
        start = tuple(free[: want - current])
        return ScaleDecision(
            want, start, (), Reason.SCALING_UP, f"{load} in flight: {want} replica(s)", memory, None
        )
    if current > high:  # max or the budget went down: the idle extras go now
        return _step_down(given, samples, current - high, high, Reason.AT_MAX_REPLICAS, "above the limit")
    if needed(load, given.target) > current:
        memory = ScaleMemory(samples, None)
        message = f"{load} in flight would need {needed(load, given.target)} replicas; at most {high}"
        return ScaleDecision(current, (), (), Reason.AT_MAX_REPLICAS, message, memory, None)
    if level >= current or current <= low:
        memory = ScaleMemory(samples, None)
        settling = WINDOW if level > clamp(needed(load, given.target)) else None  # the average falls
        return ScaleDecision(current, (), (), Reason.AT_TARGET, f"{load} in flight", memory, settling)
    below_since = given.memory.below_since or now
    waited = (now - below_since).total_seconds()
    if waited < policy.scale_down_after:
        memory = ScaleMemory(samples, below_since)
        message = f"load below {current - 1} replica(s) since {below_since:%H:%M:%S}"
        return ScaleDecision(
            current, (), (), Reason.SCALE_DOWN_PENDING, message, memory, policy.scale_down_after - waited
        )
    return _step_down(given, samples, 1, current - 1, Reason.SCALING_DOWN, f"average {average:.1f} in flight")


def _step_down(
    given: ScaleInput,
    samples: tuple[tuple[datetime, int], ...],
    count: int,
    desired: int,
    reason: Reason,
    why: str,
) -> ScaleDecision:
    """Stop `count` idle replicas, highest index first; a busy replica is never stopped (wait)."""
    idle = sorted((i for i in given.running if given.in_flight.get(i, 0) == 0), reverse=True)
    stop = tuple(idle[:count])
    if not stop:
        memory = ScaleMemory(samples, given.memory.below_since or given.now)
        message = f"{why}: every running replica has a request in flight; stopping one when it is idle"
        return ScaleDecision(
            len(given.running), (), (), Reason.SCALE_DOWN_PENDING, message, memory, RECHECK_BUSY
        )
    # the next step down waits scaleDownAfter again, from now
    memory = ScaleMemory(samples, given.now)
    message = f"{why}: stopping replica(s) {', '.join(map(str, stop))}"
    return ScaleDecision(desired, (), stop, reason, message, memory, given.policy.scale_down_after)


def last_replica_floor(
    spec: Spec, now: datetime, *, running: bool, busy: bool, last_use: datetime | None
) -> int:
    """The last replica stays as one VM would: inside a keep-warm window, while in use (`busy`:
    requests in flight or held), and until spec.idle.stopAfter after its `last_use` (a request or
    readiness; never, without stopAfter). Both shells (local/replicas.py, the operator) pass it as `floor`."""
    if spec.schedule and active_window(spec.schedule, now) is not None:
        return 1
    if not running:
        return 0
    stop_after = spec.idle.stop_after
    if stop_after is None or busy:
        return 1
    return 1 if last_use is None or (now - last_use).total_seconds() < stop_after else 0
