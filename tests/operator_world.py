"""The operator's test world: a real kube-apiserver + Exoscale simulator + kopf + the proxy as a process.

The operator (in-process or as `remote-ollama operator`) authenticates with the Helm release's
ServiceAccount token, so its ClusterRole is enforced: a missing grant is a real 403, and the world
fails the test if the operator's log shows one. The proxy is started from the Deployment the
operator created (its args, env and ServiceAccount's token), so a broken Deployment or Role fails
the test; only the listening port is replaced by a free one. Each test has its own namespace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
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
from cluster.fixtures import KubeNamespace
from kopf.testing import KopfRunner
from kubernetes.config import kube_config
from ports import free_port
from waiting import LIFECYCLE, wait_until

from remote_ollama.sandbox.exoscale.state import InstanceHooks
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.names import LABEL_OWNER

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "EXOoperatortest", "operator-test-secret"
T = TypeVar("T")


def _meta(name: str, namespace: str | None) -> dict[str, str]:
    """Without a namespace, kubectl puts the object in the test's namespace (its context's)."""
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def credentials_secret(name: str = "exoscale", namespace: str | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(name, namespace),
            "stringData": {"api-key": KEY, "api-secret": SECRET},
        }
    )


def remote_ollama(name: str = "granite", namespace: str | None = None, **spec: Any) -> str:
    body = {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": _meta(name, namespace),
        "spec": {
            "credentialsSecretRef": {"name": "exoscale"},
            "models": ["granite3.1-dense:8b"],
            "idle": {"stopAfter": "3s"},
            "activityInterval": "1s",
            **spec,
        },
    }
    return yaml.safe_dump(body)


FORBIDDEN = re.compile(r"\b403\b|[Ff]orbidden")


def assert_no_forbidden(log: str, who: str, *, retried_ok: bool = False) -> None:
    """Every request the operator makes must be allowed by the chart's ClusterRole. `retried_ok`:
    kopf's own retried requests may meet a 403 (right after a kube-apiserver restart its RBAC
    authorizer answers before its caches are warm)."""
    lines = [
        line
        for line in log.splitlines()
        if FORBIDDEN.search(line) and not (retried_ok and "failed; will retry" in line)
    ]
    assert not lines, f"{who} was refused by the API server (RBAC):\n" + "\n".join(lines[:10])


class LogCollector(logging.Handler):
    """Keeps the in-process operator's log lines (kopf and ours) for the 403 check."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("kopf", "remote_ollama")):
            return  # the test's own clients (httpx) log answers of the proxy, not of the API server
        with contextlib.suppress(Exception):
            self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


class OperatorWorld:
    def __init__(self, kube: KubeNamespace, sim: SimulatorThread):
        self.kube, self.sim = kube, sim
        self.procs: list[subprocess.Popen[bytes]] = []
        self.proxy_logs: list[Path] = []

    # -- cluster helpers -------------------------------------------------------------------------------
    def apply(self, manifest: str) -> None:
        self.kube.kubectl("apply", "-f", "-", input=manifest, check=True)

    @property
    def namespace(self) -> str:
        return self.kube.namespace

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        out = self.kube.kubectl("get", kind, name, "-n", namespace or self.namespace, "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else None

    def phase(self, name: str = "granite") -> str | None:
        obj = self.get("remoteollama", name)
        return ((obj or {}).get("status") or {}).get("phase")

    def wait_phase(self, phase: str, name: str = "granite", timeout: float = LIFECYCLE) -> dict[str, Any]:
        wait_until(lambda: self.phase(name) == phase, timeout, f"{name} phase {phase}")
        obj = self.get("remoteollama", name)
        assert obj is not None
        return obj

    # -- simulator helpers -------------------------------------------------------------------------------
    def instances(self, *, live: bool = True, zone: str | None = None) -> list[Any]:
        """The instances in `zone`, or in every zone."""
        gone = {"destroying", "destroyed", "expunging"}
        states = [self.sim.sim.states[zone]] if zone else list(self.sim.sim.states.values())
        every = [i for state in states for i in list(state.instances.values())]
        return [i for i in every if not live or i.state not in gone]

    def security_groups(self) -> list[Any]:
        return list(self.sim.sim.account.security_groups.values())  # shared by every zone, as on Exoscale

    # -- the proxy, as the Deployment says ---------------------------------------------------------------
    def start_proxy(self, name: str = "granite", namespace: str | None = None, pod_name: str = "") -> str:
        """The proxy as its Deployment says, authenticated with its ServiceAccount's token; `pod_name`:
        its pod name (the downward API's metadata.name), `<name>-proxy-0` by default."""
        dep = wait_until(lambda: self.get("deployment", name, namespace), LIFECYCLE, "proxy Deployment")
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        args = list(container.get("args") or [])
        port = free_port()
        if "--port" in args:
            args[args.index("--port") + 1] = str(port)
        else:
            args += ["--port", str(port)]
        args += ["--host", "127.0.0.1"]
        env = self.kube.env(self.kube.kubeconfig_for(pod["serviceAccountName"], namespace))
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "fieldRef" in (item.get("valueFrom") or {}):
                env[item["name"]] = pod_name or f"{name}-proxy-0"
        command = container.get("command") or [
            shutil.which("remote-ollama") or str(Path(sys.executable).parent / "remote-ollama")
        ]
        log_path = self.kube.workdir / f"proxy-{len(self.procs)}.log"
        self.proxy_logs.append(log_path)
        with log_path.open("ab") as out:  # a file, not a pipe nobody reads (a full pipe blocks it)
            proc = subprocess.Popen([*command, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"proxy exited: {log_path.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
            return False

        wait_until(healthy, LIFECYCLE, "proxy listening")
        return url

    def proxy_log(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.proxy_logs)

    def delete_resource(self, name: str = "granite") -> None:
        """Delete the RemoteOllama and wait until it is gone (the operator's clean-up done); its
        proxies stop first, as their pods go with it (its Role would refuse their Lease renewals)."""
        self.stop_procs()
        self.kube.kubectl("delete", "remoteollama", name, "--wait=false", check=True)
        wait_until(lambda: self.get("remoteollama", name) is None, 90, "the resource deleted")

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
    kube: KubeNamespace,
    monkeypatch: Any,
    timings: SimTimings | None = None,
    extra_env: dict[str, str] | None = None,
    machines: InstanceHooks | None = None,
) -> Iterator[OperatorWorld]:
    """`machines`: what runs behind the simulated instances (default: the simulated VMs)."""
    sim = SimulatorThread(
        keys={KEY: SECRET},
        timings=timings
        or SimTimings(boot=0.3, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1, token=0.005),
        machines=machines,
    )
    sim.start()
    monkeypatch.setenv("EXOSCALE_API_ENDPOINT", sim.url)
    monkeypatch.setenv("REMOTE_OLLAMA_METRICS_PORT", "0")
    for k, v in (extra_env or {}).items():
        monkeypatch.setenv(k, v)
    # the operator is the Helm release's ServiceAccount (kopf logs in from $KUBECONFIG)
    operator_kubeconfig = str(kube.release.kubeconfig)
    monkeypatch.setenv("KUBECONFIG", operator_kubeconfig)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", operator_kubeconfig)
    from remote_ollama.kube.operator import handlers  # noqa: F401  registers the handlers
    from remote_ollama.kube.operator.context import OPERATOR

    OPERATOR.cloud_options = {"poll_interval": 0.05, "backoff_base": 0.05}
    world = OperatorWorld(kube, sim)
    settings = kopf.OperatorSettings()
    runner = KopfRunner(
        ["run", "-A", "--standalone", "-m", "remote_ollama.kube.operator.handlers"],
        settings=settings,
        timeout=60,
    )
    collector = LogCollector()
    logging.getLogger().addHandler(collector)
    try:
        with runner:
            yield world
            world.stop_procs()
    except BaseException:
        print(world.proxy_log())
        raise
    finally:
        logging.getLogger().removeHandler(collector)
        world.stop_procs()
        sim.stop()
    if runner.exception is not None and not isinstance(runner.exception, SystemExit):
        raise runner.exception
    assert_no_forbidden("\n".join(collector.lines), "the operator")
    assert_no_forbidden(world.proxy_log(), "the proxy")


# -- the operator as a process (kill tests, peering, bench) ---------------------------------------------
# `remote-ollama operator` with the cloud adapter's polling shortened for the simulator's fast clock.
# With $TEST_CLOCK_SKEW_FILE, the operator's clock (OPERATOR.clock) runs that many seconds ahead of the
# real one, as the file says when read (`skew_clock`): minutes pass in an instant, across restarts.
OPERATOR_BOOT = (
    "import os, sys\n"
    "from remote_ollama.kube.operator.context import OPERATOR\n"
    "OPERATOR.cloud_options = {'poll_interval': 0.05, 'backoff_base': 0.05}\n"
    "if os.environ.get('TEST_CLOCK_SKEW_FILE'):\n"
    "    from datetime import timedelta\n"
    "    from pathlib import Path\n"
    "    from remote_ollama.spec.schedule import utcnow\n"
    "    _skew = Path(os.environ['TEST_CLOCK_SKEW_FILE'])\n"
    "    OPERATOR.clock = lambda: utcnow() + timedelta(seconds=float(_skew.read_text()))\n"
    "from remote_ollama.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def skew_clock(path: Path, seconds: float) -> None:
    """Set the skew of the operators started with TEST_CLOCK_SKEW_FILE=`path` (replaced whole, so a
    reader never sees half a number)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(seconds))
    tmp.replace(path)


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

    def __init__(self, kube: KubeNamespace, sim: SimulatorThread, env: dict[str, str]):
        super().__init__(kube, sim)
        self.env = env
        self.operators: list[OperatorProcess] = []
        self.apiserver_restarted = False

    def start_operator(self, *, standalone: bool = True, **env: str) -> OperatorProcess:
        n = len(self.operators)
        op = OperatorProcess(
            {**self.env, **env}, self.kube.workdir / f"operator-{n}.log", standalone=standalone
        )
        self.operators.append(op)
        return op

    def logs(self) -> str:
        return "\n".join(f"--- {op.log_path.name}\n{op.log()[-6000:]}" for op in self.operators)

    def uid(self, name: str = "granite", namespace: str | None = None) -> str:
        obj = wait_until(lambda: self.get("remoteollama", name, namespace), LIFECYCLE, f"{name} exists")
        return str(obj["metadata"]["uid"])

    def owned(self, uid: str, *, live: bool = True) -> list[Any]:
        return [i for i in self.instances(live=live) if i.labels.get(LABEL_OWNER) == uid]

    def calls(self, operation: str) -> int:
        return self.sim.sim.call_count(operation)

    def cluster_id(self) -> str:
        ns = self.get("namespace", "kube-system")
        assert ns is not None
        return str(ns["metadata"]["uid"])

    def stop_all(self) -> None:
        for op in self.operators:
            op.stop()
        self.stop_procs()


@contextlib.contextmanager
def cloud_world(
    kube: KubeNamespace, timings: SimTimings | None = None, env: dict[str, str] | None = None
) -> Iterator[CloudWorld]:
    """Like `operator_world` but without an in-process operator: call `world.start_operator()`."""
    sim = SimulatorThread(
        keys={KEY: SECRET},
        timings=timings
        or SimTimings(boot=0.3, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1, token=0.005),
    )
    sim.start()
    full_env = {
        **kube.env(kube.release.kubeconfig),
        "EXOSCALE_API_ENDPOINT": sim.url,
        "REMOTE_OLLAMA_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    world = CloudWorld(kube, sim, full_env)
    try:
        yield world
    except BaseException:
        print(world.logs())
        print(world.proxy_log())
        raise
    finally:
        world.stop_all()
        sim.stop()
    for op in world.operators:
        assert_no_forbidden(op.log(), op.log_path.name, retried_ok=world.apiserver_restarted)
    assert_no_forbidden(world.proxy_log(), "the proxy")
