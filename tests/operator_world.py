"""The operator's test world: emulated cluster + Exoscale simulator + kopf + the proxy as a process.

The proxy is started from the Deployment the operator created (its args and env), so a broken
Deployment fails the test; only the listening port is replaced by a free one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import kopf
import yaml
from kopf.testing import KopfRunner
from kube.harness import KubeHarness
from waiting import wait_until

from remote_ollama.resource import LABEL_OWNER
from remote_ollama.sandbox.exoscale_api import SimulatorThread
from remote_ollama.sandbox.exoscale_state import SimTimings

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "EXOoperatortest", "operator-test-secret"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def credentials_secret(name: str = "exoscale", namespace: str = "default") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {"api-key": KEY, "api-secret": SECRET},
        }
    )


def remote_ollama(name: str = "granite", namespace: str = "default", **spec: Any) -> str:
    body = {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "credentialsSecretRef": {"name": "exoscale"},
            "models": ["granite3.1-dense:8b"],
            "idle": {"stopAfter": "3s"},
            "activityInterval": "1s",
            **spec,
        },
    }
    return yaml.safe_dump(body)


class OperatorWorld:
    def __init__(self, kube: KubeHarness, sim: SimulatorThread):
        self.kube, self.sim = kube, sim
        self.procs: list[subprocess.Popen[str]] = []

    # -- cluster helpers -------------------------------------------------------------------------------
    def apply(self, manifest: str) -> None:
        self.kube.kubectl("apply", "-f", "-", input=manifest, check=True)

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        out = self.kube.kubectl("get", kind, name, "-n", namespace, "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else None

    def phase(self, name: str = "granite") -> str | None:
        obj = self.get("remoteollama", name)
        return ((obj or {}).get("status") or {}).get("phase")

    def wait_phase(self, phase: str, name: str = "granite", timeout: float = 30.0) -> dict[str, Any]:
        wait_until(lambda: self.phase(name) == phase, timeout, f"{name} phase {phase}")
        obj = self.get("remoteollama", name)
        assert obj is not None
        return obj

    # -- simulator helpers -------------------------------------------------------------------------------
    def instances(self, *, live: bool = True) -> list[Any]:
        gone = {"destroying", "destroyed", "expunging"}
        return [i for i in list(self.sim.sim.state.instances.values()) if not live or i.state not in gone]

    def security_groups(self) -> list[Any]:
        return list(self.sim.sim.state.security_groups.values())

    # -- the proxy, as the Deployment says ---------------------------------------------------------------
    def start_proxy(self, name: str = "granite", namespace: str = "default") -> str:
        dep = wait_until(lambda: self.get("deployment", name, namespace), 20, "proxy Deployment")
        container = dep["spec"]["template"]["spec"]["containers"][0]
        args = list(container.get("args") or [])
        port = free_port()
        if "--port" in args:
            args[args.index("--port") + 1] = str(port)
        else:
            args += ["--port", str(port)]
        args += ["--host", "127.0.0.1"]
        env = dict(self.kube.env())
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "fieldRef" in (item.get("valueFrom") or {}):
                env[item["name"]] = f"{name}-proxy-0"
        command = container.get("command") or [
            shutil.which("remote-ollama") or str(Path(sys.executable).parent / "remote-ollama")
        ]
        proc = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"proxy exited: {proc.stdout.read() if proc.stdout else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
            return False

        wait_until(healthy, 20, "proxy listening")
        return url

    def stop_procs(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


@contextlib.contextmanager
def operator_world(
    kube: KubeHarness,
    monkeypatch: Any,
    timings: SimTimings | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[OperatorWorld]:
    sim = SimulatorThread(
        keys={KEY: SECRET},
        timings=timings
        or SimTimings(boot=0.3, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1, token=0.005),
    )
    sim.start()
    monkeypatch.setenv("EXOSCALE_API_ENDPOINT", sim.url)
    monkeypatch.setenv("REMOTE_OLLAMA_METRICS_PORT", "0")
    for k, v in (extra_env or {}).items():
        monkeypatch.setenv(k, v)
    kube.kubectl("apply", "-f", str(ROOT / "crds" / "remoteollama.yaml"), check=True)
    from remote_ollama.operator import handlers  # noqa: F401  registers the handlers
    from remote_ollama.operator.context import OPERATOR

    OPERATOR.cloud_options = {"poll_interval": 0.05, "backoff_base": 0.05}
    world = OperatorWorld(kube, sim)
    settings = kopf.OperatorSettings()
    runner = KopfRunner(
        ["run", "-A", "--standalone", "-m", "remote_ollama.operator.handlers"], settings=settings, timeout=60
    )
    try:
        with runner:
            yield world
            world.stop_procs()
    finally:
        world.stop_procs()
        sim.stop()
    if runner.exception is not None and not isinstance(runner.exception, SystemExit):
        raise runner.exception


# -- the operator as a process (kill tests, peering, bench) ---------------------------------------------
# `remote-ollama operator` with the cloud adapter's polling shortened for the simulator's fast clock.
OPERATOR_BOOT = (
    "import sys\n"
    "from remote_ollama.operator.context import OPERATOR\n"
    "OPERATOR.cloud_options = {'poll_interval': 0.05, 'backoff_base': 0.05}\n"
    "from remote_ollama.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class OperatorProcess:
    """One `remote-ollama operator` process; its log goes to a file (read it on failure)."""

    def __init__(self, env: dict[str, str], log_path: Path, *, standalone: bool = True):
        self.log_path = log_path
        args = [
            sys.executable,
            "-c",
            OPERATOR_BOOT,
            "operator",
            "--liveness",
            f"http://127.0.0.1:{free_port()}/healthz",
        ]
        if standalone:
            args.append("--standalone")
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup handler, no finalizer work, connections cut mid-request."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class CloudWorld(OperatorWorld):
    """Cluster + simulator; operators are processes the test starts, kills and restarts."""

    def __init__(self, kube: KubeHarness, sim: SimulatorThread, env: dict[str, str]):
        super().__init__(kube, sim)
        self.env = env
        self.operators: list[OperatorProcess] = []

    def start_operator(self, *, standalone: bool = True, **env: str) -> OperatorProcess:
        n = len(self.operators)
        op = OperatorProcess(
            {**self.env, **env}, self.kube.workdir / f"operator-{n}.log", standalone=standalone
        )
        self.operators.append(op)
        return op

    def logs(self) -> str:
        return "\n".join(f"--- {op.log_path.name}\n{op.log()[-6000:]}" for op in self.operators)

    def uid(self, name: str = "granite", namespace: str = "default") -> str:
        obj = wait_until(lambda: self.get("remoteollama", name, namespace), 10, f"{name} exists")
        return str(obj["metadata"]["uid"])

    def owned(self, uid: str, *, live: bool = True) -> list[Any]:
        return [i for i in self.instances(live=live) if i.labels.get(LABEL_OWNER) == uid]

    def calls(self, operation: str) -> int:
        return self.sim.sim.call_count(operation)

    def cluster_id(self) -> str:
        ns = self.get("namespace", "kube-system", "default")
        assert ns is not None
        return str(ns["metadata"]["uid"])

    def stop_all(self) -> None:
        for op in self.operators:
            op.stop()
        self.stop_procs()


@contextlib.contextmanager
def cloud_world(
    kube: KubeHarness, timings: SimTimings | None = None, env: dict[str, str] | None = None
) -> Iterator[CloudWorld]:
    """Like `operator_world` but without an in-process operator: call `world.start_operator()`."""
    sim = SimulatorThread(
        keys={KEY: SECRET},
        timings=timings
        or SimTimings(boot=0.3, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1, token=0.005),
    )
    sim.start()
    full_env = {
        **kube.env(),
        "EXOSCALE_API_ENDPOINT": sim.url,
        "REMOTE_OLLAMA_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    kube.kubectl("apply", "-f", str(ROOT / "crds" / "remoteollama.yaml"), check=True)
    world = CloudWorld(kube, sim, full_env)
    try:
        yield world
    except BaseException:
        print(world.logs())
        raise
    finally:
        world.stop_all()
        sim.stop()
