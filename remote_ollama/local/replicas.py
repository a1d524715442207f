"""Standalone scale-out (spec.replicas.max > 1, REMOTE_OLLAMA_MAX_REPLICAS): one `LocalController`
per replica, each an individual VM with today's lifecycle (stopped when idle, woken on demand,
destroyed after destroyAfter stopped), its own state file, credentials and name, labelled with its
index; the first replica's security group serves them all.

`ReplicaGroup` is the proxy's resolver and sink. The proxy's `Router` counts requests outstanding
per replica; the group hands each request to the least busy Ready replica, holds it while every
Ready one is at target and another is coming, and once a second runs `core.replicas` on the count
(plus the held requests) to start or stop replicas, one at a time. The last replica stays as one VM
would (keep-warm windows, in use, spec.idle.stopAfter since the last request); the members' own
idle monitors are off, so no two replicas stop at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from remote_ollama.cloud.port import Cloud
from remote_ollama.core.replicas import (
    ScaleDecision,
    ScaleInput,
    ScaleMemory,
    decide_replicas,
    last_replica_floor,
)
from remote_ollama.engine.metrics import ReplicaMetrics
from remote_ollama.proxy.interfaces import NotReady, RouteKey, Upstream, UpstreamState
from remote_ollama.proxy.routing import Router
from remote_ollama.proxy.runloop import cancel_and_wait, wait_at_most
from remote_ollama.spec.model import Spec
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import Phase

from .controller import LocalController

log = logging.getLogger("remote_ollama")

UP = frozenset({Phase.PENDING, Phase.PROVISIONING, Phase.STARTING, Phase.READY})
SCALE_INTERVAL = 1.0  # the scale decision looks at least this often (and at once on a wake request)


def replica_state_file(state_file: str, index: int) -> str:
    """Replica 0 keeps the state file standalone always had (its VM is adopted); others sit beside it."""
    if index == 0:
        return state_file
    path = Path(state_file)
    return str(path.with_name(f"{path.stem}.replica-{index}{path.suffix}"))


class ReplicaGroup:
    def __init__(
        self,
        spec: Spec,
        cloud: Cloud,
        state_file: str,
        *,
        router: Router,
        ollama_key: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.spec, self.router, self.clock = spec, router, clock
        first = LocalController(spec, cloud, state_file, ollama_key=ollama_key, clock=clock, replica=0)
        group = first.reconciler.target.security_group
        self.members = [first] + [
            LocalController(
                spec,
                cloud,
                replica_state_file(state_file, i),
                ollama_key=ollama_key,
                clock=clock,
                replica=i,
                security_group=group,
            )
            for i in range(1, spec.replicas.max)
        ]
        self.memory = ScaleMemory()
        self.last: ScaleDecision | None = None
        self.asked: set[int] = set()  # told to start, not yet seen on its way up
        self.draining: set[int] = set()  # told to stop: no new request goes there
        self.waiting = 0  # requests held for a replica with room
        self._changed = asyncio.Event()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.metrics: ReplicaMetrics | None = None  # remote_ollama_replicas{state}, _desired_replicas
        router.on_change = self._wake_waiters
        for i, member in enumerate(self.members):
            member.on_change = self._member_changed
            member.usage = functools.partial(self.usage, i)
            member.other_costs = functools.partial(self.costs_besides, i)
            # the group stops replicas, one at a time; each keeps waking, destroyAfter, its budget
            member.idle_monitor = False

    # -- what the replicas are doing -------------------------------------------------------------------

    def phase_of(self, index: int) -> Phase:
        m = self.members[index]
        return m.decision.phase if m.decision else m.state_phase()

    def usage(self, index: int) -> tuple[int, int]:
        """(requests in flight, requests ever begun) on replica `index`'s VM, by its endpoint (kept
        while it stops, so requests still streaming from it count)."""
        d = self.members[index].decision
        return self.router.usage(d.endpoint if d else None)

    def costs_besides(self, index: int) -> list[Any]:
        """The other replicas' stored meters: each replica's budget verdict counts them all."""
        return [m.saved.cost for i, m in enumerate(self.members) if i != index and m.saved.cost]

    def running(self) -> frozenset[int]:
        """Replicas up or on their way up (or told to start and not yet seen starting)."""
        return frozenset(i for i in range(len(self.members)) if i in self.asked or self.phase_of(i) in UP)

    def ready(self) -> list[tuple[int, Upstream]]:
        out = []
        for i, m in enumerate(self.members):
            up = m.state().upstream
            if up is not None and i not in self.draining:
                out.append((i, up))
        return out

    def _member_changed(self) -> None:
        # a round may have moved a replica to a new VM: the router forgets the addresses of gone ones
        self.router.keep(m.decision.endpoint for m in self.members if m.decision and m.decision.endpoint)
        for i in list(self.asked):
            if self.phase_of(i) in UP:
                self.asked.discard(i)
        for i in list(self.draining):
            if self.phase_of(i) not in UP:
                self.draining.discard(i)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- UpstreamResolver ------------------------------------------------------------------------------

    def state(self, key: RouteKey | None = None) -> UpstreamState:
        ready = self.ready()
        running = self.running()
        if len(running) < len(self.members) and (
            self.router.total + self.waiting > self.spec.target_in_flight * len(running)
        ):
            self._kick.set()  # the signal crossed: the scale round runs now, not at its next tick
        coming = len(running) > len(ready) or bool(self.last and self.last.desired > len(ready))
        picked = self.router.pick(
            [u for _, u in ready], self.spec.target_in_flight, more_coming=coming, key=key
        )
        if ready:
            phase = Phase.READY
        else:
            phases = [self.phase_of(i) for i in range(len(self.members))]
            phase = next(
                (p for p in (Phase.STARTING, Phase.PROVISIONING, Phase.PENDING) if p in phases), phases[0]
            )
        exists = bool(ready) or any(m.state().instance for m in self.members)
        return UpstreamState(phase=str(phase), ready=picked is not None, instance=exists, upstream=picked)

    async def await_ready(self, deadline: float) -> Upstream:
        loop = asyncio.get_running_loop()
        self.waiting += 1
        self._kick.set()
        try:
            while True:
                picked = self.state().upstream
                if picked is not None:
                    return picked
                if not self.ready():  # none up and each one coming refused (budget, quota, credentials)
                    coming = self.running() or frozenset(range(len(self.members)))
                    refusals = [self.members[i].refusal() for i in sorted(coming)]
                    if refusals[0] is not None and all(refusals):
                        raise refusals[0]
                changed = self._changed
                remaining = deadline - loop.time()
                if remaining <= 0:
                    state = self.state()
                    raise NotReady(state.phase, self.members[0].error or state.down_words())
                await wait_at_most(changed.wait(), remaining)
        finally:
            self.waiting -= 1

    # -- ActivitySink ----------------------------------------------------------------------------------

    async def touch(self, at: datetime, in_flight: int = 0) -> None:
        """Each replica's own activity: the ones that serve or served requests are in use."""
        for m in self.members:
            m.note_usage(at)

    async def request_wake(self, at: datetime) -> None:
        self._kick.set()

    # -- the scale loop --------------------------------------------------------------------------------

    async def scale(self) -> ScaleDecision:
        """One round of core.replicas, carried out."""
        now = self.clock()
        running = self.running()
        in_flight = {i: self.usage(i)[0] for i in running}
        floor = self.floor(now, running, in_flight)
        decision = decide_replicas(
            ScaleInput(
                self.spec.replicas,
                self.spec.target_in_flight,
                now,
                running,
                in_flight,
                self.waiting,
                floor=floor,
                memory=self.memory,
            )
        )
        self.memory, previous, self.last = decision.memory, self.last, decision
        if decision.start or decision.stop or (previous and previous.desired != decision.desired):
            log.info("replicas: %d desired (%s: %s)", decision.desired, decision.reason, decision.message)
        for i in decision.start:
            self.draining.discard(i)
            self.asked.add(i)
            await self.members[i].request_wake(now)
        for i in decision.stop:
            m = self.members[i]
            self.draining.add(i)
            m.note_usage(now)  # its use so far, then the request to stop after it
            m.request_sleep()
        if self.metrics is not None:
            self.metrics.observe(self.counts(), decision.desired)
        return decision

    def counts(self) -> dict[str, int]:
        """Replicas by state: ready, starting (on the way up), stopped (the rest)."""
        ready = len(self.ready())
        up = len(self.running() - set(self.draining))
        starting = max(0, up - ready)
        return {"ready": ready, "starting": starting, "stopped": len(self.members) - ready - starting}

    def floor(self, now: datetime, running: frozenset[int], in_flight: dict[int, int]) -> int:
        """The last replica stays as one VM would (core.replicas.last_replica_floor)."""
        for m in self.members:
            m.note_usage(now)
        used = [m.activity.last_activity for m in self.members if m.activity.last_activity]
        ready = [m.saved.memory.ready_at for m in self.members if m.saved.memory.ready_at]
        return last_replica_floor(
            self.spec,
            now,
            running=bool(running),
            busy=any(in_flight.values()) or bool(self.waiting),
            last_use=max(used + ready, default=None),
        )

    async def run(self) -> None:
        while True:
            self._kick.clear()
            try:
                decision = await self.scale()
                delay = min(SCALE_INTERVAL, decision.recheck_after or SCALE_INTERVAL)
            except Exception:  # a bug must not end the loop: held requests would wait in vain
                log.exception("replica scaling round failed")
                delay = SCALE_INTERVAL
            await wait_at_most(self._kick.wait(), delay)

    def start(self) -> None:
        for m in self.members:
            m.start()
        self._task = asyncio.create_task(self.run(), name="remote-ollama-replicas")

    async def stop(self, policy: str = "keep", timeout: float = 30.0) -> None:
        await cancel_and_wait(self._task)
        # the first replica last: it owns the security group the others use
        for m in reversed(self.members):
            await m.stop(policy, timeout)

    # -- /status ---------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        out = self.members[0].status()
        out["phase"] = self.state().phase
        members = []
        for i, m in enumerate(self.members):
            members.append(
                {
                    "index": i,
                    "phase": str(self.phase_of(i)),
                    "instance_status": m.instance_state or "none",
                    "remote_url": m.decision.endpoint if m.decision else None,
                    "in_flight": self.usage(i)[0],
                    "loaded_models": list(m.health.loaded or ()) if m.health else [],
                }
            )
        out["replicas"] = members
        costs = [m.saved.cost for m in self.members if m.saved.cost]
        if costs:  # the endpoint's spend is its replicas' together
            month = max(str(c.get("month")) for c in costs)
            same = [c for c in costs if str(c.get("month")) == month]
            out["cost"] = {
                "month": month,
                "runningHoursThisMonth": round(
                    sum(float(c.get("runningHoursThisMonth") or 0) for c in same), 2
                ),
                "estimatedSpend": round(sum(float(c.get("estimatedSpend") or 0) for c in same), 2),
                "currency": same[0].get("currency"),
            }
        out["ready_replicas"] = len(self.ready())
        out["desired_replicas"] = self.last.desired if self.last else 0
        return out
