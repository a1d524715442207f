"""In-process standalone world for cloud faults: the Exoscale simulator and a `LocalController`
with fast polls and backoffs, plus a watcher that counts live instances (duplicates, leaks) and
sees the service recover. A world with a `scenario` records its row of the fault summary when it
ends, pass or fail: injected and recovered are measured, not claimed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from summary import record
from waiting import LIFECYCLE, deadline, until

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.local.controller import LocalController
from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.objects import GONE_STATES, Instance
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.sandbox.exoscale.wire import BASE_PATH, match_operation, split_zone
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import LABEL_OWNER
from remote_ollama.spec.sections import IdlePolicy, parse_instance_type
from remote_ollama.spec.vocabulary import Phase

KEY, SECRET = "EXOfaultsuite0000000000", "fault-suite-secret-value-0123456789"
MODEL = "granite3.1-dense:8b"
FAST = SimTimings(boot=0.2, stop=0.1, destroy=0.1, operation=0.02, token=0.001)


def spec(**idle: Any) -> Spec:
    return Spec(
        instance_type=parse_instance_type("gpua5000.small"),
        disk_size=50,
        models=(MODEL,),
        idle=IdlePolicy(**({"stop_after": 600.0, "destroy_after": None} | idle)),
    )


class LateAnswerSimulator(ExoscaleSimulator):
    """Carries a call out, then answers only after the client gave up: the ambiguous failure that
    a retry must not turn into a second VM, security group or rule."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.late: dict[str, tuple[int, float]] = {}  # operation -> (calls left, delay)
        self.delaying = 0  # answers carried out and not yet sent

    def answer_late(self, operation: str, calls: int, delay: float) -> None:
        self.late[operation] = (calls, delay)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await super()._handle(request)
        route = match_operation(request.method, split_zone(request.path)[1][len(BASE_PATH) :])
        left, delay = self.late.get(route[0] if route else "", (0, 0.0))
        if left > 0 and response.status < 400:
            self.late[route[0] if route else ""] = (left - 1, delay)
            self.state.faults.taken.append(time.monotonic())
            self.delaying += 1
            try:
                await asyncio.sleep(delay)  # the fault itself: an answer that comes late
            finally:
                self.delaying -= 1
        return response


@dataclass
class StandaloneWorld:
    sim: ExoscaleSimulator
    cloud: AsyncExoscaleCloud
    controller: LocalController
    state_file: Path
    seen_ids: set[str] = field(default_factory=set)
    max_live: int = 0
    statuses: list[dict[str, Any]] = field(default_factory=list)
    clean_at: list[float] = field(default_factory=list)  # when the status turned Ready or Stopped, no error
    scenario: str = ""  # its row in the fault summary
    note: str = ""
    out_of_band: list[float] = field(default_factory=list)  # faults made by the scenario itself

    @property
    def owner(self) -> str:
        return self.controller.saved.owner_id

    def live(self) -> list[Instance]:
        return [
            i
            for i in list(self.sim.state.instances.values())
            if i.state not in GONE_STATES and i.labels.get(LABEL_OWNER) == self.owner
        ]

    @property
    def duplicates(self) -> int:
        return max(0, self.max_live - 1)

    def leaked(self) -> int:
        """Live instances of ours the state file does not know (nobody would ever delete them)."""
        return sum(1 for i in self.live() if i.id != self.controller.saved.memory.instance_id)

    def inject(self) -> None:
        """Note a fault the scenario made itself (out of band: a vanished VM, the API offline)."""
        self.out_of_band.append(time.monotonic())

    def faults(self) -> list[float]:
        """When each fault took effect: the simulator's injected failures, slow answers and capacity
        refusals, and the scenario's own."""
        return sorted([*self.sim.state.faults.taken, *self.out_of_band])

    def recovered(self) -> int:
        """Faults after which the status turned clean again (Ready or Stopped, no error)."""
        last = max(self.clean_at, default=float("-inf"))
        return sum(1 for t in self.faults() if t < last)

    def sample(self) -> None:
        live = self.live()
        self.seen_ids.update(i.id for i in live)
        self.max_live = max(self.max_live, len(live))
        status = self.controller.status()
        if not self.statuses or self.statuses[-1] != status:
            self.statuses.append(status)
            if "error" not in status and status.get("phase") in (Phase.READY, Phase.STOPPED):
                self.clean_at.append(time.monotonic())

    def record(self) -> None:
        if self.scenario:
            record(
                self.scenario,
                injected=len(self.faults()),
                recovered=self.recovered(),
                leaked=self.leaked(),
                duplicates=self.duplicates,
                note=self.note,
            )

    async def watch(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.005)

    async def wake(self) -> None:
        await self.controller.request_wake(datetime.now(UTC))

    async def ready(self, timeout: float = LIFECYCLE) -> Upstream:
        loop = asyncio.get_running_loop()
        return await self.controller.await_ready(loop.time() + deadline(timeout))

    async def instance_in(self, state: str, timeout: float = LIFECYCLE) -> Instance:
        found: list[Instance] = await until(
            lambda: [i for i in self.live() if i.state == state], timeout, f"an instance {state}"
        )
        return found[0]

    async def none_live(self, timeout: float = LIFECYCLE) -> None:
        await until(lambda: not self.live(), timeout, "no live instance")

    async def phase(self, phase: Phase, timeout: float = LIFECYCLE) -> None:
        await until(lambda: self.controller.state().phase == str(phase), timeout, f"phase {phase}")

    async def sleep_now(self, timeout: float = LIFECYCLE) -> None:
        self.controller.request_sleep()
        await until(
            lambda: self.live() and all(i.state == "stopped" for i in self.live()), timeout, "stopped"
        )


@contextlib.asynccontextmanager
async def standalone_world(
    tmp_path: Path,
    *,
    the_spec: Spec | None = None,
    timeout: float = 2.0,
    retries: int = 5,
    max_backoff: float = 0.2,
    timings: SimTimings = FAST,
    sim_class: type[ExoscaleSimulator] = ExoscaleSimulator,
    **sim_kw: Any,
) -> AsyncIterator[StandaloneWorld]:
    """A running controller (started at zero) against a fresh simulator; torn down with the loop."""
    async with sim_class({KEY: SECRET}, timings=timings, **sim_kw) as sim:
        cloud = AsyncExoscaleCloud.connect(
            KEY,
            SECRET,
            sim.zone,
            endpoint=sim.url,
            poll_interval=0.05,
            backoff_base=0.01,
            timeout=timeout,
            retries=retries,
        )
        state_file = tmp_path / "state.json"
        controller = LocalController(the_spec or spec(), cloud, str(state_file), max_backoff=max_backoff)
        controller.poll_cap = 0.05
        w = StandaloneWorld(sim, cloud, controller, state_file)
        watcher = asyncio.create_task(w.watch())
        controller.start()
        try:
            yield w
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            w.sample()
            w.record()
            sim.clear_faults()
            await controller.stop("keep", timeout=deadline(30))


# Every Exoscale operation the standalone engine calls over a full cycle (create, stop and bake the
# template, start, delete).
ENGINE_OPERATIONS = (
    "add-rule-to-security-group",
    "create-instance",
    "create-security-group",
    "create-snapshot",
    "delete-instance",
    "get-template",
    "get-instance",
    "get-operation",
    "get-quota",
    "get-security-group",
    "list-instance-types",
    "list-instances",
    "list-security-groups",
    "list-templates",
    "promote-snapshot-to-template",
    "start-instance",
    "stop-instance",
)


async def full_cycle(w: StandaloneWorld, timeout: float = LIFECYCLE) -> None:
    """Wake from zero, scale to zero by stop, wake the stopped VM, scale to zero by delete."""
    await w.wake()
    await w.ready(timeout)
    await w.sleep_now(timeout)
    await w.wake()
    await w.ready(timeout)
    w.controller.spec = spec(destroy_after=0.0)
    w.controller.request_sleep()
    await w.none_live(timeout)
    await w.phase(Phase.STOPPED, timeout)
