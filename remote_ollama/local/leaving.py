"""What standalone does with its VM on exit (REMOTE_OLLAMA_ON_EXIT: keep, stop or
destroy)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from remote_ollama.spec.vocabulary import Phase

log = logging.getLogger("remote_ollama")


if TYPE_CHECKING:
    from .controller import LocalController


async def leave(c: LocalController, policy: str) -> None:
    """Leave the VM as the exit `policy` says: keep it, stop it, or destroy it (and its group)."""
    mem = c.saved.memory
    if policy == "keep":
        return
    if policy == "destroy":
        # by labels (a VM created in the round before SIGTERM has no id in memory yet); the
        # security group can go only once the instance is gone: waits for it (bounded by stop())
        deleted = await c.reconciler.destroy_all()
        if deleted:
            log.info("on exit: destroyed instance %s and its security group", ", ".join(deleted))
        else:
            log.info("on exit: no instance to destroy")
        c.saved.memory = replace(mem, destroyed_for_idle=True, scaled_down_at=c.clock())
        c.persist()
        return
    # By id, else by labels: a VM created in the round before SIGTERM has no id in memory yet.
    instance = await c.reconciler.ownership.observe_instance(mem)
    if instance is None:
        log.info("on exit: no instance to stop")
        return
    if instance.state in ("running", "starting"):
        await c.reconciler.cloud.stop_instance(instance.id, wait=False)
        c.saved.memory = replace(mem, scaled_down_at=c.clock(), phase=Phase.STOPPING)
        log.info("on exit: stopping instance %s", instance.id)
    else:
        log.info("on exit: instance %s is already %s", instance.id, instance.state)
    c.persist()
