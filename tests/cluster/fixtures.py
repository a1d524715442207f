"""pytest fixtures for the real control plane (imported by tests/conftest.py).

- `control_plane` (session): etcd + kube-apiserver + kube-controller-manager, started once.
- `operator_release` (session): `helm install` of charts/remote-ollama into namespace
  `remote-ollama`; the operator in the tests runs with this release's ServiceAccount token.
- `kube` (per test): `k8s` plus the release, for tests that run the operator.
- `k8s` (per test): a fresh namespace, an admin kubeconfig whose context defaults to it, and
  helpers (`kubectl`, `token`, `kubeconfig_for`, `helm`). The namespace is deleted afterwards
  (finalizers of RemoteOllamas left behind are removed first, since no operator runs any more).

Use from another test module (e.g. a ValidatingAdmissionPolicy test):

    def test_policy(k8s: KubeNamespace) -> None:
        k8s.kubectl("apply", "-f", "policy.yaml", check=True)            # as admin
        proxy = k8s.kubeconfig_for("granite-proxy")                      # a ServiceAccount's token
        out = k8s.kubectl("patch", "rol", "granite", ..., kubeconfig=proxy)
        assert out.returncode != 0 and "denied" in out.stderr
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .control_plane import ControlPlane, build_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "remote-ollama"
RELEASE = NAMESPACE = SERVICE_ACCOUNT = "remote-ollama"
_counter = itertools.count(1)


@dataclass(frozen=True)
class OperatorRelease:
    """The chart installed by Helm; `kubeconfig` carries its ServiceAccount's token."""

    namespace: str
    serviceaccount: str
    kubeconfig: Path
    helm_status: str


def helm(plane: ControlPlane, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real helm CLI (built with the control plane) against this cluster."""
    home = plane.workdir / "helm"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig or plane.kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(plane.bindir / "helm"), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), build_binaries())
    try:
        yield plane.start()
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def operator_release(control_plane: ControlPlane) -> OperatorRelease:
    out = helm(
        control_plane,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--set",
        "image.repository=ghcr.io/remote-ollama/remote-ollama",  # the README's: the image you pushed
    )
    assert out.returncode == 0, f"helm install failed:\n{out.stderr}"
    token = control_plane.token(SERVICE_ACCOUNT, NAMESPACE)
    path = control_plane.write_kubeconfig(control_plane.workdir / "operator.kubeconfig", token=token)
    return OperatorRelease(NAMESPACE, SERVICE_ACCOUNT, path, out.stdout)


class KubeNamespace:
    """One test's namespace on the shared control plane; kubectl defaults to it."""

    def __init__(self, plane: ControlPlane, namespace: str, workdir: Path):
        self.plane, self.namespace, self.workdir = plane, namespace, workdir
        self._release: OperatorRelease | None = None
        self.kubeconfig = plane.write_kubeconfig(workdir / "kubeconfig", namespace=namespace)

    @property
    def release(self) -> OperatorRelease:
        """The Helm release whose ServiceAccount the operator runs as (the `kube` fixture sets it)."""
        assert self._release is not None, "use the `kube` fixture (it installs the chart) for the operator"
        return self._release

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """Environment for child processes that talk to this cluster (kubectl, the CLI, the proxy)."""
        return {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kubecache"),
        }

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The real kubectl, as admin in this namespace unless `kubeconfig` says otherwise."""
        out = self.plane.kubectl(
            *args, input=input, kubeconfig=kubeconfig or self.kubeconfig, timeout=timeout
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return out

    def token(self, serviceaccount: str, namespace: str | None = None) -> str:
        return self.plane.token(serviceaccount, namespace or self.namespace)

    def kubeconfig_for(self, serviceaccount: str, namespace: str | None = None) -> Path:
        """A kubeconfig that authenticates as this ServiceAccount (TokenRequest API)."""
        ns = namespace or self.namespace
        path = self.workdir / f"{ns}.{serviceaccount}.kubeconfig"
        return self.plane.write_kubeconfig(
            path, token=self.token(serviceaccount, ns), namespace=self.namespace
        )

    def cleanup(self, timeout: float = 30.0) -> None:
        """Delete this namespace. Its RemoteOllamas go first and are waited for, their finalizers
        dropped (no operator runs any more), so that the next test's operator (watching all
        namespaces) never sees one of them in a namespace that is being terminated."""
        self.kubectl("delete", "remoteollamas", "--all", "--wait=false")
        deadline = time.monotonic() + timeout
        while names := self.kubectl("get", "remoteollamas", "-o", "name").stdout.split():
            for name in names:
                self.kubectl("patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.namespace}: {names} not deleted in {timeout}s")
            time.sleep(0.2)
        self.kubectl("delete", "namespace", self.namespace, "--wait=false")


@pytest.fixture
def k8s(
    control_plane: ControlPlane, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[KubeNamespace]:
    """A fresh namespace named after the test on the session's real control plane."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t{next(_counter)}-{slug}"
    control_plane.kubectl("create", "namespace", name)
    ns = KubeNamespace(control_plane, name, tmp_path)
    try:
        yield ns
    finally:
        ns.cleanup()


@pytest.fixture
def kube(k8s: KubeNamespace, operator_release: OperatorRelease) -> KubeNamespace:
    """`k8s` on a cluster where the chart is installed: the operator's world."""
    k8s._release = operator_release
    return k8s
