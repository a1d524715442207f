"""The one `/status` document (the fields a client of the original single-VM proxy reads), for the
operator-mode proxy, standalone and the embedded API, and the one phase-to-word map it uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Phase

# The /status word for a phase; every other phase (and an unknown one) is "idle".
PROVISIONING_WORDS = {
    Phase.READY: "ready",
    Phase.PROVISIONING: "provisioning",
    Phase.STARTING: "provisioning",
    Phase.FAILED: "error",
}


def provisioning_word(phase: str | None, *, error: bool = False) -> str:
    """idle, provisioning, ready or error; `error`: refused or failing whatever the phase says."""
    if error:
        return "error"
    return PROVISIONING_WORDS.get(Phase(phase), "idle") if phase in set(Phase) else "idle"


def status_document(
    spec: Spec,
    *,
    phase: str | None,
    error: bool = False,
    instance_status: str | None,
    remote_url: str | None,
    setup: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """`/status`: the phase's word, the VM and the spec's zone, type, models and idle timeout
    (seconds; 0: never stopped for idleness), the VM's setup step while it is being set up (`setup`:
    state, step, message), plus what only the caller knows (`extra`)."""
    shown = {k: setup[k] for k in ("state", "step", "message", "log") if k in setup} if setup else None
    return {
        "service": "remote-ollama",
        "provisioning_status": provisioning_word(phase, error=error),
        "instance_status": instance_status,
        "remote_url": remote_url,
        "zone": spec.zone,
        "instance_type": spec.instance_type.name,
        "ollama_model": ",".join(spec.models),
        "idle_timeout": int(spec.idle.stop_after or 0),
        "phase": str(phase or Phase.PENDING),
        **({"setup": shown} if shown else {}),
        **extra,
    }
