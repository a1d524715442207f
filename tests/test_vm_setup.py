"""The VM reports its setup: the status document (VM-written, read capped and for display only),
the setup script's own recorder against a simulated Ollama, and what the lifecycle makes of it."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from simulated_ollama import serve
from waiting import until

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.core.lifecycle import POLL_PROBE, decide
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.setup import MAX_DOCUMENT, SetupReport, parse_setup_report, run_id
from remote_ollama.core.types import ActionKind, Activity, Decision, Health, Memory, Observation
from remote_ollama.kube.operator.status import memory_from, status_patch
from remote_ollama.kube.proxy_main import refusal_from
from remote_ollama.local.controller import LocalController
from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import proxy_settings
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.objects import GONE_STATES
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.sandbox.ollama.server import make_ollama_app
from remote_ollama.spec.names import LABEL_SPEC_HASH, SETUP_STATUS_PATH
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import ConditionType, Phase, Reason
from remote_ollama.vm import paths, scripts, services
from remote_ollama.vm.pki import make_vm_identity

RUN = "0123456789abcdef"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MODEL = "granite3.1-dense:8b"
SPEC = parse_spec({"credentialsSecretRef": {"name": "c"}, "models": [MODEL], "idle": {"stopAfter": "30m"}})
RUNNING = ObservedInstance(
    id="i-1", state="running", public_ip="127.0.10.2", labels={LABEL_SPEC_HASH: SPEC.instance_hash()}
)


def document(**over: object) -> bytes:
    doc: dict[str, object] = {
        "version": 1,
        "run": RUN,
        "state": "running",
        "step": "image",
        "steps": [
            {"name": "nginx", "state": "done"},
            {"name": "driver", "state": "present"},
            {"name": "docker", "state": "done"},
            {"name": "image", "state": "running"},
            {"name": "ollama", "state": "pending"},
            {"name": f"model:{MODEL}", "state": "pending"},
        ],
    }
    doc.update(over)
    return json.dumps(doc).encode()


def report(raw: bytes) -> SetupReport:
    found = parse_setup_report(raw, RUN)
    assert found is not None
    return found


# -- the document ----------------------------------------------------------------------------------


def test_the_report_says_the_step_and_where_it_is() -> None:
    r = report(document())
    assert (r.state, r.step, r.failed) == ("running", "image", False)
    assert r.describe() == "setup step image (running) (step 4/6)"
    shown = r.to_status()
    assert shown["step"] == "image" and len(shown["steps"]) == 6  # type: ignore[arg-type]


def test_a_model_pull_shows_bytes_done_and_total() -> None:
    steps = [{"name": f"model:{MODEL}", "state": "running", "done": 1_200_000_000, "total": 4_900_000_000}]
    r = report(document(step=f"model:{MODEL}", steps=steps))
    assert r.describe() == f"setup step model:{MODEL} (running) 1.2 GB/4.9 GB (step 1/1)"


def test_another_runs_document_is_not_this_vms() -> None:
    """A template's disk (or an earlier VM) holds an old document: its run differs."""
    assert parse_setup_report(document(run="ffffffffffffffff"), RUN) is None
    assert run_id("cert") != run_id("other cert") and len(run_id("cert")) == 16


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        document(version=2),
        document(state="exploded"),
        document(step=7),
        b"{" * 100_000,
        document(log=["x" * 100]) + b" " * MAX_DOCUMENT,  # over the cap
    ],
)
def test_what_is_not_a_report_is_ignored(raw: bytes) -> None:
    assert parse_setup_report(raw, RUN) is None


def test_nothing_the_vm_writes_reaches_status_unchecked() -> None:
    steps = [
        {"name": "ok\x1b[31m\nstep", "state": "done", "done": -5, "total": True},
        {"name": "bad-state", "state": "rm -rf"},
        "not a step",
        *({"name": f"s{i}", "state": "done"} for i in range(500)),
    ]
    log = [
        "E: unable to fetch https://x",
        "Authorization: Bearer abcdefghijklmnop",
        "token=0123456789abcdef0123456789abcdef0123",
        "-----BEGIN PRIVATE KEY----- MIIEv",
        "y" * 5000,
        *(f"line {i}" for i in range(40)),
    ]
    r = report(document(state="failed", step="docker", steps=steps, log=log))
    assert r.steps[0].name == "ok [31m step" and r.steps[0].done is None and r.steps[0].total is None
    assert "bad-state" not in [s.name for s in r.steps] and len(r.steps) <= 64
    assert len(r.log) == 12 and r.log[-1] == "line 39"
    r2 = report(document(state="failed", step="docker", log=log[:5]))
    assert r2.log[0] == "E: unable to fetch https://x"
    assert "abcdefghijklmnop" not in r2.failure() and "0123456789abcdef0123" not in r2.failure()
    assert "MIIEv" not in r2.failure() and all(len(line) <= 200 for line in r2.log)
    assert r2.failure().startswith("VM setup step 'docker' failed: E: unable to fetch")


# -- the VM's recorder (vm/cloudinit.py's STEP_TOOL) --------------------------------------------------


async def test_the_setup_scripts_recorder_writes_what_the_operator_reads(tmp_path: Path) -> None:
    """The tool the real VM runs, pointed at temporary paths and a simulated Ollama: begin, steps,
    a model pull with bytes, then a failure carrying the log's last lines; the operator's parser
    reads each document of this run (and the key in the log comes out redacted)."""
    vm_cert, _ = make_vm_identity()  # the certificate the VM makes itself at first boot
    cert, models, doc, log = (tmp_path / n for n in ("tls.crt", "models", "setup.json", "setup.log"))
    cert.write_text(vm_cert)
    models.write_text(f"{MODEL}\n")
    async with serve(make_ollama_app([], token_delay=0.0, pull_delay=0.05)) as ollama:
        tool = (
            scripts.STEP_TOOL.replace(paths.SETUP_DOC_PATH, str(doc))
            .replace(paths.SETUP_LOG_PATH, str(log))
            .replace(paths.TLS_CERT_PATH, str(cert))
            .replace(paths.MODELS_PATH, str(models))
            .replace("http://127.0.0.1:11434", ollama.url)
        )
        script = tmp_path / "step.py"
        script.write_text(tool)

        async def step(*args: str) -> None:
            proc = await asyncio.create_subprocess_exec(sys.executable, str(script), *args)
            assert await proc.wait() == 0

        def read() -> SetupReport:
            found = parse_setup_report(doc.read_bytes(), run_id(vm_cert))
            assert found is not None
            return found

        await step("begin", "nginx", "driver", "docker", "image", "ollama")
        assert [s.name for s in read().steps] == [
            "nginx",
            "driver",
            "docker",
            "image",
            "ollama",
            f"model:{MODEL}",
        ]
        await step("mark", "driver", "present")
        # another run's document (written at a baked disk's boot before this VM's setup began) is
        # replaced, never continued: the operator would ignore it
        stale = json.loads(doc.read_text())
        doc.write_text(json.dumps({**stale, "run": "ffffffffffffffff", "state": "done"}))
        await step("mark", "driver", "present")
        assert [(s.name, s.state) for s in read().steps] == [("driver", "present")]
        await step("begin", "nginx", "driver", "docker", "image", "ollama")
        await step("mark", "driver", "present")
        await step("pull", MODEL)
        r = read()
        assert [(s.name, s.state) for s in r.steps][1] == ("driver", "present")
        assert (r.step, r.current and r.current.state) == (f"model:{MODEL}", "done")
        assert MODEL in [m.name for m in ollama.state.models.values()]
        log.write_text("== image\nError response from daemon: pull access denied\nkey=" + "k" * 40 + "\n")
        await step("fail", "image")
        r = read()
        assert r.failed and r.step == "image"
        assert "pull access denied" in r.failure() and "k" * 40 not in r.failure()
    assert oct(doc.stat().st_mode & 0o777) == "0o644"  # nginx (www-data) reads it


def test_nginx_serves_the_document_behind_the_same_mutual_tls() -> None:
    site = services.NGINX_SITE
    location = site.index(f"location = {SETUP_STATUS_PATH}")
    assert site.index("ssl_verify_client      on;") < location
    assert f"alias {paths.SETUP_DOC_PATH};" in site[location:]


def test_every_step_checks_first_whether_it_is_there() -> None:
    script = scripts.SETUP_SCRIPT
    for step, check in (
        ("driver", "if nvidia-smi >/dev/null 2>&1; then ok present"),
        ("docker", "if grep -qs nvidia /etc/docker/daemon.json; then ok present"),
        ("image", 'if docker image inspect "$IMAGE" >/dev/null 2>&1; then ok present'),
    ):
        assert script.index(f"run {step}") < script.index(check)
    assert 'trap \'[ $? -eq 0 ] || "$STEP" fail "$NOW"\' EXIT' in script
    assert '"$STEP" begin' in script and "set -x" not in script


# -- the lifecycle -----------------------------------------------------------------------------------


def step(
    setup: SetupReport | None,
    memory: Memory,
    *,
    seconds: float = 0,
    activity: Activity | None = None,
    health: Health | None = None,
    instance: ObservedInstance | None = RUNNING,
) -> Decision:
    now = T0 + timedelta(seconds=seconds)
    return decide(Observation(SPEC, instance, activity or Activity(), memory, now, health, setup=setup))


STARTING = Memory(created_at=T0, phase=Phase.STARTING, instance_id="i-1")


def cond(d: Decision, kind: str) -> tuple[bool, str, str] | None:
    found = [c for c in d.conditions if c.type == kind]
    return (found[0].status, found[0].reason, found[0].message) if found else None


def test_status_and_conditions_show_the_current_step() -> None:
    d = step(report(document()), STARTING)
    assert d.phase == Phase.STARTING
    assert d.message == "VM running; waiting for Ollama to answer; setup step image (running) (step 4/6)"
    assert cond(d, ConditionType.VM_SETUP) == (
        False,
        Reason.SETUP_IN_PROGRESS,
        "setup step image (running) (step 4/6)",
    )
    assert d.setup is not None and d.setup.step == "image"


def test_a_failed_step_is_setup_failed_naming_the_step_and_the_vm_goes() -> None:
    failed = report(document(state="failed", log=["Error response from daemon: manifest unknown"]))
    d = step(failed, STARTING, activity=Activity(wake_requested=T0 - timedelta(seconds=30)))
    message = "VM setup step 'image' failed: Error response from daemon: manifest unknown"
    assert (d.phase, d.reason, d.message) == (Phase.FAILED, Reason.SETUP_FAILED, message)
    assert cond(d, ConditionType.READY) == (False, Reason.SETUP_FAILED, message)
    assert cond(d, ConditionType.VM_SETUP) == (False, Reason.SETUP_FAILED, message)
    assert d.kinds == (ActionKind.DELETE_INSTANCE,) and Reason.SETUP_FAILED.warning
    assert any("manifest unknown" in e for e in d.events)
    # the operator-mode proxy reads it as a refusal: held requests are answered at once
    status = {
        "conditions": [
            {"type": c.type, "status": str(c.status), "reason": str(c.reason), "message": c.message}
            for c in d.conditions
        ]
    }
    refusal = refusal_from(status)
    assert (
        refusal is not None
        and refusal.reason is Reason.SETUP_FAILED
        and "manifest unknown" in refusal.message
    )

    # gone: no new VM for the requests that were waiting, the failure stays in status
    after = step(
        None, d.memory, seconds=5, instance=None, activity=Activity(wake_requested=T0 - timedelta(seconds=30))
    )
    assert after.kinds == () and (after.phase, after.reason) == (Phase.FAILED, Reason.SETUP_FAILED)
    assert cond(after, ConditionType.READY) == (False, Reason.SETUP_FAILED, message)
    assert not any("vanished" in e for e in after.events)

    # a request after the failure tries a new VM
    retry = step(
        None,
        after.memory,
        seconds=60,
        instance=None,
        activity=Activity(wake_requested=T0 + timedelta(seconds=50)),
    )
    assert ActionKind.CREATE_INSTANCE in retry.kinds and retry.phase == Phase.PROVISIONING
    assert retry.memory.setup_failure is None


def test_a_done_setup_with_ollama_answering_is_ready_as_before() -> None:
    done = report(document(state="done", step=f"model:{MODEL}"))
    d = step(done, replace(STARTING), health=Health("0.33.0", (MODEL,), loaded=(MODEL,)))
    assert d.phase == Phase.READY
    assert cond(d, ConditionType.VM_SETUP) == (True, Reason.SETUP_DONE, "setup done")


# -- end to end: standalone's controller and proxy against the simulator's VM ------------------------

KEY, SECRET = "EXOsetupreport000000000", "setup-report-secret-value-0123456789"


async def test_a_failing_step_answers_held_requests_at_once_and_shows_in_status(tmp_path: Path) -> None:
    timings = SimTimings(boot=0.2, stop=0.1, destroy=0.1, operation=0.02, token=0.001, docker=0.4, image=0.8)
    async with ExoscaleSimulator({KEY: SECRET}, timings=timings) as sim:
        assert sim.fleet is not None
        sim.fleet.fail_steps["image"] = "Error response from daemon: manifest for ollama/ollama:9.9 not found"
        cloud = AsyncExoscaleCloud.connect(
            KEY, SECRET, "at-vie-2", endpoint=sim.url, poll_interval=0.05, backoff_base=0.01
        )
        controller = LocalController(SPEC, cloud, str(tmp_path / "state.json"), max_backoff=0.2)
        settings = proxy_settings(SPEC, {}, status_extra=controller.status, pull_progress_interval=0.05)
        runner, port = await start_proxy(make_proxy_app(controller, controller, settings), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}"
        controller.start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
                streamed = asyncio.create_task(
                    http.post(
                        f"{url}/api/generate",
                        json={"model": MODEL, "prompt": "hi"},
                        headers={"X-Remote-Ollama-Progress": "true"},
                    )
                )
                held = asyncio.create_task(
                    http.post(f"{url}/api/generate", json={"model": MODEL, "prompt": "hi", "stream": False})
                )
                loop = asyncio.get_running_loop()

                def vm_failed() -> bool:
                    vms = list(sim.fleet.vms.values()) if sim.fleet else []
                    return any(vm.setup is not None and vm.setup.state == "failed" for vm in vms)

                await until(vm_failed, 30, "the VM's setup to fail")
                failed_at = loop.time()
                answer = await held
                answered_in = loop.time() - failed_at
                body = await answer.json()
                assert answer.status == 503 and body["reason"] == "SetupFailed"
                assert body["error"].startswith("VM setup step 'image' failed:")
                assert "manifest for ollama/ollama:9.9 not found" in body["error"]
                assert body["provisioning"] is False and "Retry-After" not in answer.headers
                assert answered_in < POLL_PROBE  # within one probe interval of the VM saying so

                lines = [json.loads(line) for line in (await (await streamed).read()).splitlines()]
                details = [ln["remote_ollama"].get("detail", "") for ln in lines if "remote_ollama" in ln]
                assert any("setup step docker" in d or "setup step image" in d for d in details), details
                assert lines[-1]["error"].startswith("VM setup step 'image' failed:")

                status = await (await http.get(f"{url}/status")).json()
                assert status["provisioning_status"] == "error" and status["phase"] == "Failed"
                assert status["setup"]["state"] == "failed" and status["setup"]["step"] == "image"
                assert any("manifest" in line for line in status["setup"]["log"])
            await until(
                lambda: all(i.state in GONE_STATES for i in sim.state.instances.values()),
                30,
                "the VM whose setup failed to be deleted",
            )
        finally:
            await runner.cleanup()
            await controller.stop("keep", timeout=5)


def test_the_operator_writes_the_step_to_status_and_remembers_a_failure() -> None:
    body = {"metadata": {"name": "llm", "namespace": "ai", "generation": 1}, "status": {}}
    d = step(report(document()), STARTING)
    patch = status_patch(body, d, RUNNING, [], T0)
    assert patch["setup"]["step"] == "image" and patch["setup"]["message"] == d.setup.describe()  # type: ignore[union-attr]
    failed = step(report(document(state="failed", log=["E: no space left on device"])), STARTING)
    patch = status_patch(body, failed, RUNNING, [], T0)
    assert patch["lifecycle"]["setupFailure"] == "VM setup step 'image' failed: E: no space left on device"
    assert memory_from({**body, "status": patch}).setup_failure == failed.memory.setup_failure
    assert memory_from({**body, "status": patch}).setup_failed_at == T0
