"""A replicated resource's status (`spec.replicas.max > 1`): the replicas one by one in
status.replicas, and together as one endpoint (phase, message, conditions, cost)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import kopf

from remote_ollama.core import cost, placement
from remote_ollama.core.placement import PlacementState
from remote_ollama.core.replicas import ScaleDecision
from remote_ollama.core.types import Activity
from remote_ollama.engine.reconciler import Look, Reconciler
from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Phase

from . import replica_placement
from .context import OPERATOR, ResourceContext
from .cost_round import CostRound
from .members import UP, Member, aggregate_phase, items_of, member_item
from .scaler_memory import scaler_status
from .status import OllamaAnswers, credentials_condition, status_patch

JSON = dict[str, Any]


@dataclasses.dataclass
class Round:
    member: Member
    reconciler: Reconciler
    look: Look
    activity: Activity  # what the round told the lifecycle (in flight, last use, the scaler's asks)
    error: str | None = None  # why acting on this replica failed (a quota, capacity, an API error)
    placement: PlacementState = dataclasses.field(
        default_factory=PlacementState
    )  # where it is, or moves to after a refusal
    moved: bool = False  # refused for capacity or quota this round: it tries the next placement


def endpoint_budget(spec: Spec, meters: list[cost.CostMeter], table: cost.PriceTable) -> cost.BudgetVerdict:
    """spec.budget over the replicas together: their hours today and spend this month, added up."""
    now = OPERATOR.clock()
    caps = spec.budget.max_running_hours_per_day, spec.budget.max_monthly_spend
    return cost.budget_verdict(cost.combined(meters, now), *caps, table, now)


def representative(rounds: list[Round]) -> Round:
    """The replica the resource's phase and message speak of: a Ready one, else one on its way up."""
    return next((r for r in rounds if r.look.decision.phase is Phase.READY), None) or next(
        (r for r in rounds if r.look.decision.phase in (Phase.STARTING, Phase.PROVISIONING, Phase.PENDING)),
        rounds[0],
    )


def base_patch(raw: JSON, rep: Round, zero: Round, now: datetime) -> JSON:
    """The one-VM status of the representative, with replica 0's VM as the resource's VM."""
    extra = [credentials_condition(None)]
    patch = status_patch(raw, rep.look.decision, rep.look.instance, extra, now)
    own = status_patch(raw, zero.look.decision, zero.look.instance, extra, now)
    for key in ("lifecycle", "instance", "setup"):  # replica 0 is the VM of `max: 1`
        if key in own:
            patch[key] = own[key]
        else:
            patch.pop(key, None)
    return patch


def settled(r: Round) -> PlacementState:
    """The replica's placement after this round (a VM running on the preferred one clears it)."""
    return placement.settled(r.placement, r.look.instance is not None and r.look.instance.state == "running")


def replica_items(raw: JSON, spec: Spec, rounds: list[Round], table: cost.PriceTable) -> list[JSON]:
    """status.replicas after this round, each with its own meter, its placement (spec.placements)
    and the cloud's refusal if any."""
    previous = items_of(raw)
    items = []
    for r in rounds:
        loaded = tuple(r.look.health.loaded) if r.look.health and r.look.health.loaded is not None else None
        spent = cost.to_status(r.look.meter, table)  # the replica's own meter, kept with it
        item = member_item(
            r.member,
            r.look.decision,
            r.look.instance,
            r.activity,
            spent,
            loaded,
            previous.get(r.member.index),
        )
        if r.error:
            item["message"] = r.error
        if spec.placements:
            item["placement"] = placement.to_status(spec, settled(r))
        items.append(item)
    return items


def counts(rounds: list[Round], scaled: ScaleDecision) -> tuple[int, int, int]:
    """(ready, desired, starting); a replica the cloud refuses is not coming, so the proxies must
    not hold requests for it."""
    phases = [r.look.decision.phase for r in rounds]
    ready = sum(1 for p in phases if p is Phase.READY)
    refused = sum(1 for r in rounds if r.error and r.look.decision.phase is not Phase.READY)
    starting = sum(1 for p in phases if p in UP) - ready
    return ready, max(ready, scaled.desired - refused), starting


async def publish(
    ctx: ResourceContext,
    body: kopf.Body,
    spec: Spec,
    rounds: list[Round],
    scaled: ScaleDecision,
    table: cost.PriceTable,
    cap: cost.BudgetVerdict | None = None,
) -> None:
    """The resource's status: the replicas one by one, and as one endpoint (phase, conditions, cost);
    `cap`: the namespace's spend cap this round (over it, BudgetExceeded and Ready say so)."""
    raw = dict(body)
    now = OPERATOR.clock()
    serving = [r for r in rounds if r.member.index < spec.replicas.max]  # not those being retired
    rep = representative(serving)
    patch = base_patch(raw, rep, rounds[0], now)
    ready, desired, starting = counts(serving, scaled)
    patch["phase"] = str(aggregate_phase([r.look.decision.phase for r in serving]))
    patch["message"] = (
        f"{ready}/{desired} replicas Ready ({scaled.message}); replica {rep.member.index}: {rep.look.decision.message}"
    )
    patch["replicas"] = replica_items(raw, spec, rounds, table)
    patch["scaler"] = scaler_status(ctx.scale_memory)  # for the next process (scaler_memory.py)
    placed = [(r.member.index, settled(r)) for r in serving]
    replica_placement.add_to(patch, raw, spec, placed, now)
    patch |= {"readyReplicas": ready, "desiredReplicas": desired, "replicaSummary": f"{ready}/{desired}"}
    # status.cost is the replicas' meters together, and BudgetExceeded says whether they are over
    # spec.budget together or their namespace over its cap (the proxies refuse requests on it)
    meters = [r.look.meter for r in rounds]
    budget = cost.stricter(endpoint_budget(spec, meters, table), cap)
    CostRound(cost.combined(meters, now), budget, table, rep.look.storage).add_to(patch, raw, now)
    patch.pop("error", None)
    OllamaAnswers(rep.reconciler.vm.answered).add_to(patch, raw, now)
    by_state = {"ready": ready, "starting": starting, "stopped": len(serving) - ready - starting}
    OPERATOR.replica_metrics.observe(by_state, desired, ctx.namespace, ctx.name)
    before = body.status.get("phase")
    await ctx.patch_status(patch)
    if before != patch["phase"]:
        kopf.info(body, reason=str(patch["phase"]), message=patch["message"][:1024])
    for r in rounds:
        if r.look.decision.last_wake is not None:
            OPERATOR.metrics.observe_wake(r.look.decision.last_wake, r.member.index)
