"""Replicas at or above a lowered `spec.replicas.max` (issue 19): each is asked to stop once no
request is in flight to it (never before: the proxies' Leases count them, and a proxy keeps its
Lease while the status lists such a replica), and once stopped its VM and its Secret pair are
deleted and its record leaves status.replicas. Replica 0 is never one of them (max is at least 1),
so lowering max to 1 keeps its VM and its Secrets; then the one-VM round takes over again. Which
replicas there are is not taken from status alone: found_replicas.py finds those status lost."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

import kopf

from remote_ollama.kube.api import path_for
from remote_ollama.spec.names import replica_secret_suffix, secret_name, vm_secret_name
from remote_ollama.spec.vocabulary import Phase, Reason

from .context import OPERATOR, ResourceContext, retire
from .events import event
from .members import Member
from .ownership import delete_owned
from .replica_status import Round


def ask_to_stop(
    members: list[Member], replicas_max: int, in_flight: Mapping[int, int], now: datetime
) -> list[Member]:
    """Members above the limit are no longer woken, and asked to stop while none is in flight."""
    return [
        dataclasses.replace(m, wake=None, sleep=m.sleep if in_flight.get(m.index, 0) else now)
        if m.index >= replicas_max
        else m
        for m in members
    ]


def stopped(r: Round) -> bool:
    """Stopped (or gone) with nothing in flight: the VM can be deleted."""
    instance = r.look.instance
    return (
        r.activity.in_flight == 0
        and r.look.decision.phase is Phase.STOPPED
        and not r.look.decision.actions
        and (instance is None or instance.state == "stopped")
    )


async def remove(ctx: ResourceContext, body: kopf.Body, r: Round) -> None:
    """Delete the replica's VM and its Secret pair, and forget its reconciler."""
    index = r.member.index
    instance_id = r.look.decision.memory.instance_id
    if instance_id:
        await r.reconciler.delete_instance(r.look.instance, instance_id)
    for name in (secret_name(ctx.name), vm_secret_name(ctx.name)):
        path = path_for("v1", "secrets", ctx.namespace, name + replica_secret_suffix(index))
        await delete_owned(OPERATOR.api, path, ctx.uid)
    old = ctx.members.pop(index, None)
    if old is not None:
        retire(old)
    ctx.member_failures.pop(index, None)
    ctx.member_errors.pop(index, None)
    ctx.member_refused.pop(index, None)
    ctx.replicas_found.discard(index)
    event(body, Reason.SCALING_DOWN, f"replica {index}: above spec.replicas.max; VM and Secrets deleted")


async def retire_above(
    ctx: ResourceContext, body: kopf.Body, rounds: list[Round], replicas_max: int
) -> list[Round]:
    """The rounds left once the stopped replicas above the limit are deleted."""
    kept = []
    for r in rounds:
        if r.member.index >= replicas_max and stopped(r):
            await remove(ctx, body, r)
        else:
            kept.append(r)
    return kept
