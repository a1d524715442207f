"""The baked template (spec.coldStart.template): our private templates, listed once per process and
kept up to date after; a stopped VM's disk baked into one and the older setups' deleted."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.port import Cloud
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import (
    MAX_TEMPLATE_GB,
    template_name,
    template_prefix,
)
from remote_ollama.vm.cloudinit import setup_hash

from .target import Target

log = logging.getLogger("remote_ollama.engine.reconciler")


@dataclass
class BakedTemplates:
    cloud: Cloud
    target: Target
    _templates: list[dict[str, Any]] | None = None
    _bake_failed: set[str] = field(default_factory=set)  # instances whose bake failed: not retried

    @property
    def size_gb(self) -> float:
        """Size of the resource's baked template(s), for status.cost."""
        return sum(int(t.get("size") or 0) for t in self._templates or []) / 1e9

    def wanted(self, spec: Spec) -> bool:
        return spec.cold_start.bake and spec.disk_size <= MAX_TEMPLATE_GB

    async def ours(self) -> list[dict[str, Any]]:
        if self._templates is None:
            prefix = template_prefix(self.target.cluster, self.target.owner_uid)
            self._templates = await self.cloud.private_templates(prefix)
        return self._templates

    async def current(self, spec: Spec) -> dict[str, Any] | None:
        """The template of the current setup that fits spec.diskSize, if one was baked."""
        if not self.wanted(spec):
            return None
        name = template_name(self.target.cluster, self.target.owner_uid, setup_hash(spec.ollama.image))
        fits = spec.disk_size * 1024**3
        return next(
            (t for t in await self.ours() if t.get("name") == name and int(t.get("size") or 0) <= fits),
            None,
        )

    async def baked(self, spec: Spec, instance: ObservedInstance | None) -> bool | None:
        if not self.wanted(spec) or (instance is not None and instance.id in self._bake_failed):
            return None
        return await self.current(spec) is not None

    async def bake(self, spec: Spec, instance_id: str) -> None:
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
        old = [t for t in await self.ours() if t.get("name") != name]
        self._templates = [baked]
        for tpl in old:
            try:
                await self.cloud.delete_template(str(tpl["id"]))
                log.info("deleted the template of an older setup: %s", tpl.get("name"))
            except CloudError as exc:
                log.warning("could not delete the older template %s: %s", tpl.get("name"), exc)
                self._templates.append(tpl)

    async def delete_all(self) -> None:
        for tpl in await self.cloud.private_templates(
            template_prefix(self.target.cluster, self.target.owner_uid)
        ):
            await self.cloud.delete_template(str(tpl["id"]))
        self._templates = []
