"""Misbehaviour injected into the simulated cloud: failing calls, slow answers and operations,
capacity refusals. Safe to change from another thread (SimulatorThread tests)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

MAX_TAKEN = 10_000


@dataclass
class FailRule:
    remaining: int
    status: int
    operation: str | None
    path_prefix: str | None
    message: str

    def matches(self, operation: str, path: str) -> bool:
        if self.operation is not None and self.operation != operation:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


@dataclass
class Faults:
    """Injected misbehaviour. Safe to change from another thread (SimulatorThread tests)."""

    fail_rules: list[FailRule] = field(default_factory=list)
    response_delays: list[tuple[str | None, float]] = field(default_factory=list)
    operation_delay: float = 0.0
    capacity_failures: dict[str, int] = field(default_factory=dict)  # by action, in any zone
    zone_capacity_failures: dict[tuple[str, str], int] = field(default_factory=dict)  # (action, zone)
    # when each injected fault took effect (time.monotonic()): what a fault scenario measures against
    taken: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_TAKEN))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_failure(self, operation: str, path: str) -> FailRule | None:
        with self.lock:
            for rule in self.fail_rules:
                if rule.remaining > 0 and rule.matches(operation, path):
                    rule.remaining -= 1
                    self.taken.append(time.monotonic())
                    return rule
            self.fail_rules = [r for r in self.fail_rules if r.remaining > 0]
            return None

    def response_delay(self, operation: str) -> float:
        with self.lock:
            delay = sum(d for op, d in self.response_delays if op is None or op == operation)
            if delay:
                self.taken.append(time.monotonic())
            return delay

    def take_capacity_failure(self, action: str, zone: str) -> bool:
        with self.lock:
            if self.zone_capacity_failures.get((action, zone), 0) > 0:
                self.zone_capacity_failures[(action, zone)] -= 1
            elif self.capacity_failures.get(action, 0) > 0:
                self.capacity_failures[action] -= 1
            else:
                return False
            self.taken.append(time.monotonic())
            return True
