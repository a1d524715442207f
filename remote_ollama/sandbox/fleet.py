"""The simulated VMs of the cloud: a loopback address per instance and a `SimulatedVM` per running
one (the cloud state's `InstanceHooks`), one transition at a time each."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable

from remote_ollama.sandbox.exoscale.objects import Instance
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.sandbox.vm import SETUP_DONE, Disk, SimulatedVM
from remote_ollama.sandbox.vm_volume import VolumeLookup
from remote_ollama.spec.names import VM_PORT

log = logging.getLogger(__name__)

# -- addresses -----------------------------------------------------------------------------------


class LoopbackPool:
    """Hands out 127.0.X.Y addresses whose VM port is free; shared by all simulators of a process."""

    _taken: set[str] = set()
    _lock = threading.Lock()

    def __init__(self, port: int = VM_PORT):
        self.port = port
        self._start = os.getpid() % 240

    def _free(self, ip: str) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((ip, self.port))
            except OSError:
                return False
        return True

    def allocate_ip(self) -> str:
        with self._lock:
            for n in range(240 * 254):
                third, fourth = 10 + (self._start + n // 254) % 240, 1 + n % 254
                ip = f"127.0.{third}.{fourth}"
                if ip not in self._taken and self._free(ip):
                    self._taken.add(ip)
                    return ip
        raise RuntimeError("no free loopback address for a simulated VM")

    def release_ip(self, ip: str) -> None:
        with self._lock:
            self._taken.discard(ip)


class VMFleet:
    """InstanceHooks that run a SimulatedVM per running instance, one transition at a time each."""

    def __init__(self, timings: SimTimings, *, port: int = VM_PORT):
        self.timings = timings
        self.pool = LoopbackPool(port)
        self.port = port
        self.vms: dict[str, SimulatedVM] = {}
        self.disks: dict[str, Disk] = {}  # per instance: what its first boot wrote and installed
        # per private template id: what its disk had installed (a boot from it skips those steps)
        self.templates: dict[str, set[str]] = {}
        self._snapshots: dict[str, set[str]] = {}
        self.volumes: VolumeLookup | None = None  # the simulator's block storage, by instance
        # setup steps that fail, with the log line they print (tests, the sandbox's --fail-setup)
        self.fail_steps: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._booting: dict[str, asyncio.Task[None]] = {}

    def allocate_ip(self) -> str:
        return self.pool.allocate_ip()

    def release_ip(self, ip: str) -> None:
        self.pool.release_ip(ip)

    def _serialised(self, instance_id: str, step: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        lock = self._locks.setdefault(instance_id, asyncio.Lock())

        async def run() -> None:
            async with lock:
                await step()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def booted(self, instance: Instance) -> None:
        if not instance.public_ip:
            log.warning("instance %s has no public IP: its VM is unreachable", instance.id)
            return
        vm = SimulatedVM(
            instance.id,
            instance.public_ip,
            instance.user_data,
            port=self.port,
            timings=self.timings,
            disk=self.disks.get(instance.id),
            base=self.templates.get(instance.template_id),
            fail_steps=self.fail_steps,
            volumes=self.volumes,
        )

        async def boot() -> None:
            old = self.vms.get(instance.id)
            if old is not None:
                await old.shutdown()
            self.vms[instance.id] = vm
            await vm.boot()

        def keep_disk(task: asyncio.Task[None]) -> None:
            if vm.disk is not None:
                self.disks[instance.id] = vm.disk

        task = self._serialised(instance.id, boot)
        task.add_done_callback(keep_disk)
        self._booting[instance.id] = task

    def halted(self, instance: Instance) -> None:
        booting = self._booting.pop(instance.id, None)
        if booting is not None and not booting.done():
            booting.cancel()  # power cut during cloud-init: it never gets to listen

        async def halt() -> None:
            vm = self.vms.pop(instance.id, None)
            if vm is not None:
                await vm.shutdown()
                if vm.disk is not None:
                    self.disks[instance.id] = vm.disk

        self._serialised(instance.id, halt)

    def snapshotted(self, instance: Instance, snapshot_id: str) -> None:
        disk = self.disks.get(instance.id)
        self._snapshots[snapshot_id] = set(disk.installed) if disk is not None else set()

    def promoted(self, snapshot_id: str, template_id: str) -> None:
        # what a boot from the template finds installed; the first boot's "setup done" mark is not
        # carried: cloud-init runs the setup again for the new instance (it skips what is there)
        self.templates[template_id] = self._snapshots.get(snapshot_id, set()) - {SETUP_DONE}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for vm in list(self.vms.values()):
            await vm.shutdown()
        self.vms.clear()
