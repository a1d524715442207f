"""The adapter's verbs for asyncio code: each blocking SDK call runs in a worker thread, never on
the event loop, so one slow cloud call never stalls the proxy or another resource's reconcile."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from remote_ollama.core.observed import ObservedInstance
from remote_ollama.spec.names import VM_PORT

from .adapter import ExoscaleCloud
from .transport import JSON


class AsyncExoscaleCloud:
    """The same verbs for asyncio code: each call runs in a worker thread, never on the loop."""

    def __init__(self, cloud: ExoscaleCloud):
        self.sync = cloud
        self.zone = cloud.zone

    @classmethod
    def connect(cls, api_key: str, api_secret: str, zone: str, **kwargs: Any) -> AsyncExoscaleCloud:
        return cls(ExoscaleCloud(api_key, api_secret, zone, **kwargs))

    async def check_credentials(self) -> None:
        await asyncio.to_thread(self.sync.catalogue.check_credentials)

    async def resolve_instance_type(self, name: str) -> JSON:
        return await asyncio.to_thread(self.sync.catalogue.resolve_instance_type, name)

    async def resolve_template(self, name: str) -> JSON:
        return await asyncio.to_thread(self.sync.catalogue.resolve_template, name)

    async def check_gpu_quota(self, family: str, gpus: int = 1) -> None:
        await asyncio.to_thread(self.sync.catalogue.check_gpu_quota, family, gpus)

    async def ensure_security_group(
        self, name: str, cidrs: Sequence[str], port: int = VM_PORT, *, owner: str | None = None
    ) -> str:
        return await asyncio.to_thread(
            self.sync.security_groups.ensure_security_group, name, cidrs, port, owner=owner
        )

    async def update_user_data(self, instance_id: str, user_data_b64: str) -> None:
        await asyncio.to_thread(self.sync.update_user_data, instance_id, user_data_b64)

    async def instance_security_groups(self, instance_id: str) -> list[str]:
        return await asyncio.to_thread(self.sync.security_groups.instance_security_groups, instance_id)

    async def delete_security_group(self, name: str, *, deadline: float = 120) -> None:
        await asyncio.to_thread(self.sync.security_groups.delete_security_group, name, deadline=deadline)

    async def security_group_names(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self.sync.security_groups.security_group_names, prefix)

    async def private_templates(self, prefix: str) -> list[JSON]:
        return await asyncio.to_thread(self.sync.templates.private_templates, prefix)

    async def bake_template(self, instance_id: str, name: str, description: str) -> JSON:
        return await asyncio.to_thread(self.sync.templates.bake_template, instance_id, name, description)

    async def delete_template(self, template_id: str) -> None:
        await asyncio.to_thread(self.sync.templates.delete_template, template_id)

    async def volumes(self, labels: Mapping[str, str]) -> list[JSON]:
        return await asyncio.to_thread(self.sync.volumes.volumes, labels)

    async def create_volume(self, name: str, size_gib: int, labels: Mapping[str, str]) -> JSON:
        return await asyncio.to_thread(self.sync.volumes.create_volume, name, size_gib, labels)

    async def grow_volume(self, volume_id: str, size_gib: int) -> None:
        await asyncio.to_thread(self.sync.volumes.grow_volume, volume_id, size_gib)

    async def attach_volume(self, volume_id: str, instance_id: str) -> None:
        await asyncio.to_thread(self.sync.volumes.attach_volume, volume_id, instance_id)

    async def detach_volume(self, volume_id: str) -> None:
        await asyncio.to_thread(self.sync.volumes.detach_volume, volume_id)

    async def delete_volume(self, volume_id: str) -> None:
        await asyncio.to_thread(self.sync.volumes.delete_volume, volume_id)

    async def volume_snapshots(self, labels: Mapping[str, str]) -> list[JSON]:
        return await asyncio.to_thread(self.sync.volumes.volume_snapshots, labels)

    async def delete_volume_snapshot(self, snapshot_id: str) -> None:
        await asyncio.to_thread(self.sync.volumes.delete_volume_snapshot, snapshot_id)

    async def find_instances(self, labels: Mapping[str, str]) -> list[ObservedInstance]:
        return await asyncio.to_thread(self.sync.find_instances, labels)

    async def find_instance(self, owner_uid: str, cluster: str) -> ObservedInstance | None:
        return await asyncio.to_thread(self.sync.find_instance, owner_uid, cluster)

    async def get_instance(self, instance_id: str) -> ObservedInstance | None:
        return await asyncio.to_thread(self.sync.get_instance, instance_id)

    async def create_instance(
        self,
        name: str,
        instance_type: str | Mapping[str, Any],
        template: str | Mapping[str, Any],
        disk_size: int,
        user_data_b64: str,
        security_group_id: str,
        labels: Mapping[str, str],
        wait: bool = True,
        deadline: float = 600,
        confirm: bool = False,
    ) -> ObservedInstance:
        return await asyncio.to_thread(
            self.sync.create_instance,
            name,
            instance_type,
            template,
            disk_size,
            user_data_b64,
            security_group_id,
            labels,
            wait,
            deadline,
            confirm,
        )

    async def start_instance(
        self, instance_id: str, wait: bool = True, deadline: float = 600, confirm: bool = False
    ) -> ObservedInstance:
        return await asyncio.to_thread(self.sync.start_instance, instance_id, wait, deadline, confirm)

    async def stop_instance(
        self, instance_id: str, wait: bool = True, deadline: float = 600
    ) -> ObservedInstance:
        return await asyncio.to_thread(self.sync.stop_instance, instance_id, wait, deadline)

    async def delete_instance(self, instance_id: str, wait: bool = True, deadline: float = 600) -> None:
        await asyncio.to_thread(self.sync.delete_instance, instance_id, wait, deadline)
