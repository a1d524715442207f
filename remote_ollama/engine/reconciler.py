"""The one round, shared by the operator and standalone mode: observe the instance and the VM's
Ollama, meter the cost, decide (`lifecycle.decide`), then act on Exoscale (`look()` then `act()`).

The shells keep only what differs: where memory and the meter are kept, how status is published,
and how they are woken. The decisions themselves live in `lifecycle.py`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core import cost
from remote_ollama.core.lifecycle import decide
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.core.setup import SetupReport
from remote_ollama.core.types import Action, ActionKind, Activity, Decision, Health, Memory, Observation
from remote_ollama.engine.credentials import CredentialStore, InstanceRecord
from remote_ollama.engine.vm_client import VMClient
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import (
    LABEL_CREATION,
    LABEL_VOLUME,
)
from remote_ollama.spec.vocabulary import Phase, Reason
from remote_ollama.vm.cloudinit import encode_user_data, render_user_data
from remote_ollama.vm.pki import generate_vm_credentials

from .ownership import Ownership
from .target import Target
from .templates import BakedTemplates
from .volumes import ModelVolumes

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
    # what the resource keeps besides its VM (spec.coldStart: template, model volume), for status.cost
    storage: cost.Storage = field(default_factory=cost.Storage)

    @property
    def takes_down(self) -> bool:
        return any(
            a.kind in (ActionKind.STOP_INSTANCE, ActionKind.DELETE_INSTANCE) for a in self.decision.actions
        )


@dataclass
class Reconciler:
    cloud: Cloud
    target: Target
    store: CredentialStore
    # An extra VM API key nginx checks besides mutual TLS (EXOSCALE_OLLAMA_KEY); none when None.
    fixed_api_key: str | None = None
    # Posts a Warning Event (reason, message) about an instance not trusted (operator mode).
    warn: Callable[[Reason, str], None] | None = None
    vm: VMClient = field(init=False)  # the VM's own Ollama, with the same credentials store
    _scrubbed: set[str] = field(default_factory=set)  # instances whose user-data holds no key
    templates: BakedTemplates = field(init=False)
    ownership: Ownership = field(init=False)
    volumes: ModelVolumes = field(init=False)  # spec.coldStart.modelVolume

    def __post_init__(self) -> None:
        self.vm = VMClient(self.store)
        self.templates = BakedTemplates(self.cloud, self.target)
        self.ownership = Ownership(self.cloud, self.target, self.store, self._post_warning)
        self.volumes = ModelVolumes(
            self.cloud,
            self.store,
            self.target.name,
            self.ownership.owner_labels(),
            self.target.replica,
            self._post_warning,
        )

    def _post_warning(self, reason: Reason, message: str) -> None:
        if self.warn is not None:  # set after construction by the operator (and tests)
            self.warn(reason, message)

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
        cap: cost.BudgetVerdict | None = None,
        other_costs: Sequence[Any] = (),
    ) -> Look:
        """Observe -> probe -> cost -> decide; nothing is changed on the cloud. `cap`: the verdict of
        a cap beside the spec's budget (the namespace's monthly spend), the stricter one counts.
        `other_costs`: the stored meters of the endpoint's other replicas, which the budget counts too."""
        instance = await self.ownership.observe_instance(memory)
        health = await self.vm.probe(instance)
        # the setup document only matters until the VM is Ready (and says what a slow wake is doing)
        setup = (
            await self.vm.read_setup(instance) if health is None or memory.phase is not Phase.READY else None
        )
        baked = await self.templates.baked(spec, instance)
        await self.volumes.ensure_attached(spec, instance)
        now = clock()
        meter, verdict = cost.account(
            stored_cost,
            instance.state if instance else None,
            (instance.instance_type if instance else "") or spec.instance_type.name,
            spec.budget.max_running_hours_per_day,
            spec.budget.max_monthly_spend,
            prices,
            now,
            other_costs,
        )
        verdict = cost.stricter(verdict, cap)
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
        decision = decide(observation)
        volume = self.volumes.condition(spec)
        if volume is not None:
            decision = replace(decision, conditions=(*decision.conditions, volume))
        storage = cost.Storage(self.templates.size_gb, self.volumes.gb)
        return Look(instance, health, meter, verdict, decision, now, setup, storage)

    # -- the baked template (spec.coldStart.template) ------------------------------------------------

    async def act(
        self, look: Look, spec: Spec, before_takedown: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Carry out the decision; a scale-down is published first (`before_takedown`), so no request
        is sent to a VM while it is being taken away."""
        if before_takedown is not None and look.takes_down:
            await before_takedown()
        await self.execute(look.decision, spec, look.instance)

    # -- observing ---------------------------------------------------------------------------------------

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
                await self.delete_instance(instance, _id(action))
            elif action.kind is ActionKind.PULL_MODELS and instance is not None:
                self.vm.start_pulls(instance, action)
            elif action.kind is ActionKind.BAKE_TEMPLATE:
                await self.templates.bake(spec, _id(action))
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

    async def delete_instance(
        self, instance: ObservedInstance | None, instance_id: str, wait: bool = False
    ) -> None:
        """Delete a VM; one made for the model volume lets it go first (the volume is kept)."""
        if instance is not None and instance.id == instance_id and instance.labels.get(LABEL_VOLUME):
            await self.volumes.release(instance_id)
        await self.cloud.delete_instance(instance_id, wait=wait)

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
        await self.store.save(creds, InstanceRecord(creation_token=token, zone=self.cloud.zone))
        volume = await self.volumes.for_create(spec)
        user_data = encode_user_data(
            render_user_data(
                creds,
                spec.models,
                ollama_image=spec.ollama.image,
                ollama_env=dict(spec.ollama.env),
                volume_id=volume.id if volume else None,
            )
        )
        baked = await self.templates.current(spec)
        if baked is not None:
            log.info("creating the VM from the baked template %s", baked.get("name"))
        created = await self.cloud.create_instance(
            name=self.target.name,
            instance_type=spec.instance_type.name,
            template=baked or spec.template,
            disk_size=spec.disk_size,
            user_data_b64=user_data,
            security_group_id=sg_id,
            labels={
                **self.target.labels(spec),
                LABEL_CREATION: token,
                **({LABEL_VOLUME: volume.id} if volume else {}),
            },
            wait=False,
            confirm=bool(spec.placements),
        )
        await self.store.keep(InstanceRecord(created.id, token, self.cloud.zone))
        await self.volumes.ensure_attached(spec, created)
        return created

    async def destroy_all(
        self, elsewhere: Callable[[str], Awaitable[Cloud | None]] | None = None, zones: Sequence[str] = ()
    ) -> list[str]:
        """Deletion: every instance with our labels and the baked templates, here and in each of
        `zones` (where replicas or earlier placements ran; `elsewhere`: the cloud of another zone),
        then the security group (the account's, for every zone; and an old-named one that one of
        those instances proved ours), and the model volume of every zone recorded. Idempotent;
        returns the instances deleted."""
        deleted, legacy_ours = await self._destroy_instances()
        for zone in dict.fromkeys(zones):
            cloud = await elsewhere(zone) if elsewhere is not None and zone != self.cloud.zone else None
            if cloud is not None:
                there = Reconciler(cloud, self.target, self.store)
                try:
                    more, proved = await there._destroy_instances()
                finally:
                    await there.close()
                deleted, legacy_ours = deleted + more, legacy_ours or proved
        if self.target.owns_group:
            await self.cloud.delete_security_group(self.target.security_group)
        legacy = self.target.legacy_security_group
        if legacy and legacy_ours:
            await self.cloud.delete_security_group(legacy)
        if self.target.replica in (None, 0):
            await self.volumes.delete(elsewhere)
        return deleted

    async def _destroy_instances(self) -> tuple[list[str], bool]:
        """This zone's instances with our labels and baked templates deleted; whether one of the
        instances proved the old-named security group ours."""
        legacy = self.target.legacy_security_group
        legacy_ours = False
        deleted: list[str] = []
        for inst in await self.cloud.find_instances(self.ownership.owner_labels()):
            if inst.state not in GONE:
                if legacy and legacy in await self.cloud.instance_security_groups(inst.id):
                    legacy_ours = True
                await self.delete_instance(inst, inst.id, wait=True)
                deleted.append(inst.id)
        await self.templates.delete_all()
        return deleted, legacy_ours


def _id(action: Action) -> str:
    assert action.instance_id, f"{action.kind} needs an instance id"
    return action.instance_id
