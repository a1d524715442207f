"""The round of a resource with one VM (`spec.replicas.max: 1`), and of one whose credentials are
missing, and how either publishes its status. Apart from `handlers.py` so the replicated round's
helpers and the kopf handlers can both use `publish` without importing each other."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from typing import Any, Protocol

import kopf

from remote_ollama.cloud.errors import CapacityError, QuotaError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core.backoff import backoff
from remote_ollama.core.lifecycle import decide
from remote_ollama.core.types import Condition, Decision, Observation
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.spec.model import Spec
from remote_ollama.spec.policy import Policy
from remote_ollama.spec.vocabulary import Phase

from .context import OPERATOR, ResourceContext
from .cost_round import CostRound, prices
from .events import event
from .fallback import Placing, fall_back
from .spend_ledger import LEDGER
from .status import OllamaAnswers, activity_from, credentials_condition, memory_from, status_patch

MAX_BACKOFF = 300.0
CREDENTIALS_RETRY = 5.0  # first wait before reading a missing credentials Secret again, then doubling


class StatusPart(Protocol):
    def add_to(self, patch: dict[str, Any], body: dict[str, Any], now: datetime) -> None: ...


async def publish(
    ctx: ResourceContext,
    body: kopf.Body,
    decision: Decision,
    instance: Any,
    extra: list[Condition],
    now: datetime,
    *more: StatusPart,
) -> None:
    patch = status_patch(dict(body), decision, instance, extra, now)
    patch.pop("error", None)
    for part in more:  # status.cost, status.placement and their conditions
        part.add_to(patch, dict(body), now)
    previous = body.status.get("phase")
    await ctx.patch_status(patch)
    if previous != patch["phase"]:
        kopf.info(body, reason=str(patch["phase"]), message=decision.message)
    if decision.last_wake is not None:
        OPERATOR.metrics.observe_wake(decision.last_wake, replica=0)  # one VM: replica 0


async def blocked_round(
    ctx: ResourceContext, body: kopf.Body, raw: dict[str, Any], spec: Spec, problem: str | None
) -> float:
    """No cloud for these credentials: show why, and read the Secret again later (doubling)."""
    now = OPERATOR.clock()
    memory = memory_from(raw)
    decision = decide(
        Observation(spec, None, activity_from(dict(body.metadata)), memory, now, blocked_reason=problem)
    )
    # Nothing was done, so nothing is remembered: being blocked is not a scale-down (else a new
    # resource whose Secret comes late would wait for a request), and a new one stays Pending.
    phase = Phase.PENDING if memory.phase is Phase.PENDING else decision.phase
    decision = dataclasses.replace(decision, memory=memory, phase=phase, events=())
    await publish(ctx, body, decision, None, [credentials_condition(problem)], now)
    ctx.blocked_rounds += 1
    base = float(os.environ.get("REMOTE_OLLAMA_CREDENTIALS_RETRY", CREDENTIALS_RETRY))
    return backoff(min(ctx.blocked_rounds, 6), base=base, cap=MAX_BACKOFF)


def _reconciler(ctx: ResourceContext, body: kopf.Body, cloud: Cloud) -> Reconciler:
    reconciler = ctx.reconciler(cloud)
    reconciler.vm.notify = ctx.kick.set  # a finished warm-up is looked at now, not at the next poll
    reconciler.warn = lambda reason, message: event(body, reason, message)
    return reconciler


async def one_vm_round(
    ctx: ResourceContext, body: kopf.Body, raw: dict[str, Any], placing: Placing, cloud: Cloud, policy: Policy
) -> float:
    """Look, act and publish for the one VM; returns when to look again."""
    spec = placing.spec
    reconciler = _reconciler(ctx, body, cloud)
    table = prices()
    cap = await LEDGER.before(OPERATOR.api, body, policy, table, OPERATOR.clock())
    look = await reconciler.look(
        spec,
        memory_from(raw),
        activity_from(dict(body.metadata)),
        (raw.get("status") or {}).get("cost"),
        table,
        OPERATOR.clock,
        cap=cap,
    )
    if await LEDGER.after(OPERATOR.api, body, cap, look, table):  # the others stop theirs now too
        OPERATOR.kick_namespace(ctx.namespace)
    instance, decision, now = look.instance, look.decision, look.now
    spent = CostRound(look.meter, look.verdict, table, look.storage)
    generation = body.metadata.get("generation")
    if instance is not None and ctx.access_generation != generation:
        # allowedSourceCIDRs may have changed: the rules follow without re-creating the VM
        await reconciler.ensure_access(spec, instance)
        ctx.access_generation = generation
    for sentence in decision.events:
        event(body, decision.reason, sentence)
    ok = [credentials_condition(None)]

    async def publish_takedown() -> None:
        # Taking the VM down: the proxy must stop sending to it before the call, not after.
        await publish(ctx, body, decision, instance, ok, now, spent, placing)

    try:
        await reconciler.act(look, spec, publish_takedown)
    except (CapacityError, QuotaError) as exc:
        if not placing.base.placements:
            raise
        return await fall_back(ctx, body, placing, exc, reconciler, instance, decision, now)
    answers = OllamaAnswers(reconciler.vm.answered)
    await publish(ctx, body, decision, instance, ok, now, spent, placing, answers)
    await OPERATOR.maybe_sweep_orphans(cloud, body)
    return float(decision.recheck_after)
