"""A trivial kopf operator used to prove the emulator carries kopf's whole lifecycle."""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION, PLURAL = "remoteollama.dev", "v1alpha1", "remoteollamas"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.client_timeout = 5
    settings.watching.server_timeout = 4
    settings.posting.enabled = False
    settings.persistence.finalizer = "remoteollama.dev/cleanup"


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Pending"
    patch.status["message"] = "created by the toy operator"


@kopf.on.field(GROUP, VERSION, PLURAL, field="metadata.annotations")
def woken(patch: kopf.Patch, new: Any, **_: Any) -> None:
    wake = (new or {}).get("remoteollama.dev/wake-requested")
    if wake:
        patch.status["phase"] = "Starting"
        patch.status["message"] = f"wake {wake}"


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(**_: Any) -> None:
    pass
