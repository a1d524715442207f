"""The adapter's verbs for asyncio code: each blocking SDK call runs in a worker thread, never on
the event loop, so one slow cloud call never stalls the proxy or another resource's reconcile.

Each verb is the blocking one's, named once (`InThread`): its signature comes from the blocking
method through a ParamSpec, so callers are type-checked against it and nothing is restated here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from .adapter import ExoscaleCloud
from .catalogue import Catalogue
from .security_groups import SecurityGroups
from .templates import Templates
from .volumes import Volumes

P = ParamSpec("P")
R = TypeVar("R")


class InThread(Generic[P, R]):
    """`verb` of the blocking adapter (or of its `part`: "catalogue", "security_groups",
    "templates", "volumes"), as a coroutine method that runs it in a worker thread."""

    def __init__(self, verb: Callable[Concatenate[Any, P], R], part: str = "") -> None:
        self.name, self.part = verb.__name__, part

    def __get__(
        self, cloud: AsyncExoscaleCloud, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        target = getattr(cloud.sync, self.part) if self.part else cloud.sync
        blocking: Callable[P, R] = getattr(target, self.name)

        async def in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.to_thread(blocking, *args, **kwargs)

        return in_thread


class AsyncExoscaleCloud:
    """The same verbs for asyncio code: each call runs in a worker thread, never on the loop."""

    def __init__(self, cloud: ExoscaleCloud):
        self.sync = cloud
        self.zone = cloud.zone

    @classmethod
    def connect(cls, api_key: str, api_secret: str, zone: str, **kwargs: Any) -> AsyncExoscaleCloud:
        return cls(ExoscaleCloud(api_key, api_secret, zone, **kwargs))

    check_credentials = InThread(Catalogue.check_credentials, "catalogue")
    resolve_instance_type = InThread(Catalogue.resolve_instance_type, "catalogue")
    resolve_template = InThread(Catalogue.resolve_template, "catalogue")
    check_gpu_quota = InThread(Catalogue.check_gpu_quota, "catalogue")

    ensure_security_group = InThread(SecurityGroups.ensure_security_group, "security_groups")
    instance_security_groups = InThread(SecurityGroups.instance_security_groups, "security_groups")
    delete_security_group = InThread(SecurityGroups.delete_security_group, "security_groups")
    security_group_names = InThread(SecurityGroups.security_group_names, "security_groups")

    private_templates = InThread(Templates.private_templates, "templates")
    bake_template = InThread(Templates.bake_template, "templates")
    delete_template = InThread(Templates.delete_template, "templates")

    volumes = InThread(Volumes.volumes, "volumes")
    create_volume = InThread(Volumes.create_volume, "volumes")
    grow_volume = InThread(Volumes.grow_volume, "volumes")
    attach_volume = InThread(Volumes.attach_volume, "volumes")
    detach_volume = InThread(Volumes.detach_volume, "volumes")
    delete_volume = InThread(Volumes.delete_volume, "volumes")
    volume_snapshots = InThread(Volumes.volume_snapshots, "volumes")
    delete_volume_snapshot = InThread(Volumes.delete_volume_snapshot, "volumes")

    find_instances = InThread(ExoscaleCloud.find_instances)
    find_instance = InThread(ExoscaleCloud.find_instance)
    get_instance = InThread(ExoscaleCloud.get_instance)
    create_instance = InThread(ExoscaleCloud.create_instance)
    start_instance = InThread(ExoscaleCloud.start_instance)
    stop_instance = InThread(ExoscaleCloud.stop_instance)
    delete_instance = InThread(ExoscaleCloud.delete_instance)
    update_user_data = InThread(ExoscaleCloud.update_user_data)
