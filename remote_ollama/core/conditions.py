"""The status conditions a round reports (Ready, InstanceRunning, OllamaReady, ModelsReady,
ModelLoaded, VMSetup) from what it saw; pure."""

from __future__ import annotations

from remote_ollama.spec.model import Spec
from remote_ollama.spec.sections import format_duration
from remote_ollama.spec.vocabulary import ConditionType, Reason

from .setup import SetupReport
from .types import Condition, Health

# A warm-up that has not loaded the model by then is given up: the VM is declared Ready anyway, so
# held requests are served (they load the model themselves) rather than wait for a load that fails.
WARM_UP_TIMEOUT = 300.0


def warm_up_target(spec: Spec) -> str | None:
    """The model a wake loads before Ready: models[0], unless warm-up is off or keepAlive is 0
    (a load with keep_alive 0 unloads at once, so waiting for it would never end)."""
    if not spec.warm_up or not spec.models or not any(c in "123456789" for c in spec.keep_alive):
        return None
    return spec.models[0]


def model_loaded(spec: Spec, health: Health | None, warming: bool, timed_out: bool) -> Condition | None:
    """ModelLoaded, present only while the VM's Ollama says what it has in memory (GET /api/ps)."""
    if health is None or health.loaded is None or not spec.models:
        return None
    target = spec.models[0]
    if has_model(health.loaded, target):
        return Condition(ConditionType.MODEL_LOADED, True, Reason.LOADED, f"{target} is in memory")
    if warming:
        return Condition(
            ConditionType.MODEL_LOADED, False, Reason.LOADING, f"loading {target} into memory (warm-up)"
        )
    if timed_out:
        return Condition(
            ConditionType.MODEL_LOADED,
            False,
            Reason.WARM_UP_TIMED_OUT,
            f"{target} did not load within {format_duration(WARM_UP_TIMEOUT)}; the first request loads it",
        )
    if warm_up_target(spec) is None:
        return Condition(
            ConditionType.MODEL_LOADED, False, Reason.WARM_UP_DISABLED, f"{target} loads on the first request"
        )
    return Condition(
        ConditionType.MODEL_LOADED,
        False,
        Reason.NOT_LOADED,
        f"{target} is not in memory; the next request loads it",
    )


def round_conditions(
    spec: Spec,
    running: bool,
    health: Health | None,
    missing: tuple[str, ...],
    ready_msg: str,
    warming: bool = False,
    timed_out: bool = False,
) -> tuple[Condition, ...]:
    ollama = running and health is not None
    models = ollama and not missing
    ready = models and not warming
    loaded = model_loaded(spec, health if ollama else None, warming, timed_out)
    return (
        Condition(
            ConditionType.READY,
            ready,
            Reason.READY if ready else Reason.WARMING_UP if warming else Reason.NOT_READY,
            ready_msg,
        ),
        Condition(ConditionType.INSTANCE_RUNNING, running, Reason.RUNNING if running else Reason.NOT_RUNNING),
        Condition(
            ConditionType.OLLAMA_READY,
            ollama,
            Reason.ANSWERING if ollama else Reason.NOT_ANSWERING,
            f"Ollama {health.version}" if health else "",
        ),
        Condition(
            ConditionType.MODELS_READY,
            models,
            Reason.ALL_PRESENT if models else (Reason.MISSING if ollama else Reason.UNKNOWN),
            f"missing: {', '.join(missing)}" if missing else "",
        ),
    ) + ((loaded,) if loaded else ())


def setup_condition(report: SetupReport | None) -> Condition | None:
    """VMSetup, present while the VM's setup document was read this round."""
    if report is None:
        return None
    if report.failed:
        return Condition(ConditionType.VM_SETUP, False, Reason.SETUP_FAILED, report.failure())
    if report.state == "done":
        return Condition(ConditionType.VM_SETUP, True, Reason.SETUP_DONE, report.describe())
    return Condition(ConditionType.VM_SETUP, False, Reason.SETUP_IN_PROGRESS, report.describe())


def setup_failed(conditions: tuple[Condition, ...], message: str) -> tuple[Condition, ...]:
    """Ready=False SetupFailed (a permanent reason: the proxy answers held requests at once)."""
    return tuple(
        Condition(ConditionType.READY, False, Reason.SETUP_FAILED, message)
        if c.type == ConditionType.READY
        else c
        for c in conditions
    )


def has_model(present: tuple[str, ...], wanted: str) -> bool:
    """Ollama reports `name:tag`; a spec may omit `:latest`."""
    full = wanted if ":" in wanted.rsplit("/", 1)[-1] else f"{wanted}:latest"
    return wanted in present or full in present
