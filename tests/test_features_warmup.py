"""End to end (standalone, in process): a wake loads spec.models[0] before Ready, so the first held
request finds the model in memory. The Exoscale simulator, its simulated VM and Ollama are real;
the client is the official `ollama` one, through the proxy."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import ollama

sys.path.insert(0, str(Path(__file__).resolve().parent / "faults"))

from standalone_world import MODEL, StandaloneWorld, spec, standalone_world

from remote_ollama.core.types import Decision, WakeTiming
from remote_ollama.proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.proxy.metrics import ProxyMetrics
from remote_ollama.sandbox.ollama.server import ollama_state
from remote_ollama.sandbox.ollama.state import OllamaState
from remote_ollama.spec.model import Spec
from remote_ollama.spec.vocabulary import Phase

LOADED_NS = 10_000_000  # the simulated Ollama reports 0.5 ms for a loaded model, >= 50 ms for a load


def vm_ollama(w: StandaloneWorld) -> OllamaState | None:
    """The simulated Ollama of the controller's VM, once it serves."""
    iid = w.controller.saved.memory.instance_id
    vm = w.sim.vm(iid) if iid else None
    runner = vm._runner if vm is not None else None
    return ollama_state(runner.app) if runner is not None else None


@dataclass
class Round:
    phase: Phase
    reason: str
    loaded: tuple[str, ...]  # what the VM's Ollama had in memory when the round ended
    generate_body: dict[str, object] | None


@dataclass
class Recorder:
    rounds: list[Round] = field(default_factory=list)
    wakes: list[WakeTiming] = field(default_factory=list)
    proxy_metrics: ProxyMetrics | None = None

    def ready_round(self) -> Round:
        return next(r for r in self.rounds if r.phase is Phase.READY)


@asynccontextmanager
async def world(
    tmp_path: Path, the_spec: Spec
) -> AsyncIterator[tuple[StandaloneWorld, ollama.AsyncClient, Recorder]]:
    async with standalone_world(tmp_path, the_spec=the_spec) as w:
        c, rec = w.controller, Recorder()
        original = c.step

        async def step() -> Decision:
            d = await original()
            state = vm_ollama(w)
            loaded = tuple(r.name for r, _ in state.running()) if state else ()
            body = state.last_body.get("/api/generate") if state else None
            rec.rounds.append(Round(d.phase, d.reason, loaded, body))
            return d

        c.step = step  # type: ignore[method-assign]
        c.on_wake = rec.wakes.append
        app = make_proxy_app(c, c, ProxySettings(hold_timeout=20))
        rec.proxy_metrics = app[PROXY_KEY].metrics
        runner, port = await start_proxy(app, "127.0.0.1", 0)
        try:
            yield w, ollama.AsyncClient(host=f"http://127.0.0.1:{port}"), rec
        finally:
            await runner.cleanup()


async def test_wake_loads_the_model_before_ready_and_the_first_request_does_not_wait(tmp_path: Path) -> None:
    async with world(tmp_path, spec()) as (w, client, rec):
        answer = await client.generate(model=MODEL, prompt="hello")  # finds the VM down: held
        assert answer.done and answer.response
        # the first request's own reply says the model was already in memory
        assert answer.load_duration is not None and answer.load_duration < LOADED_NS

        reasons = [r.reason for r in rec.rounds]
        assert "WarmingUp" in reasons and reasons.index("WarmingUp") < reasons.index("Ready")
        ready = rec.ready_round()
        assert MODEL in ready.loaded  # GET /api/ps listed it when Ready was declared
        # the warm-up was an empty generate with the spec's keep_alive, not streamed
        assert ready.generate_body == {"model": MODEL, "prompt": "", "keep_alive": "30m", "stream": False}

        state = vm_ollama(w)
        assert state is not None and state.requests["/api/generate"] == 2  # one warm-up, one request
        status = w.controller.status()
        assert status["provisioning_status"] == "ready"
        conds = {c.type: (c.status, c.reason) for c in w.controller.decision.conditions}  # type: ignore[union-attr]
        assert conds["ModelLoaded"] == (True, "Loaded")

        # the wake's milestones, in order, and the proxy's time to the first byte of the held request
        (wake,) = rec.wakes
        marks = [wake.requested_at, wake.running_at, wake.ollama_at, wake.models_at, wake.ready_at]
        assert None not in marks and marks == sorted(marks)  # type: ignore[type-var]
        assert set(wake.phases()) == {"to_running", "to_ollama", "to_models", "to_ready", "total"}
        assert rec.proxy_metrics is not None
        sample = rec.proxy_metrics.registry.get_sample_value
        first = sample("remote_ollama_proxy_wake_first_request_seconds_sum")
        assert sample("remote_ollama_proxy_wake_first_request_seconds_count") == 1
        assert first is not None and first >= wake.seconds * 0.5  # it waited for (most of) the wake


async def test_without_warm_up_the_first_request_pays_the_load(tmp_path: Path) -> None:
    async with world(tmp_path, replace(spec(), warm_up=False)) as (_, client, rec):
        answer = await client.generate(model=MODEL, prompt="hello")
        assert answer.load_duration is not None and answer.load_duration >= LOADED_NS
        assert "WarmingUp" not in [r.reason for r in rec.rounds]
        assert MODEL not in rec.ready_round().loaded
