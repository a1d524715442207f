"""Fixtures for the emulated Kubernetes cluster (tests/kube)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kube.harness import KubeHarness


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeHarness]:
    """A fresh emulated cluster with the namespaces default and kube-system; KUBECONFIG points at it."""
    with KubeHarness(tmp_path) as harness:
        monkeypatch.setenv("KUBECONFIG", str(harness.kubeconfig))
        yield harness


@pytest.fixture
def kube_crd(kube: KubeHarness) -> KubeHarness:
    """The cluster with the RemoteOllama CRD registered."""
    kube.apply_crd()
    return kube
