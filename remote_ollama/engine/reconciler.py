"""The one round, shared by the operator and standalone mode: observe the instance and the VM's
Ollama, meter the cost, decide (`lifecycle.decide`), then act on Exoscale (`look()` then `act()`).

The shells keep only what differs: where memory and the meter are kept, how status is published,
and how they are woken. The decisions themselves live in `lifecycle.py`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core import cost
from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.core.setup import SetupReport
from remote_ollama.core.types import Action, ActionKind, Activity, Decision, Health, Memory, Observation
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_CREATION,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
    MAX_TEMPLATE_GB,
    template_name,
    template_prefix,
)
from remote_ollama.spec.vocabulary import Phase, Reason
from remote_ollama.vm.cloudinit import encode_user_data, render_user_data, setup_hash
from remote_ollama.vm.pki import generate_vm_credentials

from .vm_client import CredentialStore, InstanceRecord, VMClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Look:
    """What one round saw and decided, before acting."""

    instance: ObservedInstance | None
    health: Health | None
    meter: cost.CostMeter
    verdict: cost.BudgetVerdict
    decision: Decision
    now: datetime
    setup: SetupReport | None = None  # what the VM's setup document said this round
    template_gb: float = 0.0  # size of the resource's baked template(s) (spec.coldStart), for status.cost

    @property
    def takes_down(self) -> bool:
        return any(
            a.kind in (ActionKind.STOP_INSTANCE, ActionKind.DELETE_INSTANCE) for a in self.decision.actions
        )


def instance_name(*parts: str) -> str:
    """A hostname-safe instance name (Exoscale rejects underscores, max 63 characters)."""
    text = re.sub(r"[^a-z0-9-]+", "-", "-".join(("remote-ollama", *parts)).lower()).strip("-")
    return text[:63].rstrip("-")


@dataclass(frozen=True)
class Target:
    """Which VM this reconciler manages: the labels that find it and the names it gets."""

    owner_uid: str
    cluster: str
    name: str
    security_group: str
    # the older name (docs/design.md section 2); used only for a VM of ours that is attached to it (see ensure_access)
    legacy_security_group: str | None = None
    # mark the group with the owner uid and converge only a group carrying that mark (operator mode;
    # standalone's group name holds its random owner id and predates the mark)
    mark_group: bool = False
    # a replica of a replicated endpoint (issue 19): its index is a label; the replicas share the
    # first one's security group, which only that one deletes
    replica: int | None = None
    owns_group: bool = True

    def labels(self, spec: Spec) -> dict[str, str]:
        return {
            LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE,
            LABEL_OWNER: self.owner_uid,
            LABEL_CLUSTER: self.cluster,
            LABEL_SPEC_HASH: spec.instance_hash(),
        } | ({LABEL_REPLICA: str(self.replica)} if self.replica is not None else {})


@dataclass
class Reconciler:
    cloud: Cloud
    target: Target
    store: CredentialStore
    # An extra VM API key nginx checks besides mutual TLS (EXOSCALE_OLLAMA_KEY); none when None.
    fixed_api_key: str | None = None
    # Posts a Warning Event (reason, message) about an instance not trusted (operator mode).
    warn: Callable[[Reason, str], None] | None = None
    _warned: set[tuple[Reason, str]] = field(default_factory=set)
    vm: VMClient = field(init=False)  # the VM's own Ollama, with the same credentials store
    _scrubbed: set[str] = field(default_factory=set)  # instances whose user-data holds no key
    # our private templates (spec.coldStart), listed once per process and kept up to date after
    _templates: list[dict[str, Any]] | None = None
    _bake_failed: set[str] = field(default_factory=set)  # instances whose bake failed: not retried

    def __post_init__(self) -> None:
        self.vm = VMClient(self.store)

    async def close(self) -> None:
        await self.vm.close()

    # -- the round ---------------------------------------------------------------------------------------

    async def look(
        self,
        spec: Spec,
        memory: Memory,
        activity: Activity,
        stored_cost: Any,
        prices: cost.PriceTable,
        clock: Callable[[], datetime],
        *,
        idle_monitor: bool = True,
    ) -> Look:
        """Observe -> probe -> cost -> decide; nothing is changed on the cloud."""
        instance = await self.observe_instance(memory)
        health = await self.vm.probe(instance)
        # the setup document only matters until the VM is Ready (and says what a slow wake is doing)
        setup = (
            await self.vm.read_setup(instance) if health is None or memory.phase is not Phase.READY else None
        )
        baked = await self._baked(spec, instance)
        now = clock()
        meter, verdict = cost.account(
            stored_cost,
            instance.state if instance else None,
            (instance.instance_type if instance else "") or spec.instance_type.name,
            spec.budget.max_running_hours_per_day,
            spec.budget.max_monthly_spend,
            prices,
            now,
        )
        observation = Observation(
            spec,
            instance,
            activity,
            memory,
            now,
            health,
            budget=verdict,
            idle_monitor=idle_monitor,
            setup=setup,
            baked=baked,
        )
        template_gb = sum(int(t.get("size") or 0) for t in self._templates or []) / 1e9
        return Look(instance, health, meter, verdict, decide(observation), now, setup, template_gb)

    # -- the baked template (spec.coldStart.template) ------------------------------------------------

    def _template_wanted(self, spec: Spec) -> bool:
        return spec.cold_start.bake and spec.disk_size <= MAX_TEMPLATE_GB

    async def _our_templates(self) -> list[dict[str, Any]]:
        if self._templates is None:
            prefix = template_prefix(self.target.cluster, self.target.owner_uid)
            self._templates = await self.cloud.private_templates(prefix)
        return self._templates

    async def current_template(self, spec: Spec) -> dict[str, Any] | None:
        """The template of the current setup that fits spec.diskSize, if one was baked."""
        if not self._template_wanted(spec):
            return None
        name = template_name(self.target.cluster, self.target.owner_uid, setup_hash(spec.ollama.image))
        fits = spec.disk_size * 1024**3
        return next(
            (
                t
                for t in await self._our_templates()
                if t.get("name") == name and int(t.get("size") or 0) <= fits
            ),
            None,
        )

    async def _baked(self, spec: Spec, instance: ObservedInstance | None) -> bool | None:
        if not self._template_wanted(spec) or (instance is not None and instance.id in self._bake_failed):
            return None
        return await self.current_template(spec) is not None

    async def _bake(self, spec: Spec, instance_id: str) -> None:
        """Bake the stopped instance's disk, then delete templates of older setups. A transient cloud
        failure propagates (the shell backs off and the next round bakes again); a permanent one is
        logged and not retried for this instance (the next VM is set up from the stock template)."""
        name = template_name(self.target.cluster, self.target.owner_uid, setup_hash(spec.ollama.image))
        try:
            baked = await self.cloud.bake_template(
                instance_id, name, f"remote-ollama: set-up disk of {self.target.name} (managed; do not use)"
            )
        except CloudError as exc:
            if exc.retryable:
                raise
            log.warning("could not bake a template of instance %s: %s", instance_id, exc)
            self._bake_failed.add(instance_id)
            return
        log.info("instance %s baked into private template %s (%s)", instance_id, baked.get("id"), name)
        old = [t for t in await self._our_templates() if t.get("name") != name]
        self._templates = [baked]
        for tpl in old:
            try:
                await self.cloud.delete_template(str(tpl["id"]))
                log.info("deleted the template of an older setup: %s", tpl.get("name"))
            except CloudError as exc:
                log.warning("could not delete the older template %s: %s", tpl.get("name"), exc)
                self._templates.append(tpl)

    async def act(
        self, look: Look, spec: Spec, before_takedown: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Carry out the decision; a scale-down is published first (`before_takedown`), so no request
        is sent to a VM while it is being taken away."""
        if before_takedown is not None and look.takes_down:
            await before_takedown()
        await self.execute(look.decision, spec, look.instance)

    # -- observing ---------------------------------------------------------------------------------------

    async def observe_instance(self, memory: Memory) -> ObservedInstance | None:
        """Only an instance made for this owner: the one whose id the store records (status is a
        mirror that tenants can write), carrying our owner and cluster labels. Nothing is adopted by
        labels alone: anyone in the organisation who may list instances can copy them."""
        record = await self.store.record()
        if record is None:  # no credentials: nothing was ever created, whatever status says
            found = None
            await self._warn_unrecorded()
        elif record.instance_id is not None:
            found = await self._ours(record.instance_id)
        elif record.creation_token is not None:
            found = await self._created_with(record.creation_token)
        else:  # credentials from a version that kept no record: its remembered id, if labelled ours
            found = await self._ours(memory.instance_id) if memory.instance_id else None
            if found is not None:
                await self.store.keep(InstanceRecord(found.id))
            else:
                await self._warn_unrecorded()
        if memory.instance_id and memory.instance_id != (
            found.id if found else record and record.instance_id
        ):
            self._warn(
                Reason.FOREIGN_INSTANCE_IGNORED,
                memory.instance_id,
                f"status names instance {memory.instance_id}, which was not created for this resource: "
                "ignored (it is neither stopped, started, changed nor deleted)",
            )
        return found

    async def _ours(self, instance_id: str) -> ObservedInstance | None:
        """The live instance with this id if it carries our owner and cluster labels."""
        found = await self.cloud.get_instance(instance_id)
        if found is None or found.state in GONE:
            return None
        if not self._labelled_ours(found):
            self._warn(
                Reason.FOREIGN_INSTANCE_IGNORED,
                instance_id,
                f"instance {instance_id} does not carry this resource's owner and cluster labels: "
                "ignored (it is neither stopped, started, changed nor deleted)",
            )
            return None
        return found

    async def _created_with(self, token: str) -> ObservedInstance | None:
        """After a crash between the create call and recording its id: the oldest live instance with
        our labels and this create's token (a copy of the token can only be younger), recorded now."""
        live = [
            i
            for i in await self.cloud.find_instances({**self._owner_labels(), LABEL_CREATION: token})
            if i.state not in GONE and i.created_at is not None
        ]
        if not live:
            return None
        first = min(i.created_at for i in live if i.created_at is not None)
        oldest = [i for i in live if i.created_at == first]
        if len(oldest) != 1:  # created in the same second (the API's resolution): which is ours is unknown
            for inst in oldest:
                self._warn(
                    Reason.UNRECORDED_INSTANCE_IGNORED,
                    inst.id,
                    f"instance {inst.id} carries this resource's last creation token, as does another "
                    "made in the same second: neither is adopted nor touched",
                )
            return None
        await self.store.keep(InstanceRecord(oldest[0].id, token))
        return await self._ours(oldest[0].id)

    async def _warn_unrecorded(self) -> None:
        """Instances with our labels but no record of their create: each warned about once."""
        for inst in await self.cloud.find_instances(self._owner_labels()):
            if inst.state not in GONE:
                self._warn(
                    Reason.UNRECORDED_INSTANCE_IGNORED,
                    inst.id,
                    f"instance {inst.id} carries this resource's labels but was not recorded as created "
                    "for it (labels can be copied): not adopted and not touched",
                )

    def _owner_labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE,
            LABEL_OWNER: self.target.owner_uid,
            LABEL_CLUSTER: self.target.cluster,
        }

    def _labelled_ours(self, instance: ObservedInstance) -> bool:
        return all(instance.labels.get(k) == v for k, v in self._owner_labels().items())

    def _warn(self, reason: Reason, instance_id: str, message: str) -> None:
        """Once per reason and instance per process: a Warning Event (operator) or log line."""
        if (reason, instance_id) in self._warned:
            return
        self._warned.add((reason, instance_id))
        log.warning("%s: %s", reason, message)
        if self.warn is not None:
            self.warn(reason, message)

    # -- acting ------------------------------------------------------------------------------------------

    async def execute(self, decision: Decision, spec: Spec, instance: ObservedInstance | None) -> None:
        """Carry out the decision's actions in order; cloud errors propagate to the shell."""
        sg_id: str | None = None
        for action in decision.actions:
            if action.kind is ActionKind.ENSURE_SECURITY_GROUP:
                sg_id = await self._ensure_own_group(spec)
            elif action.kind is ActionKind.CREATE_INSTANCE:
                if sg_id is None:
                    sg_id = await self._ensure_own_group(spec)
                instance = await self._create(spec, sg_id)  # watched below once it has an IP
            elif action.kind is ActionKind.START_INSTANCE:
                # with fallbacks, wait for the cloud's answer so a capacity failure moves to the next one
                await self.cloud.start_instance(_id(action), wait=False, confirm=bool(spec.placements))
            elif action.kind is ActionKind.STOP_INSTANCE:
                await self.cloud.stop_instance(_id(action), wait=False)
            elif action.kind is ActionKind.DELETE_INSTANCE:
                await self.cloud.delete_instance(_id(action), wait=False)
            elif action.kind is ActionKind.PULL_MODELS and instance is not None:
                self.vm.start_pulls(instance, action)
            elif action.kind is ActionKind.BAKE_TEMPLATE:
                await self._bake(spec, _id(action))
            elif action.kind is ActionKind.WARM_UP and instance is not None:
                self.vm.start_warm_ups(instance, action, spec.keep_alive)
            # PROBE needs nothing here: the shell probes every running instance before deciding.
        if decision.phase is Phase.READY and instance is not None and instance.id not in self._scrubbed:
            await self._scrub_user_data(spec, instance)
        coming_up = (
            decision.phase in (Phase.PROVISIONING, Phase.STARTING) and decision.memory.ollama_at is None
        )
        if coming_up and instance is not None and instance.public_ip:
            self.vm.watch_for_ollama(instance)
        elif not coming_up:
            self.vm.stop_watching()

    async def _scrub_user_data(self, spec: Spec, instance: ObservedInstance) -> None:
        """A VM made before enrolment had its server key in user-data (which the API and the
        metadata server keep serving): once Ready, it is replaced by today's, which holds none. Once
        per instance and process; a failure is retried at the next round. A VM made since makes its
        own key: nothing to do."""
        creds = await self.store.load()
        if creds is None or not creds.key_pem:
            self._scrubbed.add(instance.id)
            return
        scrubbed = render_user_data(
            creds, spec.models, ollama_image=spec.ollama.image, ollama_env=dict(spec.ollama.env)
        )
        try:
            await self.cloud.update_user_data(instance.id, encode_user_data(scrubbed))
        except CloudError as exc:
            log.warning("could not remove the TLS key from %s's user-data: %s", instance.id, exc)
            return
        self._scrubbed.add(instance.id)
        log.info("instance %s: user-data replaced by a copy without the TLS key", instance.id)

    async def _ensure_own_group(self, spec: Spec) -> str:
        return await self.cloud.ensure_security_group(
            self.target.security_group,
            spec.allowed_source_cidrs,
            owner=self.target.owner_uid if self.target.mark_group else None,
        )

    async def ensure_access(self, spec: Spec, instance: ObservedInstance | None = None) -> str:
        """The security group's rules exactly as spec.allowedSourceCIDRs says (no-op when they match).

        A VM created before groups were named by uid keeps its old-named group: that group is
        attached to a VM labelled with our owner uid, which proves it is ours, so it is converged."""
        legacy = self.target.legacy_security_group
        if (
            instance is not None
            and legacy
            and legacy in await self.cloud.instance_security_groups(instance.id)
        ):
            return await self.cloud.ensure_security_group(legacy, spec.allowed_source_cidrs)
        return await self._ensure_own_group(spec)

    async def _create(self, spec: Spec, sg_id: str) -> ObservedInstance:
        """New VM, new credentials: saved first so a crash never leaves a VM with unknown keys. The
        user-data holds no private key: the VM makes its own, pinned at first contact (VMClient).

        The adapter checks the GPU quota before creating, so no VM exists after a QuotaError.
        """
        creds = generate_vm_credentials(self.fixed_api_key)
        token = secrets.token_hex(8)
        await self.store.save(creds, InstanceRecord(creation_token=token))
        user_data = encode_user_data(
            render_user_data(
                creds, spec.models, ollama_image=spec.ollama.image, ollama_env=dict(spec.ollama.env)
            )
        )
        baked = await self.current_template(spec)
        if baked is not None:
            log.info("creating the VM from the baked template %s", baked.get("name"))
        created = await self.cloud.create_instance(
            name=self.target.name,
            instance_type=spec.instance_type.name,
            template=baked or spec.template,
            disk_size=spec.disk_size,
            user_data_b64=user_data,
            security_group_id=sg_id,
            labels={**self.target.labels(spec), LABEL_CREATION: token},
            wait=False,
            confirm=bool(spec.placements),
        )
        await self.store.keep(InstanceRecord(created.id, token))
        return created

    async def destroy_all(self) -> list[str]:
        """Deletion: every instance with our labels, then the security group (and an old-named one
        that one of those instances proved ours). Idempotent; returns the instances deleted."""
        legacy = self.target.legacy_security_group
        legacy_ours = False
        deleted: list[str] = []
        for inst in await self.cloud.find_instances(self._owner_labels()):
            if inst.state not in GONE:
                if legacy and legacy in await self.cloud.instance_security_groups(inst.id):
                    legacy_ours = True
                await self.cloud.delete_instance(inst.id, wait=True)
                deleted.append(inst.id)
        if self.target.owns_group:
            await self.cloud.delete_security_group(self.target.security_group)
        if legacy and legacy_ours:
            await self.cloud.delete_security_group(legacy)
        for tpl in await self.cloud.private_templates(
            template_prefix(self.target.cluster, self.target.owner_uid)
        ):
            await self.cloud.delete_template(str(tpl["id"]))
        self._templates = []
        return deleted


def _id(action: Action) -> str:
    assert action.instance_id, f"{action.kind} needs an instance id"
    return action.instance_id
