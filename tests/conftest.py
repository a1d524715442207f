"""Fixtures: the real control plane (tests/cluster) and the emulated cluster (tests/kube)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
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
