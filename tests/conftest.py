"""Fixtures: the real control plane (tests/cluster) and the emulated cluster (tests/kube)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.control_plane import build_binaries
from cluster.fixtures import control_plane, k8s, kube, operator_release  # noqa: F401  (fixtures)
from kube.harness import KubeHarness
from kubernetes.config import kube_config


@pytest.fixture
def kmock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeHarness]:
    """A fresh emulated cluster (namespaces default, kube-system); kubectl, kopf and clients point at it."""
    with KubeHarness(tmp_path) as harness:
        monkeypatch.setenv("KUBECONFIG", str(harness.kubeconfig))
        # The kubernetes client (kopf's default login) reads $KUBECONFIG once, at import time.
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(harness.kubeconfig))
        yield harness


@pytest.fixture
def kmock_crd(kmock: KubeHarness) -> KubeHarness:
    """The emulated cluster with the RemoteOllama CRD registered."""
    kmock.apply_crd()
    return kmock


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the real control plane before any test that needs it runs.

    Here and not in the session fixture: a cold build (minutes) must neither count against the first
    test's timeout nor share the cores with running tests; a run without cluster tests builds nothing.
    """
    if any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "control plane: tests/cluster/build.sh (cached per machine; minutes when cold)"
            )
        build_binaries()
