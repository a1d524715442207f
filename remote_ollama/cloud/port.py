"""The cloud port: what the round asks of a cloud, in the product's verbs, and nothing of how.

`engine/` and the shells' round code type their cloud as `Cloud`; `cloud/exoscale/` is the one
adapter (`AsyncExoscaleCloud` satisfies this structurally) and the sandbox's simulated Exoscale API
is its test world. A second provider would be a sibling folder of `exoscale/` whose async class
has these methods and raises `cloud.errors` types, plus a line where a shell connects it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from remote_ollama.core.observed import ObservedInstance
from remote_ollama.spec.names import VM_PORT


class Cloud(Protocol):
    """One zone of one account; every verb may raise a `cloud.errors.CloudError`."""

    zone: str

    async def find_instances(self, labels: Mapping[str, str]) -> list[ObservedInstance]: ...

    async def find_instance(self, owner_uid: str, cluster: str) -> ObservedInstance | None: ...

    async def get_instance(self, instance_id: str) -> ObservedInstance | None: ...

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
    ) -> ObservedInstance: ...

    async def start_instance(
        self, instance_id: str, wait: bool = True, deadline: float = 600, confirm: bool = False
    ) -> ObservedInstance: ...

    async def stop_instance(
        self, instance_id: str, wait: bool = True, deadline: float = 600
    ) -> ObservedInstance: ...

    async def delete_instance(self, instance_id: str, wait: bool = True, deadline: float = 600) -> None: ...

    async def update_user_data(self, instance_id: str, user_data_b64: str) -> None: ...

    async def ensure_security_group(
        self, name: str, cidrs: Sequence[str], port: int = VM_PORT, *, owner: str | None = None
    ) -> str: ...

    async def instance_security_groups(self, instance_id: str) -> list[str]: ...

    async def delete_security_group(self, name: str, *, deadline: float = 120) -> None: ...

    async def security_group_names(self, prefix: str) -> list[str]: ...

    async def private_templates(self, prefix: str) -> list[dict[str, Any]]: ...

    async def bake_template(self, instance_id: str, name: str, description: str) -> dict[str, Any]: ...

    async def delete_template(self, template_id: str) -> None: ...

    async def volumes(self, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...

    async def create_volume(self, name: str, size_gib: int, labels: Mapping[str, str]) -> dict[str, Any]: ...

    async def grow_volume(self, volume_id: str, size_gib: int) -> None: ...

    async def attach_volume(self, volume_id: str, instance_id: str) -> None: ...

    async def detach_volume(self, volume_id: str) -> None: ...

    async def delete_volume(self, volume_id: str) -> None: ...

    async def volume_snapshots(self, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...

    async def delete_volume_snapshot(self, snapshot_id: str) -> None: ...
