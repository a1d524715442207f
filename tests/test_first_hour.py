"""The first hour, second pass (issue 21): what needs no VM is answered without one, at once.

A chat UI connecting (Open WebUI: version, tags, ps, show per model, /v1/models), a request for a
model the VM does not have, a body that is not JSON: none wakes the VM, none is activity.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import tomllib
from pathlib import Path

import aiohttp
import ollama
import openai
import pytest
import yaml
from go_ollama import GoOllama, call, connect_sequence, first_contact_and_after_a_wake
from ollama_real.server import build_ollama
from ports import free_port
from proxy_world import world
from subprocess_world import BIN, Program, clean_env, sandbox_program
from waiting import deadline

from remote_ollama.local.settings import VARIABLES
from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings

MODEL = "granite3.1-dense:8b"
ROOT = Path(__file__).resolve().parents[1]


async def test_connect_sequence_before_any_vm_wakes_nothing_and_tells_the_truth() -> None:
    settings = ProxySettings(models=(MODEL, "nomic-embed-text"), ollama_version="0.35.1")
    async with world(settings, ready=False) as w, aiohttp.ClientSession() as http:
        w.resolver.set_down("Stopped", instance=False)
        seen = await connect_sequence(http, w.url)
        # no digest is known before the VM answered: nothing listed (ollama list needs digest[:12])
        assert seen["/api/tags"] == {"models": []}
        assert seen["/v1/models"] == {
            "object": "list",
            "data": [
                {"id": MODEL, "object": "model", "owned_by": "library"},
                {"id": "nomic-embed-text:latest", "object": "model", "owned_by": "library"},
            ],
        }
        status, _, one = await call(http, "GET", w.url + f"/v1/models/{MODEL}")
        assert (status, one["id"]) == (200, MODEL)
        status, _, body = await call(http, "POST", w.url + "/api/show", b'{"model":"granite3.1-dense:8b"}')
        assert status == 200 and body["remote_ollama"]["status"].startswith("not described yet")
        # a body that is not JSON: Ollama's own 400, at once
        status, _, body = await call(http, "POST", w.url + "/api/generate", b'{"model":')
        assert (status, body) == (400, {"error": "unexpected EOF"})
        status, _, body = await call(http, "POST", w.url + "/v1/chat/completions", b"{")
        assert status == 400 and body["error"]["message"] == "unexpected EOF"
        assert w.sink.wakes == [] and w.sink.touches == []


async def test_once_the_vm_listed_its_models_an_unknown_model_is_404_at_once() -> None:
    timeout = aiohttp.ClientTimeout(total=deadline(30))  # at once: never held for the hold timeout
    settings = ProxySettings(models=(MODEL,), hold_timeout=3600)
    async with world(settings, ready=False) as w, aiohttp.ClientSession(timeout=timeout) as http:
        w.resolver.set_ready(w.upstream)
        real = await ollama.AsyncClient(host=w.url).list()  # the VM's own list, remembered
        w.resolver.set_down("Stopped")
        before = (list(w.sink.wakes), list(w.sink.touches))
        status, _, body = await call(
            http, "POST", w.url + "/api/generate", b'{"model":"nope:1b","prompt":"hi"}'
        )
        assert (status, body) == (404, {"error": "model 'nope:1b' not found"})
        status, _, body = await call(http, "POST", w.url + "/api/show", b'{"model":"nope:1b"}')
        assert (status, body) == (404, {"error": "model 'nope:1b' not found"})
        status, _, body = await call(http, "POST", w.url + "/api/show", b'{"name":"nope:1b"}')  # Go CLI's key
        assert (status, body) == (404, {"error": "model 'nope:1b' not found"})
        client = openai.AsyncOpenAI(
            base_url=w.url + "/v1", api_key="unused", max_retries=0, timeout=deadline(30)
        )
        try:
            await client.chat.completions.create(
                model="nope:1b", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.NotFoundError as exc:
            assert "model 'nope:1b' not found" in str(exc)
        else:
            raise AssertionError("no 404")
        listed = await client.models.list()
        vm = {m.model: m for m in real.models}
        assert [m.id for m in listed.data] == list(vm)
        assert all(m.created and m.created > 0 for m in listed.data)  # the VM's modified_at
        try:
            await client.models.retrieve("nope:1b")
        except openai.NotFoundError:
            pass
        else:
            raise AssertionError("no 404")
        assert (w.sink.wakes, w.sink.touches) == before  # neither a wake nor activity


def test_sandbox_connect_sequence_after_a_wake_describes_models_without_waking(tmp_path: Path) -> None:
    """Through the real CLI: the VM's /api/show answers are kept and served while it is stopped."""
    prog = sandbox_program(tmp_path, "--idle", "3s", "--token-delay", "0.001")
    try:
        prog.wait_listening()
        client = ollama.Client(host=prog.url, timeout=60)
        assert client.list().models == []  # nothing known to list yet, and `ollama list` cannot crash
        assert [m.id for m in openai.OpenAI(base_url=prog.url + "/v1", api_key="x").models.list().data] == [
            MODEL
        ]
        assert prog.request("GET", "/status", None, 10)[2]["instance_status"] == "none"
        shown = client.show(MODEL)  # not described yet, and no wake
        assert shown.details is None or not shown.details.family
        assert prog.request("GET", "/status", None, 10)[2]["instance_status"] == "none"

        assert client.generate(model=MODEL, prompt="hi").response  # wakes the VM
        live = client.show(MODEL)
        assert live.details is not None and live.details.family
        listed = client.list().models
        assert [m.model for m in listed] == [MODEL] and listed[0].digest and listed[0].size
        prog.wait_status(lambda s: s.get("instance_status") == "stopped", 60, "the VM stopped for idleness")

        code, _, body = prog.request("POST", "/api/show", {"model": MODEL}, 10)
        assert code == 200 and body["details"] == live.details.model_dump(exclude_none=True)
        code, _, body = prog.request("POST", "/api/generate", {"model": "nope:1b"}, 10)
        assert (code, body) == (404, {"error": "model 'nope:1b' not found"})
        assert [m.digest for m in client.list().models] == [listed[0].digest]
        assert prog.request("GET", "/status", None, 10)[2]["instance_status"] == "stopped"
    finally:
        prog.kill()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_port_in_use_is_one_line_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state = tmp_path / "state" / "state.json"
        env = clean_env(
            {
                "EXOSCALE_API_KEY": "EXO0123456789abcdef",
                "EXOSCALE_API_SECRET": "secret",
                "EXOSCALE_API_ENDPOINT": "http://127.0.0.1:9/v2",  # never called
                "REMOTE_OLLAMA_STATE_FILE": str(state),
            }
        )
        for command in (["sandbox"], ["standalone"]):
            started = time.monotonic()
            out = run_cli([*command, "--port", str(port)], env)
            assert out.returncode == 2, out
            lines = (out.stdout + out.stderr).strip().splitlines()
            assert len(lines) == 1, lines
            assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
            assert "--port" in lines[0] and "Ollama already running" in lines[0]
            assert time.monotonic() - started < 20
        assert not state.parent.exists()


def test_no_kubeconfig_is_one_line_saying_how_the_cluster_is_found(tmp_path: Path) -> None:
    env = clean_env({"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)})
    for binary in ("remote-ollama", "kubectl-remoteollama"):
        out = subprocess.run(
            [str(Path(BIN).with_name(binary)), "status", "granite", "-n", "ai"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, out
        (line,) = out.stderr.strip().splitlines()
        assert "no Kubernetes cluster" in line and "kubeconfig" in line and "KUBECONFIG" in line, line
        assert "Traceback" not in out.stderr


def test_kubectl_plugin_help_is_its_own() -> None:
    out = subprocess.run(
        [str(Path(BIN).with_name("kubectl-remoteollama")), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("usage: kubectl remoteollama")
    assert "standalone" not in out.stdout and "sandbox" not in out.stdout
    assert all(command in out.stdout for command in ("status", "wake", "sleep"))


def test_python_version_is_stated() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.11"
    assert "Python 3.11 or newer" in (ROOT / "README.md").read_text()


def test_standalone_help_lists_the_readme_variables_and_the_first_command_is_pinned() -> None:
    readme = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M)
    assert table and table == [name for name, _ in VARIABLES]
    out = run_cli(["standalone", "--help"], clean_env())
    assert all(name in out.stdout for name in table)
    assert "default 127.0.0.1" in out.stdout  # loopback outside the image
    first = next(line for line in readme.splitlines() if "remote-ollama sandbox" in line)
    assert "--require-hashes --no-deps -r requirements.lock" in first


def test_standalone_listens_on_loopback_by_default_and_leaves_no_state_file(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "xdg" / "remote-ollama" / "state.json"
    env = clean_env(
        {
            "EXOSCALE_API_KEY": "EXO0123456789abcdef",
            "EXOSCALE_API_SECRET": "secret",
            "EXOSCALE_API_ENDPOINT": "http://127.0.0.1:9/v2",  # unreachable: nothing can be created
            "XDG_STATE_HOME": str(tmp_path / "xdg"),
        }
    )
    prog = Program(["standalone", "--port", str(port)], env, tmp_path / "s.log", port=port)
    try:
        prog.wait_listening()
        assert f"listening on http://127.0.0.1:{port}" in prog.output()
        assert "WARNING" not in prog.output()
        assert prog.terminate(60) == 0
    finally:
        prog.kill()
    out = prog.output()
    assert "REMOTE_OLLAMA_HOST=0.0.0.0" in (ROOT / "Dockerfile").read_text()  # the image: all addresses
    assert not state.exists() and not state.parent.exists(), out
    assert "could not stop any instance (none is known to exist)" in out or "no instance to stop" in out, out


def test_unreachable_exoscale_api_answers_held_requests_503_naming_the_host(tmp_path: Path) -> None:
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    env = clean_env(
        {
            "EXOSCALE_API_KEY": "EXO0123456789abcdef",
            "EXOSCALE_API_SECRET": "secret",
            "EXOSCALE_API_ENDPOINT": f"http://127.0.0.1:{dead}/v2",
            "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        }
    )
    prog = Program(["standalone", "--port", str(port)], env, tmp_path / "s.log", port=port)
    try:
        prog.wait_listening()
        started = time.monotonic()
        code, headers, body = prog.request("POST", "/api/generate", {"model": MODEL, "prompt": "hi"}, 60)
        assert time.monotonic() - started < 30
        assert code == 503, body
        assert f"127.0.0.1:{dead}" in body["error"] and "unavailable" in body["error"], body
        assert body["reason"] == "CloudUnavailable"
        assert int(headers["Retry-After"]) >= 1
        assert f"reaching 127.0.0.1:{dead}" in prog.output()
    finally:
        prog.kill()


def test_sandbox_banner_exports_drive_the_instance_cli(tmp_path: Path) -> None:
    prog = sandbox_program(tmp_path)
    try:
        prog.wait_listening()
        (export,) = [
            line.strip() for line in prog.output().splitlines() if line.strip().startswith("export ")
        ]
        assert ollama.Client(host=prog.url, timeout=60).generate(model=MODEL, prompt="hi").response
        running = prog.wait_status(lambda s: s.get("instance_status") == "running", 30, "running")
        assert running["instance_status"] == "running"
        out = subprocess.run(
            ["bash", "-c", f"{export} && {BIN} instance status"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out
        assert "running" in out.stdout and "gpua5000.small" in out.stdout, out.stdout
    finally:
        prog.kill()


def test_instance_stop_with_a_server_running_is_honoured_not_undone(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    prog = sandbox_program(tmp_path, "--idle", "10m", "--state-file", str(state))
    try:
        prog.wait_listening()
        (export,) = [
            line.strip() for line in prog.output().splitlines() if line.strip().startswith("export ")
        ]
        assert ollama.Client(host=prog.url, timeout=60).generate(model=MODEL, prompt="hi").response
        prog.wait_status(lambda s: s.get("provisioning_status") == "ready", 30, "ready")
        out = subprocess.run(
            ["bash", "-c", f"{export} && {BIN} instance stop"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out
        assert "is stopped; a server running on this state file keeps it stopped" in out.stdout, out.stdout
        # the server takes the request in a round and decides to stay down, instead of starting it again
        # (without it, the server's next round starts the VM again: phase Starting, never Stopped)
        prog.wait_status(
            lambda s: (s.get("phase"), s.get("instance_status")) == ("Stopped", "stopped"),
            30,
            "the server saw the sleep request",
        )
        assert "sleep requested (remote-ollama instance stop)" in prog.output()
        assert "phase Starting" not in prog.output().split("sleep requested")[-1]
        # the next request wakes it as usual
        assert ollama.Client(host=prog.url, timeout=60).generate(model=MODEL, prompt="again").response
    finally:
        prog.kill()


def test_the_kubernetes_install_as_written_builds_the_image_and_creates_the_namespace_first() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## In a Kubernetes cluster") :]
    block = section[section.index("```bash") : section.index("```", section.index("```bash") + 3)]
    lines = [line.strip() for line in block.splitlines()]
    build = next(i for i, line in enumerate(lines) if line.startswith("docker build -t "))
    push = next(i for i, line in enumerate(lines) if line.startswith("docker push "))
    install = next(i for i, line in enumerate(lines) if line.startswith("helm install "))
    namespace = lines.index("kubectl create namespace ai")
    secret = next(
        i for i, line in enumerate(lines) if line.startswith("kubectl create secret") and "-n ai" in line
    )
    assert build < push < install < namespace < secret
    image = lines[build].split()[3]
    repository, tag = image.rsplit(":", 1)
    assert f"--set image.repository={repository} --set image.tag={tag}" in block
    # the standalone image is built before `docker run` uses it
    standalone = readme[readme.index("## Standalone") :]
    assert standalone.index("docker build -t remote-ollama .") < standalone.index("docker run")


def test_a_release_workflow_builds_both_architectures_and_pushes_image_and_chart_on_a_tag() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["release"]["steps"]
    build = next(s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64" and build["with"]["push"] is True
    script = "\n".join(str(s.get("run", "")) for s in steps)
    assert "helm package charts/remote-ollama" in script and 'helm push "dist/' in script
    assert workflow["env"]["CHARTS"].startswith("oci://ghcr.io/")
    # the packaged chart's default image is the one pushed: the sed matches the values file's line
    values = (ROOT / "charts" / "remote-ollama" / "values.yaml").read_text()
    assert '\n  repository: ""\n' in values and 's|^  repository: \\"\\"|' in script
    # ... by the digest the push returned, not by its tag
    assert build["id"] == "image" and "${{ steps.image.outputs.digest }}" in str(steps)
    assert '\n  digest: ""\n' in values and 's|^  digest: \\"\\"|  digest: ${DIGEST}|' in script


@pytest.fixture(scope="session")
def real_ollama_cli() -> Path:
    """The Go `ollama` CLI 0.17.4 of the real-Ollama test world (built before the tests run)."""
    return build_ollama()


def test_the_real_ollama_cli_against_the_sandbox(real_ollama_cli: Path, tmp_path: Path) -> None:
    prog = sandbox_program(tmp_path, "--idle", "3s", "--token-delay", "0.001")
    try:
        prog.wait_listening()
        first_contact_and_after_a_wake(
            GoOllama(real_ollama_cli, prog.url, tmp_path),
            lambda: (prog.status() or {}).get("instance_status") in ("none", "stopped"),
            lambda: prog.wait_status(
                lambda s: s.get("instance_status") == "stopped", 60, "stopped for idleness"
            ),
            model_management=True,
        )
    finally:
        prog.kill()


def test_the_real_ollama_cli_against_standalone(real_ollama_cli: Path, tmp_path: Path) -> None:
    timings = SimTimings(boot=0.5, stop=0.3, destroy=0.3, operation=0.05, token=0.002, pull=0.1)
    port = free_port()
    with SimulatorThread(keys={"EXOfirsthour": "first-hour-secret"}, timings=timings) as sim:
        env = {
            "EXOSCALE_API_KEY": "EXOfirsthour",
            "EXOSCALE_API_SECRET": "first-hour-secret",
            "EXOSCALE_API_ENDPOINT": sim.url,
            "EXOSCALE_IDLE_TIMEOUT": "3s",
            "OLLAMA_MODEL": MODEL,
            "REMOTE_OLLAMA_STATE_FILE": str(tmp_path / "state.json"),
        }
        prog = Program(["standalone", "--port", str(port)], clean_env(env), tmp_path / "s.log", port=port)
        try:
            prog.wait_listening()
            first_contact_and_after_a_wake(
                GoOllama(real_ollama_cli, prog.url, tmp_path),
                lambda: (prog.status() or {}).get("instance_status") in ("none", "stopped"),
                lambda: prog.wait_status(lambda s: s.get("instance_status") == "stopped", 60, "stopped"),
                model_management=True,  # standalone's default
            )
        finally:
            prog.kill()
