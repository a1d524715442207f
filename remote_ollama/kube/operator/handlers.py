"""kopf handlers: one lifecycle daemon per RemoteOllama, woken at once by annotation changes.

The daemon runs the same observe -> `lifecycle.decide` -> act loop as standalone mode, with its
memory in `status.lifecycle`. Cloud waits never block other resources: each resource has its own
daemon and every SDK call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import Any

import kopf

from remote_ollama.cloud.errors import CloudError, CredentialsError
from remote_ollama.core.backoff import backoff
from remote_ollama.kube.api import KubeError
from remote_ollama.spec.model import SpecError
from remote_ollama.spec.names import (
    ANN_ABANDON_CLOUD_OBJECTS,
    ANN_IN_FLIGHT,
    ANN_SLEEP_REQUESTED,
    ANN_WAKE_REQUESTED,
    FINALIZER,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    security_group_name,
)
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.policy import Policy
from remote_ollama.spec.schedule import utcnow
from remote_ollama.spec.vocabulary import ConditionType, Phase, Reason

from . import children
from .context import OPERATOR, ResourceContext
from .dropped_zone import leave_dropped_zone
from .events import event
from .fallback import Placing, placing_for, zones_used
from .found_replicas import beyond, find_replicas
from .one_vm import MAX_BACKOFF, blocked_round, one_vm_round
from .ownership import NameConflict, converge_children, remove_children
from .policy_source import SOURCE as POLICY
from .recorded_placement import recorded, recorded_zones
from .replica_set import reconcile_replicas
from .status import activity_from, malformed_annotations, wake_request

log = logging.getLogger("remote_ollama.kube.operator")

# seconds between drift repairs of the proxy's objects (deletions are repaired at once, see below)
CHILDREN_EVERY = 300.0  # default of $REMOTE_OLLAMA_CHILDREN_INTERVAL


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.watching.client_timeout = 300
    settings.watching.server_timeout = 240
    settings.posting.level = logging.INFO
    settings.peering.name = "remote-ollama"
    settings.peering.mandatory = False
    await OPERATOR.start()


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await OPERATOR.stop()


def _ctx(body: kopf.Body) -> ResourceContext:
    return OPERATOR.context(body)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def kick_on_change(body: kopf.Body, type: str | None, **_: Any) -> None:
    """React within a second to a wake/sleep annotation or a spec change (not to our own status writes)."""
    if type == "DELETED":
        await OPERATOR.forget(body.metadata.uid)
        return
    ctx = _ctx(body)
    ann = body.metadata.annotations
    key = (
        ann.get(ANN_WAKE_REQUESTED),
        ann.get(ANN_SLEEP_REQUESTED),
        ann.get(ANN_IN_FLIGHT),  # requests ending: the idle deadline moves
        body.metadata.get("generation"),
    )
    if key != ctx.seen:
        ctx.seen = key
        ctx.kick.set()


CHILD_SELECTOR = {children.MANAGED_BY_LABEL: children.MANAGED_BY_VALUE}


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_SELECTOR)
@kopf.on.event("", "v1", "services", labels=CHILD_SELECTOR)
async def repair_deleted_child(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A deleted proxy Deployment or Service is re-created now, not at the next periodic repair."""
    if type != "DELETED":
        return
    for ref in body.metadata.get("ownerReferences") or []:
        ctx = OPERATOR.contexts.get(ref.get("uid"))
        if ctx is not None and ref.get("kind") == KIND:
            ctx.children_at = -1e9
            ctx.kick.set()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def lifecycle(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    ctx = _ctx(body)
    failures = 0
    while not stopped:
        ctx.kick.clear()
        try:
            delay = await reconcile(ctx, body)
            failures = 0
        except (CloudError, KubeError, OSError) as exc:
            failures += 1
            delay = backoff(failures, cap=MAX_BACKOFF)
            log.warning("%s/%s: %s: %s", body.metadata.namespace, body.metadata.name, type(exc).__name__, exc)
            await report_error(ctx, body, exc, delay)
        await pause(ctx, body, stopped, delay)


async def pause(ctx: ResourceContext, body: kopf.Body, stopped: kopf.DaemonStopped, delay: float) -> None:
    """Sleep until the next round, a kick or the stop; re-apply the children when their repair is due."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    while not stopped and not ctx.kick.is_set() and loop.time() < deadline:
        children_due = ctx.children_at + children_interval()
        kick = asyncio.ensure_future(ctx.kick.wait())
        stop = asyncio.ensure_future(stopped.wait())
        try:
            timeout = max(0.0, min(deadline, children_due) - loop.time())
            await asyncio.wait({kick, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kick.cancel()
            stop.cancel()
        if not stopped and not ctx.kick.is_set() and loop.time() >= children_due:
            try:
                await ensure_children(ctx, body, spec_changed=False)
            except (KubeError, OSError) as exc:
                log.warning("%s/%s: repairing children: %s", ctx.namespace, ctx.name, exc)
                ctx.children_at = loop.time()


async def refuse(ctx: ResourceContext, body: kopf.Body, reason: Reason, message: str) -> float:
    """Ready=False with the vocabulary's (permanent) reason and a Warning Event; nothing is asked of
    the cloud. The proxy refuses requests at once on it."""
    await ctx.patch_status(
        {"phase": str(Phase.FAILED), "message": message, "conditions": _ready_false(body, reason, message)}
    )
    event(body, reason, message)
    return MAX_BACKOFF


async def reconcile(ctx: ResourceContext, body: kopf.Body) -> float:
    """One round for one resource; returns when to look again."""
    raw = ctx.fresh.read(dict(body))  # not older than our last status patch
    ctx.wake_answered = wake_request(dict(body.metadata))  # this round's status answers it
    admitted = await admit(ctx, body, raw)
    if isinstance(admitted, float):
        return admitted
    placing, policy = admitted
    spec = placing.spec  # zone and instance type of the current placement (spec.placements)
    warn_malformed(ctx, body)
    await ensure_children(ctx, body, spec_changed=ctx.children_generation != body.metadata.get("generation"))
    problem, cloud = await ctx.cloud_for(spec)
    if cloud is None:
        return await blocked_round(ctx, body, raw, spec, problem)
    ctx.blocked_rounds = 0
    if spec.replicas.max == 1:  # the recorded VM's zone dropped from the spec: it moves first
        in_flight = activity_from(dict(body.metadata)).in_flight
        wait = await leave_dropped_zone(ctx, body, placing.base, ctx.reconciler(cloud), spec.zone, in_flight)
        if wait is not None:
            return wait
    await find_replicas(ctx, body, placing.base, cloud)  # not from status alone, which may have lost some
    if spec.replicas.max > 1 or beyond(ctx, raw, spec.replicas.max):
        return await reconcile_replicas(ctx, body, placing.base, cloud, policy)
    return await one_vm_round(ctx, body, raw, placing, cloud, policy)


async def admit(ctx: ResourceContext, body: kopf.Body, raw: dict[str, Any]) -> tuple[Placing, Policy] | float:
    """The spec parsed and inside the platform team's policy, or the refusal's delay."""
    try:
        placing = placing_for(parse_spec(dict(body.spec)), raw)
    except SpecError as exc:
        return await refuse(ctx, body, Reason.INVALID_SPEC, str(exc))
    policy = await POLICY.read(OPERATOR.api)
    outside = policy.problems(placing.base)
    if outside:  # before any cloud call: the platform team's policy, which tenants cannot write
        return await refuse(ctx, body, Reason.POLICY_VIOLATION, "; ".join(outside))
    kept = await recorded(ctx, body, placing.base, placing.state)  # not status's zone: the record's
    return dataclasses.replace(placing, state=kept), policy.policy


def warn_malformed(ctx: ResourceContext, body: kopf.Body) -> None:
    """One Warning Event per malformed time annotation (they are ignored, not fatal)."""
    for key in malformed_annotations(dict(body.metadata)):
        if key not in ctx.warned_annotations:
            ctx.warned_annotations.add(key)
            event(body, Reason.MALFORMED_ANNOTATION, f"{key} is not an RFC 3339 time; ignored")


def _ready_false(body: kopf.Body, reason: Reason, message: str) -> list[dict[str, Any]]:
    """The resource's conditions with Ready replaced by False for `reason` (metav1.Condition shape).

    A failure repeating the Ready condition's reason keeps its lastTransitionTime: how long an
    outage (CloudUnavailable) has lasted is what the proxy reads to stop holding requests.
    """
    conds = body.status.get("conditions") or []
    since = next(
        (
            c.get("lastTransitionTime")
            for c in conds
            if c.get("type") == ConditionType.READY
            and c.get("status") == "False"
            and c.get("reason") == reason
        ),
        None,
    )
    ready = {
        "type": ConditionType.READY,
        "status": "False",
        "reason": str(reason),
        "message": message,
        "lastTransitionTime": since or utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "observedGeneration": body.metadata.get("generation"),
    }
    return [c for c in conds if c.get("type") != ConditionType.READY] + [ready]


async def report_error(ctx: ResourceContext, body: kopf.Body, exc: Exception, delay: float) -> None:
    if isinstance(exc, CloudError):
        reason, message = exc.reason, exc.message
        OPERATOR.metrics.cloud_errors.labels(str(reason)).inc()
    elif isinstance(exc, NameConflict):
        reason, message = Reason.NAME_CONFLICT, exc.message
    else:
        reason, message = Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
    event(body, reason, f"{message} (retrying in {delay:.0f}s)")
    patch: dict[str, Any] = {"conditions": _ready_false(body, reason, message), "message": message}
    if isinstance(exc, CloudError) and not exc.retryable:
        patch["phase"] = str(Phase.FAILED)
    with contextlib.suppress(KubeError, OSError):
        await ctx.patch_status(patch)


async def ensure_children(ctx: ResourceContext, body: kopf.Body, *, spec_changed: bool) -> None:
    loop = asyncio.get_running_loop()
    if not spec_changed and loop.time() - ctx.children_at < children_interval():
        return
    await converge_children(OPERATOR.api, dict(body), OPERATOR.proxy_image)
    ctx.children_at = loop.time()
    ctx.children_generation = body.metadata.get("generation")


def nothing_created(body: dict[str, Any]) -> bool:
    """No VM was ever recorded for this resource (its credentials never got that far)."""
    status = body.get("status") or {}
    lifecycle = status.get("lifecycle") or {}
    return not status.get("instance") and not lifecycle.get("instance_id") and not status.get("endpoint")


def _stuck_or_abandon(body: kopf.Body, ctx: ResourceContext, why: str, delay: float) -> None:
    """Retry the cloud clean-up later, unless the user said to abandon what is there."""
    if (body.metadata.annotations or {}).get(ANN_ABANDON_CLOUD_OBJECTS, "").lower() != "true":
        raise kopf.TemporaryError(
            f"{why} (retrying; to delete the resource anyway, leaving its cloud objects, annotate it "
            f"{ANN_ABANDON_CLOUD_OBJECTS}=true)",
            delay=delay,
        )
    status: dict[str, Any] = dict(body.status)
    instance = (status.get("instance") or {}).get("id") or (status.get("lifecycle") or {}).get("instance_id")
    zone = dict(body.spec).get("zone", "")
    left = [f"instance {instance}" if instance else "an instance labelled remote-ollama-owner=" + ctx.uid]
    left.append(f"security group {security_group_name(OPERATOR.cluster_id, ctx.uid)}")
    event(
        body,
        Reason.CLOUD_OBJECTS_ABANDONED,
        f"{ANN_ABANDON_CLOUD_OBJECTS}: not deleted, may remain in zone {zone}: {', '.join(left)} "
        f"({why}); delete them in the Exoscale console or with `remote-ollama instance destroy`",
    )


def children_interval() -> float:
    return float(os.environ.get("REMOTE_OLLAMA_CHILDREN_INTERVAL", CHILDREN_EVERY))


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def cleanup(body: kopf.Body, **_: Any) -> None:
    """No VM, no security group, no secret, no proxy left behind; retried until the cloud agrees."""
    raw = dict(body)
    ctx = _ctx(body)
    try:  # the current placement's zone, where the VM is (spec.placements), and the others
        placing = placing_for(parse_spec(dict(body.spec)), raw)
    except SpecError:
        placing = None
    spec = placing.spec if placing is not None else None
    if spec is not None:
        problem, cloud = await ctx.cloud_for(spec)
        if cloud is None:
            if ctx.had_instance(raw):
                _stuck_or_abandon(body, ctx, f"cannot delete the VM: {problem}", 30)
        else:
            try:
                zones = zones_used(placing.base, raw) if placing is not None else []
                zones += await recorded_zones(ctx, raw, spec.replicas.max)  # the spec may have dropped one
                await ctx.reconciler(cloud).destroy_all(lambda zone: ctx.cloud_in(spec, zone), zones)
            except CloudError as exc:
                event(body, exc.reason, f"deleting cloud objects: {exc.message}")
                if isinstance(exc, CredentialsError) and nothing_created(raw):
                    event(
                        body,
                        Reason.CLOUD_OBJECTS_UNKNOWN,
                        "the cloud refuses these credentials and no VM was ever created with them: letting go",
                    )
                else:
                    _stuck_or_abandon(body, ctx, exc.message, 15)
            else:
                event(body, Reason.DELETED, "instance and security group deleted")
    await remove_children(OPERATOR.api, raw)
    await OPERATOR.forget(body.metadata.uid)
