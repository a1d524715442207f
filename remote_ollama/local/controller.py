"""Standalone mode: the proxy and the lifecycle loop in one process, state in a JSON file.

`LocalController` is both the proxy's `UpstreamResolver` and its `ActivitySink`: a request that
finds the VM down wakes the loop at once, and the loop tells held requests when the VM is Ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.cloud.port import Cloud
from remote_ollama.core import cost
from remote_ollama.core.types import ActionKind, Activity, Decision, Health, Memory, WakeTiming
from remote_ollama.engine.credentials import CredentialStore
from remote_ollama.engine.reconciler import Look, Reconciler
from remote_ollama.engine.target import Target, instance_name
from remote_ollama.proxy.interfaces import NotReady, RouteKey, Upstream, UpstreamState
from remote_ollama.proxy.runloop import cancel_and_wait, wait_at_most
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import STANDALONE_CLUSTER, VM_TLS_SERVER_NAME
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.sections import format_duration
from remote_ollama.spec.vocabulary import Phase, Reason

from .credential_store import StateFileData
from .failures import CloudFailures
from .leaving import leave
from .settings import StandaloneConfig
from .state_file import StandaloneState, StateFile
from .status import standalone_status

log = logging.getLogger("remote_ollama")

Clock = Callable[[], datetime]


def first_memory(now: datetime, start_down: bool) -> Memory:
    """Standalone starts at zero (on-demand creation): the first request wakes it."""
    return Memory(
        created_at=now,
        scaled_down_at=now if start_down else None,
        phase=Phase.STOPPED if start_down else Phase.PENDING,
    )


def standalone_target(owner_id: str, replica: int | None, security_group: str | None) -> Target:
    """A replica of a replicated endpoint (local/replicas.py) has its index in its name and labels
    and shares the first replica's security group (given), which only the first deletes."""
    return Target(
        owner_uid=owner_id,
        cluster=STANDALONE_CLUSTER,
        name=instance_name(owner_id, *([f"r{replica}"] if replica is not None else [])),
        security_group=security_group or f"remote-ollama-{owner_id}",
        replica=replica,
        owns_group=security_group is None,
    )


class LocalController:
    """The lifecycle loop for one VM, plus the proxy-facing resolver and sink."""

    def __init__(
        self,
        spec: Spec,
        cloud: Cloud,
        state_file: str,
        *,
        ollama_key: str | None = None,
        clock: Clock = utcnow,
        start_down: bool = True,
        max_backoff: float = 60.0,
        replica: int | None = None,
        security_group: str | None = None,
    ):
        self.spec = spec
        self.files = StateFile(state_file)
        self.saved: StandaloneState = self.files.load()
        self.clock = clock
        if self.saved.memory.created_at is None:
            self.saved.memory = first_memory(clock(), start_down)
            self.persist()
        self.replica = replica
        target = standalone_target(self.saved.owner_id, replica, security_group)
        self.reconciler = Reconciler(
            cloud, target, CredentialStore(StateFileData(self)), fixed_api_key=ollama_key
        )
        self.reconciler.vm.notify = self._kick_now  # a finished warm-up is looked at now
        self.activity = Activity(last_activity=self.saved.last_activity)
        self.decision: Decision | None = None
        self.instance_state: str | None = None
        self.health: Health | None = None  # what the VM's Ollama last answered (models, /api/ps)
        self.error: str | None = None
        self._kick = asyncio.Event()
        self._changed = asyncio.Condition()
        self.failures = CloudFailures(max_backoff, clock)
        self._task: asyncio.Task[None] | None = None
        # Upper bound on the wait between rounds (the sandbox uses 1 s so a person sees each step).
        self.poll_cap: float | None = None
        self._upstream_cache: tuple[str, dict[str, str] | None, Upstream] | None = None
        self.prices = cost.prices_from(os.environ)
        self._wake_asked_at = 0.0  # loop time of the last wake request
        self._round_began = 0.0  # loop time the round of the current decision began
        self.setup: dict[str, Any] | None = None  # the VM's setup report of the last round that read one
        self.idle_monitor = True  # the embedded API can turn it off (its own state, not the spec's)
        self.budget_refusal: str | None = None  # set while spec.budget is exceeded: requests fail at once
        self.budget_resets_at: datetime | None = None
        self.on_wake: Callable[[WakeTiming], None] | None = None  # e.g. the wake phase histograms
        # The VM's answers to /api/version and /api/tags, kept in the state file and passed on
        # (to the proxy's polling cache) as they come.
        self.on_answer: Callable[[dict[str, Any]], None] | None = None
        self.reconciler.vm.on_answer = self._answered
        self.on_change: Callable[[], None] | None = None  # after every round (a replica group looks)
        # A replica's own use, read live from the proxy's router: (requests in flight on this VM,
        # requests ever begun on it). Its lifecycle never stops it under a request, and idleness
        # counts from its own last use (local/replicas.py); None: the proxy's touches say it.
        self.usage: Callable[[], tuple[int, int]] | None = None
        # The other replicas' stored meters (status.cost form): the budget is the endpoint's, so
        # their running time and spend count in this replica's verdict too (local/replicas.py).
        self.other_costs: Callable[[], list[Any]] = list
        self._begun = 0

    # -- persistence -----------------------------------------------------------------------------------

    def _answered(self, answered: dict[str, Any]) -> None:
        self.saved.ollama = answered  # written with the round's state
        if self.on_answer is not None:
            self.on_answer(answered)

    def persist(self) -> None:
        """Write the state file, once there is something to keep: a run that never reached the
        cloud (bad port, no request) leaves no file behind."""
        if self.files.path.exists() or self.saved.worth_keeping():
            self.files.save(self.saved)

    # -- UpstreamResolver --------------------------------------------------------------------------------

    def state(self, key: RouteKey | None = None) -> UpstreamState:
        phase = self.decision.phase if self.decision else self.state_phase()
        exists = self.instance_state is not None or self.saved.memory.instance_id is not None
        up = self._upstream()
        detail = self.decision.message if self.decision and up is None else ""
        return UpstreamState(
            phase=str(phase), ready=up is not None, instance=exists, upstream=up, detail=detail
        )

    def state_phase(self) -> Phase:
        return self.saved.memory.phase

    def _upstream(self) -> Upstream | None:
        d = self.decision
        if d is None or d.phase is not Phase.READY or not d.endpoint:
            return None
        # Called several times per proxied request: rebuild only when the endpoint or credentials change.
        cached = self._upstream_cache
        if cached is not None and cached[0] == d.endpoint and cached[1] is self.saved.credentials:
            return cached[2]
        creds = self.files.credentials(self.saved)
        if creds is None or not creds.pinned:
            return None
        up = Upstream(d.endpoint, self.reconciler.vm.ssl_context(creds), creds.api_key, VM_TLS_SERVER_NAME)
        self._upstream_cache = (d.endpoint, self.saved.credentials, up)
        return up

    def refusal(self) -> NotReady | None:
        """Why no wait can help, if so. A round that began after the last wake request saw a
        permanent reason (as the operator's proxy reads it from the status; a newer wake request gets
        a round of its own first: the quota may have been raised meanwhile); so does an unreachable
        cloud API, once it has been so for UNREACHABLE_GRACE; or the VM's setup failed; or the budget refuses."""
        now = asyncio.get_running_loop().time()
        refused = self.failures.refusal(str(self.state_phase()), self._wake_asked_at, now)
        if refused is not None:
            return refused
        d = self.decision  # the VM's setup failed, seen by a round after the last wake request
        if d is not None and d.reason is Reason.SETUP_FAILED and self._round_began >= self._wake_asked_at:
            return NotReady(str(d.phase), d.message, refused=True, reason=Reason.SETUP_FAILED)
        if self.budget_refusal:
            return NotReady(
                str(self.state_phase()),
                self.budget_refusal,
                refused=True,
                retry_at=self.budget_resets_at,
                reason=Reason.BUDGET_EXCEEDED,
            )
        return None

    async def await_ready(self, deadline: float) -> Upstream:
        loop = asyncio.get_running_loop()
        async with self._changed:
            while True:
                up = self._upstream()
                if up is not None:
                    return up
                refused = self.refusal()
                if refused is not None and self.failures.recheck(loop.time()):
                    self._wake_at(self.clock(), loop.time())  # quota raised? a round now, then answer
                elif refused is not None:
                    raise refused
                remaining = deadline - loop.time()
                if remaining <= 0:
                    state = self.state()
                    raise NotReady(state.phase, self.error or state.down_words())
                remaining = self.failures.look_again_in(remaining, loop.time())
                await wait_at_most(self._changed.wait(), remaining)

    # -- ActivitySink ------------------------------------------------------------------------------------

    async def touch(self, at: datetime, in_flight: int = 0) -> None:
        if in_flight != self.activity.in_flight:
            self._kick.set()  # the idle deadline moves: look again now
        self.activity = replace(self.activity, in_flight=in_flight)
        if self.activity.last_activity is None or at > self.activity.last_activity:
            self.activity = replace(self.activity, last_activity=at)
            self.saved.last_activity = at

    async def request_wake(self, at: datetime) -> None:
        self._wake_at(at, asyncio.get_running_loop().time())

    def _wake_at(self, at: datetime, now: float) -> None:
        """A wake request at `at` (loop time `now`): a round of its own runs before any refusal."""
        self.activity = replace(self.activity, wake_requested=at)
        self._wake_asked_at = now
        self._kick.set()

    def note_usage(self, now: datetime) -> None:
        """Take this replica's use from `usage`: in use now, or used since the last look, is activity."""
        if self.usage is None:
            return
        in_flight, begun = self.usage()
        act = replace(self.activity, in_flight=in_flight)
        if (in_flight or begun != self._begun) and (act.last_activity is None or now > act.last_activity):
            act = replace(act, last_activity=now)
            self.saved.last_activity = now
        self._begun = begun
        self.activity = act

    def _kick_now(self) -> None:
        self._kick.set()

    def request_sleep(self) -> None:
        self.activity = replace(self.activity, sleep_requested=self.clock())
        self._kick.set()

    # -- the loop ----------------------------------------------------------------------------------------

    async def step(self) -> Decision:
        """Observe, decide, act: one reconcile round."""
        began = asyncio.get_running_loop().time()
        self.note_usage(self.clock())
        self._take_sleep_request()
        look = await self.reconciler.look(
            self.spec,
            self.saved.memory,
            self.activity,
            self.saved.cost,
            self.prices,
            self.clock,
            idle_monitor=self.idle_monitor,
            other_costs=self.other_costs(),
        )
        decision = look.decision
        self._keep_look(look)
        for sentence in decision.events:  # a warning reason (a failed setup) is logged as one
            (log.warning if decision.reason.warning else log.info)("%s", sentence)
        previous, self.decision = self.decision, decision
        self._round_began = began
        self._keep_setup(previous, decision)
        if decision.phase is not Phase.READY:
            # Taking the VM down (or not up yet): no request may be sent to it from now on,
            # even while the stop/delete call is still under way.
            async with self._changed:
                self._changed.notify_all()
        await self.reconciler.act(look, self.spec)
        self._log_news(previous, decision)
        self.saved.memory = decision.memory
        self.persist()
        self.error = None
        async with self._changed:
            self._changed.notify_all()
        return decision

    def _take_sleep_request(self) -> None:
        asked = self.files.take_sleep_request()
        if asked is None:
            return
        log.info("sleep requested (remote-ollama instance stop): the instance stays stopped until a request")
        # The CLI has stopped the VM already, so nothing is in flight on it any more; the end of
        # a request that was (reported later, debounced) must not undo the sleep either.
        self.activity = replace(self.activity, sleep_requested=max(asked, self.clock()), in_flight=0)

    def _keep_look(self, look: Look) -> None:
        """What the round saw: the VM's health and state, the cost, the budget's verdict."""
        instance, verdict = look.instance, look.verdict
        self.health = look.health
        self.instance_state = instance.state if instance else None
        self.saved.cost = {
            **cost.to_status(look.meter, self.prices),
            **cost.storage_status(look.storage, self.prices),
        }
        self.budget_refusal = verdict.exceeded
        self.budget_resets_at = verdict.resets_at if verdict.exceeded else None

    def _keep_setup(self, previous: Decision | None, decision: Decision) -> None:
        if decision.setup is not None:
            self.setup = decision.setup.to_status()
            if previous is None or previous.message != decision.message:
                log.info("%s", decision.setup.describe())
        elif ActionKind.CREATE_INSTANCE in decision.kinds:
            self.setup = None  # kept after the VM is gone (a failed setup's log) until a new one

    def _log_news(self, previous: Decision | None, decision: Decision) -> None:
        if decision.last_wake is not None:
            log.info("woke in %.1f s", decision.last_wake.seconds)
            if self.on_wake is not None:
                self.on_wake(decision.last_wake)
        if previous is None or previous.phase != decision.phase:
            log.info("phase %s: %s", decision.phase, decision.message)
            if decision.phase is Phase.READY and self.spec.idle.stop_after:
                log.info(
                    "will scale to zero after %s without requests", format_duration(self.spec.idle.stop_after)
                )

    async def run(self) -> None:
        while True:
            self._kick.clear()
            began = asyncio.get_running_loop().time()
            try:
                delay = (await self.step()).recheck_after
                if self.poll_cap is not None:
                    delay = min(delay, self.poll_cap)
                self.failures.cleared()
            except CloudError as exc:
                self.error = str(exc)
                delay = self.failures.failed(exc, began)
                log.warning("cloud error (%s), retrying in %.0f s: %s", exc.reason, delay, exc)
            except Exception as exc:  # a bug must not end the loop: held requests would wait in vain
                self.error = f"internal error: {type(exc).__name__}: {exc}"
                delay = self.failures.crashed()
                log.exception("lifecycle round failed; retrying in %.0f s", delay)
            async with self._changed:
                self._changed.notify_all()
            if self.on_change is not None:
                self.on_change()
            await wait_at_most(self._kick.wait(), delay)

    def status(self) -> dict[str, Any]:
        """The /status document."""
        return standalone_status(self)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="remote-ollama-lifecycle")

    async def stop(self, policy: str = "keep", timeout: float = 30.0) -> None:
        """Stop the loop, then leave the VM as `policy` says, never waiting longer than `timeout`."""
        await cancel_and_wait(self._task)
        try:
            await asyncio.wait_for(leave(self, policy), timeout)
        except (TimeoutError, CloudError) as exc:
            known = self.saved.memory.instance_id
            what = f"instance {known}" if known else "any instance (none is known to exist)"
            log.warning(
                "on exit: could not %s %s (%s); it is left as it is", policy, what, type(exc).__name__
            )
        await self.reconciler.close()


def make_cloud(config: StandaloneConfig) -> AsyncExoscaleCloud:
    return AsyncExoscaleCloud.connect(
        config.api_key, config.api_secret, config.spec.zone, endpoint=config.endpoint
    )
