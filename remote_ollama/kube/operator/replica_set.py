"""The operator's replicated endpoint (spec.replicas.max > 1, issue 19): one VM per replica index.

Each replica is today's one VM: its own `Reconciler` (own credentials and instance record in its
own Secret pair, `members.py` keeps its memory in status.replicas[i]), stopped, woken and destroyed
by the lifecycle engine as one VM is; the replicas share replica 0's security group. Which replicas
run is `core.replicas.decide_replicas` on the load the proxies report in their Leases
(`kube/signal.py`); the engine carries it out through each replica's wake and sleep requests, so a
replica with a request in flight is never stopped (its in-flight count keeps it up).
`spec.replicas.max: 1` never comes here: handlers.reconcile runs the one VM as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import kopf

from remote_ollama.cloud.errors import CapacityError, CloudError, QuotaError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core import cost, namespace_spend, placement
from remote_ollama.core.backoff import backoff
from remote_ollama.core.replicas import ScaleDecision, ScaleInput, decide_replicas, last_replica_floor
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.engine.target import Target, instance_name
from remote_ollama.kube.signal import Signal, read_signal
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import SIGNAL_COMPONENT, legacy_security_group_name, security_group_name
from remote_ollama.spec.policy import Policy
from remote_ollama.spec.vocabulary import Reason

from . import children
from .context import OPERATOR, ResourceContext, credential_store, retire
from .cost_round import prices
from .dropped_zone import leave_dropped_zone
from .events import event
from .fallback import move_on
from .members import UP, Member, items_of, member_from
from .recorded_placement import recorded
from .replica_placement import ZoneClouds, placement_of
from .replica_status import Round, endpoint_budget, publish
from .retiring import ask_to_stop, retire_above
from .scaler_memory import restored_memory
from .spend_ledger import LEDGER

log = logging.getLogger("remote_ollama.kube.operator")

REPLICA_BACKOFF = 300.0  # the longest wait before acting again on a replica the cloud refused
MOVE_AGAIN = 1.0  # seconds before a replica refused for capacity tries its next placement
SIGNAL_LOOK = 5.0  # while replicas run, look at least this often (a dead proxy's Lease expires silently)
INSTANCE_LABEL = "app.kubernetes.io/instance"


def replica_instance_name(namespace: str, name: str, index: int) -> str:
    """Replica 0 has the one VM's name; replica i its `-r<i>` kept whatever the length (63 at most)."""
    base = instance_name(namespace, name)
    suffix = f"-r{index}" if index else ""
    return base[: 63 - len(suffix)].rstrip("-") + suffix


def member_reconciler(ctx: ResourceContext, cloud: Cloud, index: int) -> Reconciler:
    """Replica `index`'s reconciler (kept across rounds; a new one when its cloud client changes:
    other credentials, or another zone of spec.placements). Its Secret pair stays the same, so
    the instance it records is the only one it acts on, in whichever zone."""
    old = ctx.members.get(index)
    if old is not None and old.cloud is not cloud:
        retire(old)
        del ctx.members[index]
    if index not in ctx.members:
        target = Target(
            owner_uid=ctx.uid,
            cluster=OPERATOR.cluster_id,
            name=replica_instance_name(ctx.namespace, ctx.name, index),
            security_group=security_group_name(OPERATOR.cluster_id, ctx.uid),
            legacy_security_group=legacy_security_group_name(ctx.namespace, ctx.name) if index == 0 else None,
            mark_group=True,
            replica=index,
            owns_group=index == 0,
        )
        ctx.members[index] = Reconciler(cloud, target, credential_store(ctx.body, index))
    return ctx.members[index]


def scale(
    spec: Spec, members: list[Member], signal: Signal, ctx: ResourceContext, budget: cost.BudgetVerdict
) -> ScaleDecision:
    """This round's desired replicas, from the Leases' load (pure apart from the memory kept in ctx);
    over budget (spec.budget or the namespace's spend cap), none is started, so no request is held
    for a replica that would be refused, and the idle ones stop (a busy one finishes its requests first)."""
    now = OPERATOR.clock()
    running = frozenset(
        m.index
        for m in members
        if m.up
        or (m.wake is not None and (m.memory.scaled_down_at is None or m.wake > m.memory.scaled_down_at))
    )
    in_flight = {i: signal.in_flight.get(i, 0) for i in running}
    uses = [signal.last_activity.get(m.index) or m.last_activity for m in members] + [
        m.memory.ready_at for m in members
    ]
    floor = last_replica_floor(
        spec,
        now,
        running=bool(running),
        busy=bool(sum(signal.in_flight.values()) or signal.held),
        last_use=max((u for u in uses if u is not None), default=None),
    )
    decision = decide_replicas(
        ScaleInput(
            spec.replicas,
            spec.target_in_flight,
            now,
            running,
            in_flight,
            signal.held,
            floor,
            ceiling=0 if budget.exceeded else None,
            memory=ctx.scale_memory,
        )
    )
    ctx.scale_memory = decision.memory
    return decision


def ledger_body(body: kopf.Body, index: int) -> dict[str, Any]:
    """Replica `index` as the namespace spend ledger sees it: the resource under its own key
    (`<uid>.r<i>`; replica 0 the resource's uid), as each key meters one VM."""
    raw = dict(body)
    uid = namespace_spend.replica_key(str(body.metadata.uid), index)
    return {**raw, "metadata": {**dict(body.metadata), "uid": uid}}


async def reconcile_replicas(
    ctx: ResourceContext, body: kopf.Body, spec: Spec, cloud: Cloud, policy: Policy
) -> float:
    """One round for a replicated resource (or one whose lowered max leaves replicas to retire);
    returns when to look again. `spec` is as written (each replica acts on its own placement),
    `cloud` the client of replica 0's zone."""
    raw = dict(body)
    now = OPERATOR.clock()
    top = spec.replicas.max
    signal = await read_signal(OPERATOR.api, ctx.namespace, ctx.name, now)
    items = items_of(raw)
    count = max([top] + [i + 1 for i in set(items) | ctx.replicas_found])  # found_replicas.py
    members = [
        dataclasses.replace(
            member_from(raw, i, items.get(i)), placement=placement_of(spec, raw, i, items.get(i))
        )
        for i in range(min(count, 64))
    ]
    members = [  # each in its recorded instance's zone, whatever status says
        dataclasses.replace(m, placement=await recorded(ctx, body, spec, m.placement, m.index))
        for m in members
    ]
    if not ctx.scale_restored:  # the first round of this process: the memory the last one left
        ctx.scale_memory = restored_memory(ctx.fresh.read(raw), spec.replicas, spec.target_in_flight, now)
        ctx.scale_restored = True
    table = prices()
    # the namespace's spend cap, if the policy sets one: over it, no replica starts (and all stop)
    cap = await LEDGER.cap(OPERATOR.api, ctx.namespace, ctx.uid, policy, table, now)
    budget = cost.stricter(endpoint_budget(spec, [cost.from_status(m.cost) for m in members], table), cap)
    decision = scale(spec, [m for m in members if m.index < top], signal, ctx, budget)
    if decision.start or decision.stop:
        event(body, decision.reason, decision.message)
    members = [
        dataclasses.replace(m, wake=now, sleep=None)
        if m.index in decision.start
        else dataclasses.replace(m, sleep=now)
        if m.index in decision.stop
        else m
        for m in members
    ]
    members = ask_to_stop(members, top, signal.in_flight, now)
    clouds = ZoneClouds(ctx, spec, cloud)
    for m in members:  # a replica whose recorded zone the spec dropped moves first (dropped_zone.py)
        zone = placement.current(spec, m.placement).zone
        r = member_reconciler(ctx, await clouds.in_zone(zone), m.index)
        wait = await leave_dropped_zone(ctx, body, spec, r, zone, signal.in_flight.get(m.index, 0))
        if wait is not None:
            return wait
    rounds = [await look_at(ctx, body, spec, clouds, policy, m, signal, table) for m in members]
    generation = body.metadata.get("generation")
    first = rounds[0]
    if ctx.access_generation != generation and first.look.instance is not None:
        await first.reconciler.ensure_access(spec, first.look.instance)  # the replicas' one group
        ctx.access_generation = generation
    if any(r.look.takes_down for r in rounds):  # the proxies stop sending to it before it goes
        await publish(ctx, body, spec, rounds, decision, table, cap)
    await act(ctx, body, spec, rounds)
    rounds = await retire_above(ctx, body, rounds, top)
    await publish(ctx, body, spec, rounds, decision, table, cap)
    for zone_cloud in clouds.clouds.values():  # every zone a replica is in is swept
        await OPERATOR.maybe_sweep_orphans(zone_cloud, body)
    rechecks = [float(r.look.decision.recheck_after) for r in rounds]
    if any(r.moved for r in rounds):
        rechecks.append(MOVE_AGAIN)  # the next placement is tried at once, as with one VM
    if decision.recheck_after is not None:
        rechecks.append(decision.recheck_after)
    if any(r.member.up for r in rounds) or signal.proxies or len(rounds) > top:
        rechecks.append(SIGNAL_LOOK)
    return max(0.5, min(rechecks))


async def look_at(
    ctx: ResourceContext,
    body: kopf.Body,
    base: Spec,
    clouds: ZoneClouds,
    policy: Policy,
    m: Member,
    signal: Signal,
    table: cost.PriceTable,
) -> Round:
    """Replica `m`'s look: its lifecycle decision on its own memory, activity and spend cap, in
    its own placement's zone and instance type."""
    spec = placement.current(base, m.placement)
    reconciler = member_reconciler(ctx, await clouds.in_zone(spec.zone), m.index)
    reconciler.vm.notify = ctx.kick.set
    reconciler.warn = lambda reason, message: event(body, reason, message)
    activity = m.activity(signal.in_flight.get(m.index, 0), signal.last_activity.get(m.index))
    ledger = ledger_body(body, m.index)  # the namespace's monthly spend cap, if the policy sets one
    cap = await LEDGER.before(OPERATOR.api, ledger, policy, table, OPERATOR.clock())
    look = await reconciler.look(
        spec, m.memory, activity, m.cost, table, OPERATOR.clock, idle_monitor=False, cap=cap
    )
    if await LEDGER.after(OPERATOR.api, ledger, cap, look, table):
        OPERATOR.kick_namespace(ctx.namespace)
    for sentence in look.decision.events:
        event(body, look.decision.reason, f"replica {m.index}: {sentence}")
    return Round(m, reconciler, look, activity, placement=m.placement)


async def act(ctx: ResourceContext, body: kopf.Body, base: Spec, rounds: list[Round]) -> None:
    """Carry out each replica's decision in its placement. A capacity or quota refusal with
    spec.placements moves that replica to the next placement (tried at once, as the one VM does);
    otherwise a replica the cloud refuses (a GPU quota, no capacity, an API error, every placement
    tried) waits its own backoff while the others serve; a refusal retrying cannot fix is asked
    again at once on a newer wake request (the user may have raised the quota, as with one VM). Only
    when none is Ready or on its way up does the error become the resource's (Ready=False with its
    reason, which the proxies answer at once), also in the rounds its backoff skips."""
    loop = asyncio.get_running_loop()
    failed: list[CloudError] = []
    for r in rounds:
        index = r.member.index
        count, retry_at = ctx.member_failures.get(index, (0, 0.0))
        refused = ctx.member_refused.get(index)
        asked_again = refused is not None and refused[1] != ctx.wake_answered
        if count and loop.time() < retry_at and r.look.decision.actions and not asked_again:
            r.error = ctx.member_errors.get(index)
            if refused is not None:
                failed.append(refused[0])
            continue
        try:
            await r.reconciler.act(r.look, placement.current(base, r.placement))
        except CloudError as exc:
            if await moved_on(body, base, r, exc):
                ctx.member_failures.pop(index, None)
                ctx.member_refused.pop(index, None)
                continue
            failed.append(exc)
            r.error = f"{exc.reason}: {exc.message}"[:1024]
            ctx.member_failures[index] = (count + 1, loop.time() + backoff(count + 1, cap=REPLICA_BACKOFF))
            if ctx.member_errors.get(index) != r.error:
                event(body, exc.reason, f"replica {index}: {exc.message}")
            ctx.member_errors[index] = r.error
            if not exc.retryable:
                ctx.member_refused[index] = (exc, ctx.wake_answered)
        else:
            ctx.member_failures.pop(index, None)
            ctx.member_errors.pop(index, None)
            ctx.member_refused.pop(index, None)
    if failed and not any(r.look.decision.phase in UP and not r.error for r in rounds):
        raise failed[0]  # none serves or is on its way: the resource's error, as with one VM


async def moved_on(body: kopf.Body, base: Spec, r: Round, exc: CloudError) -> bool:
    """A capacity or quota refusal with spec.placements: the replica takes the next placement
    (`fallback.move_on`, the one VM's decision). False when there is none left to try in this
    pass, or the refusal is another kind: the replica's backoff applies."""
    if not base.placements or not isinstance(exc, CapacityError | QuotaError):
        return False
    step = await move_on(base, r.placement, exc, r.reconciler, r.look.instance, r.look.decision)
    event(body, Reason.CAPACITY_UNAVAILABLE, f"replica {r.member.index}: {step.message}")
    r.placement, r.moved = step.state, not step.exhausted
    # on its way in the next placement: not a refused replica the proxies stop holding requests for
    r.look = dataclasses.replace(r.look, decision=dataclasses.replace(r.look.decision, message=step.message))
    return r.moved


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels={children.COMPONENT_LABEL: SIGNAL_COMPONENT})
async def load_signal(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A proxy's Lease changed its counts (or went): its resource's round runs now (scale up within
    a second of the signal). Renewals that change nothing do not wake it."""
    resource = (body.metadata.labels or {}).get(INSTANCE_LABEL)
    ann = body.metadata.annotations or {}
    key = (
        type == "DELETED",
        tuple(
            sorted(
                (k, v)
                for k, v in ann.items()
                if k.startswith("remoteollama.dev/") and "last-activity" not in k
            )
        ),
    )
    for ctx in list(OPERATOR.contexts.values()):
        mine = ctx.namespace == body.metadata.namespace and ctx.name == resource
        if mine and ctx.signal_seen.get(str(body.metadata.name)) != key:
            ctx.signal_seen[str(body.metadata.name)] = key
            ctx.kick.set()
