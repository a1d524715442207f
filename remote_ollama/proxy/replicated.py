"""The operator-mode proxy's resolver for a replicated endpoint (issue 19): routes each request to
the Ready replica `Router.pick` chooses (least outstanding, the request's model loaded first, or
prefixAffinity), holds it while every Ready one is at target and
another is coming, and says how many it holds (the load signal the operator scales on).

With `spec.replicas.max: 1` it is a pass-through to its `LocalResolver` (`base`), which the
resource follower sets as it always did: the one VM behaves exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from remote_ollama.proxy.interfaces import NotReady, RouteKey, Upstream, UpstreamState
from remote_ollama.proxy.local import LocalResolver
from remote_ollama.proxy.routing import Router
from remote_ollama.proxy.runloop import wait_at_most
from remote_ollama.spec.vocabulary import Phase


class ReplicaResolver:
    def __init__(self, router: Router, target: int = 4) -> None:
        self.base = LocalResolver(phase="Pending")  # no replica Ready: down, refusing, or max 1
        self.router = router
        self.target = target  # spec.targetInFlight
        self.max = 1  # spec.replicas.max
        self.desired = 0  # status.desiredReplicas: more than are Ready means one is coming
        self.members: dict[int, Upstream] = {}  # the Ready replicas by index
        # upstream url -> replica index: the members' and those of requests still outstanding (a
        # request outlives its replica's Ready), no more: endpoints of VMs long gone are dropped
        self.index_of: dict[str, int] = {}
        self.waiting = 0  # requests held here for a replica with room
        self.on_load: Callable[[], None] | None = None  # the load changed: write the signal now
        self._changed = asyncio.Event()
        router.on_change = self._wake  # a request ended: a held one may fit now

    def configure(self, target: int, replicas_max: int, routing: str | None = None) -> None:
        """spec.targetInFlight, spec.replicas.max and spec.replicas.routing, as the resource says now."""
        self.target, self.max = target, replicas_max
        if routing:
            self.router.routing = routing
        if replicas_max <= 1 and self.members:
            self.set_members({}, 0)

    def set_members(self, members: Mapping[int, Upstream], desired: int) -> None:
        self.members = dict(members)
        self.desired = desired
        outstanding = self.router.outstanding
        index_of = {url: i for url, i in self.index_of.items() if url in outstanding}
        index_of.update((upstream.url, index) for index, upstream in members.items())
        self.index_of = index_of
        self.router.keep(upstream.url for upstream in members.values())
        self._wake()

    def in_flight(self) -> dict[int, int]:
        """Requests outstanding per replica index (the Lease's count)."""
        out: dict[int, int] = {}
        for url, n in self.router.outstanding.items():
            index = self.index_of.get(url, 0)
            out[index] = out.get(index, 0) + n
        return out

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _signal(self) -> None:
        if self.on_load is not None:
            self.on_load()

    def state(self, key: RouteKey | None = None) -> UpstreamState:
        if self.max <= 1 or not self.members:
            return self.base.state(key)
        ready = list(self.members.values())
        if self.router.total + self.waiting >= self.target * len(ready):
            self._signal()  # at or over what the Ready replicas carry: the operator hears it now
        coming = self.desired > len(ready)
        picked = self.router.pick(ready, self.target, more_coming=coming, key=key)
        return UpstreamState(phase=str(Phase.READY), ready=picked is not None, instance=True, upstream=picked)

    async def await_ready(self, deadline: float) -> Upstream:
        if self.max <= 1:
            return await self.base.await_ready(deadline)
        loop = asyncio.get_running_loop()
        self.waiting += 1
        self._signal()
        try:
            while True:
                picked = self.state().upstream
                if picked is not None:
                    return picked
                refusal = self.base.refused() if not self.members else None
                if refusal is not None:
                    raise refusal
                changed = self._changed
                remaining = deadline - loop.time()
                if remaining <= 0:
                    state = self.state()
                    raise NotReady(state.phase, f"no replica with room in time ({state.down_words()})")
                await wait_at_most(changed.wait(), remaining)
        finally:
            self.waiting -= 1
            self._signal()
