"""The simulated cloud's state: instances, security groups, async operations, quotas (faults: faults.py).

No HTTP here: the API module translates requests into these verbs, and tests may inspect the
objects directly. Instance transitions run on the event loop's timers (`SimTimings`), and hooks
tell the VM fleet when an instance's machine should come up or go down.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from remote_ollama.sandbox.exoscale.faults import Faults
from remote_ollama.sandbox.exoscale.objects import (
    GONE_STATES,
    ApiError,
    Instance,
    Operation,
    PrivateTemplate,
    SecurityGroup,
    Snapshot,
    found,
    new_id,
    now_rfc3339,
)
from remote_ollama.sandbox.exoscale.timings import SimTimings


class InstanceHooks(Protocol):
    """What the state machine needs from the machines behind it (the VM fleet)."""

    def allocate_ip(self) -> str: ...
    def release_ip(self, ip: str) -> None: ...
    def booted(self, instance: Instance) -> None: ...
    def halted(self, instance: Instance) -> None: ...
    def snapshotted(self, instance: Instance, snapshot_id: str) -> None: ...
    def promoted(self, snapshot_id: str, template_id: str) -> None: ...


class NoMachines:
    """Hooks for an API-only simulator: addresses from 198.51.100.0/24, nothing boots."""

    def __init__(self) -> None:
        self._next = 1

    def allocate_ip(self) -> str:
        self._next += 1
        return f"198.51.100.{self._next % 254 + 1}"

    def release_ip(self, ip: str) -> None:
        pass

    def booted(self, instance: Instance) -> None:
        pass

    def halted(self, instance: Instance) -> None:
        pass

    def snapshotted(self, instance: Instance, snapshot_id: str) -> None:
        pass

    def promoted(self, snapshot_id: str, template_id: str) -> None:
        pass


class Account:
    """What the zones of one organisation share: quotas, which count every zone's instances, and
    security groups, which Exoscale keeps per organisation (one group, usable in every zone)."""

    def __init__(self, *, gpu_quota: int, instance_quota: int):
        self.gpu_quota_default = gpu_quota
        self.quota_limits: dict[str, int] = {"instance": instance_quota}
        self.zones: list[CloudState] = []
        self.security_groups: dict[str, SecurityGroup] = {}

    def quota_limit(self, entity: str) -> int:
        return self.quota_limits.get(entity, self.gpu_quota_default)

    def quota_usage(self, entity: str) -> int:
        live = [i for z in self.zones for i in z.instances.values() if i.state not in GONE_STATES]
        if entity == "instance":
            return len(live)
        if entity == "security-group":
            return len(self.security_groups)
        return sum(i.instance_type.gpus for i in live if i.instance_type.family == entity)


class CloudState:
    """Instances, security groups and operations of one zone, with their state machine."""

    def __init__(
        self,
        timings: SimTimings,
        hooks: InstanceHooks,
        *,
        zone: str,
        account: Account,
        faults: Faults | None = None,
    ):
        self.timings = timings
        self.hooks = hooks
        self.zone = zone
        self.account = account
        account.zones.append(self)
        self.faults = faults or Faults()
        self.instances: dict[str, Instance] = {}
        self.security_groups = account.security_groups
        self.operations: dict[str, Operation] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.templates: dict[str, PrivateTemplate] = {}  # private templates are per zone

    # quotas (the organisation's, over every zone) -------------------------------------------------
    def quota_limit(self, entity: str) -> int:
        return self.account.quota_limit(entity)

    def quota_usage(self, entity: str) -> int:
        return self.account.quota_usage(entity)

    # operations -----------------------------------------------------------------------------------
    def new_operation(self, reference_id: str, kind: str) -> Operation:
        op = Operation(new_id(), reference_id, f"/v2/{kind}/{reference_id}", f"get-{kind}")
        self.operations[op.id] = op
        return op

    def done_soon(self, reference_id: str, kind: str) -> Operation:
        """An operation that succeeds after the usual delay (the change itself is made already)."""
        op = self.new_operation(reference_id, kind)
        self.finish_later(op)
        return op

    def op_delay(self) -> float:
        return self.timings.operation + self.faults.operation_delay

    def finish_later(self, op: Operation, *, reason: str | None = None, message: str | None = None) -> None:
        def done() -> None:
            op.state = "failure" if reason else "success"
            op.reason, op.message = reason, message

        asyncio.get_running_loop().call_later(self.op_delay(), done)

    def _after(self, inst: Instance, delay: float, fn: Any) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
        inst.timer = asyncio.get_running_loop().call_later(delay + self.faults.operation_delay, fn)

    # instance transitions -------------------------------------------------------------------------
    def _boot(self, inst: Instance, op: Operation, action: str) -> None:
        """starting -> running, unless a capacity failure is injected for `action`."""
        inst.state = "starting"
        if self.faults.take_capacity_failure(action, self.zone):
            msg = f"insufficient capacity for {inst.instance_type.name}, try again later or another zone"
            self.finish_later(op, reason="unavailable", message=msg)

            def give_up() -> None:
                if action == "create":
                    self._remove(inst)
                else:
                    inst.state = "stopped"

            self._after(inst, self.timings.operation, give_up)
            return

        def running() -> None:
            inst.state = "running"
            inst.timer = None
            self.hooks.booted(inst)

        self.finish_later(op)
        self._after(inst, self.timings.boot, running)

    def create_instance(self, inst: Instance, *, auto_start: bool, public_ip: bool) -> Operation:
        inst.public_ip = self.hooks.allocate_ip() if public_ip else None
        self.instances[inst.id] = inst
        op = self.new_operation(inst.id, "instance")
        if auto_start:
            self._boot(inst, op, "create")
        else:
            inst.state = "stopped"
            self.finish_later(op)
        return op

    def get_instance(self, instance_id: str) -> Instance:
        return found(self.instances.get(instance_id), "Instance", instance_id)

    def _require(self, inst: Instance, allowed: tuple[str, ...], verb: str) -> None:
        if inst.state not in allowed:
            raise ApiError(400, f"Instance {inst.id} is {inst.state}: cannot {verb} it")

    def start_instance(self, instance_id: str) -> Operation:
        inst = self.get_instance(instance_id)
        self._require(inst, ("stopped",), "start")
        op = self.new_operation(inst.id, "instance")
        self._boot(inst, op, "start")
        return op

    def stop_instance(self, instance_id: str) -> Operation:
        inst = self.get_instance(instance_id)
        self._require(inst, ("running",), "stop")
        inst.state = "stopping"
        self.hooks.halted(inst)

        def stopped() -> None:
            inst.state = "stopped"
            inst.timer = None

        self._after(inst, self.timings.stop, stopped)
        return self.done_soon(inst.id, "instance")

    def update_instance(
        self, instance_id: str, *, name: str | None, user_data: str | None, labels: dict[str, str] | None
    ) -> Operation:
        """update-instance: a new user-data is kept for the next first boot only (cloud-init runs
        once per instance; the running VM keeps the files it wrote)."""
        inst = self.get_instance(instance_id)
        if name is not None:
            inst.name = name
        if user_data is not None:
            if inst.user_data is not None:
                inst.replaced_user_data.append(inst.user_data)
            inst.user_data = user_data
        if labels is not None:
            inst.labels = labels
        return self.done_soon(inst.id, "instance")

    def reboot_instance(self, instance_id: str) -> Operation:
        inst = self.get_instance(instance_id)
        self._require(inst, ("running",), "reboot")
        self.hooks.halted(inst)

        def up_again() -> None:
            inst.timer = None
            self.hooks.booted(inst)

        self._after(inst, self.timings.boot, up_again)
        return self.done_soon(inst.id, "instance")

    def delete_instance(self, instance_id: str) -> Operation:
        inst = self.get_instance(instance_id)
        op = self.new_operation(inst.id, "instance")
        self.finish_later(op)
        if inst.state == "destroying":
            return op
        inst.state = "destroying"
        self.hooks.halted(inst)
        self._after(inst, self.timings.destroy, lambda: self._remove(inst))
        return op

    # snapshots and private templates ------------------------------------------------------------------
    def create_snapshot(self, instance_id: str) -> Operation:
        """Of a stopped instance's root disk; ready after `timings.snapshot`."""
        inst = self.get_instance(instance_id)
        self._require(inst, ("stopped",), "snapshot")
        snap = Snapshot(new_id(), f"{inst.name}-{now_rfc3339()}", inst.id, inst.disk_size, now_rfc3339())
        self.snapshots[snap.id] = snap
        self.hooks.snapshotted(inst, snap.id)
        op = self.new_operation(snap.id, "snapshot")

        def ready() -> None:
            if snap.id in self.snapshots:
                snap.state = "ready"
            op.state = "success"

        asyncio.get_running_loop().call_later(self.timings.snapshot + self.op_delay(), ready)
        return op

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        return found(self.snapshots.get(snapshot_id), "Snapshot", snapshot_id)

    def delete_snapshot(self, snapshot_id: str) -> Operation:
        snap = self.get_snapshot(snapshot_id)
        del self.snapshots[snap.id]
        return self.done_soon(snap.id, "snapshot")

    def promote_snapshot(self, snapshot_id: str, name: str, description: str, default_user: str) -> Operation:
        snap = self.get_snapshot(snapshot_id)
        if snap.state != "ready":
            raise ApiError(400, f"Snapshot {snap.id} is {snap.state}: cannot promote it")
        if not 10 <= snap.size <= 100:
            raise ApiError(400, f"Snapshot {snap.id} is {snap.size} GiB: a template is 10 to 100 GB")
        tpl = PrivateTemplate(new_id(), name, description, snap.size, self.zone, now_rfc3339(), default_user)
        op = self.new_operation(tpl.id, "template")

        def registered() -> None:
            self.templates[tpl.id] = tpl
            self.hooks.promoted(snap.id, tpl.id)
            op.state = "success"

        asyncio.get_running_loop().call_later(self.timings.template + self.op_delay(), registered)
        return op

    def delete_template(self, template_id: str) -> Operation:
        if self.templates.pop(template_id, None) is None:
            raise ApiError(404, f"Template {template_id} not found")
        return self.done_soon(template_id, "template")

    def _remove(self, inst: Instance) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        if self.instances.pop(inst.id, None) is None:
            return
        for snap in [s for s in self.snapshots.values() if s.instance_id == inst.id]:
            del self.snapshots[snap.id]  # a snapshot dies with its instance (a template does not)
        self.hooks.halted(inst)
        if inst.public_ip:
            self.hooks.release_ip(inst.public_ip)

    def vanish(self, instance_id: str) -> None:
        """The instance disappears out of band (deleted by a person, lost by the cloud)."""
        inst = self.instances.get(instance_id)
        if inst is not None:
            self._remove(inst)

    # security groups ------------------------------------------------------------------------------
    def get_security_group(self, sg_id: str) -> SecurityGroup:
        return found(self.security_groups.get(sg_id), "Security Group", sg_id)

    def create_security_group(self, name: str, description: str) -> Operation:
        if any(sg.name == name for sg in self.security_groups.values()):
            raise ApiError(409, f"a Security Group named {name!r} already exists")
        sg = SecurityGroup(new_id(), name, description)
        self.security_groups[sg.id] = sg
        return self.done_soon(sg.id, "security-group")

    def delete_security_group(self, sg_id: str) -> Operation:
        sg = self.get_security_group(sg_id)
        every = [i for zone in self.account.zones for i in zone.instances.values()]
        users = [i.id for i in every if sg.id in i.security_group_ids]
        if users:
            raise ApiError(400, f"Security Group {sg.id} is in use by instance(s) {', '.join(users)}")
        del self.security_groups[sg.id]
        return self.done_soon(sg.id, "security-group")
