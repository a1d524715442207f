"""Fixtures for the emulated Kubernetes cluster (tests/kube)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kube.harness import KubeHarness
from kubernetes.config import kube_config


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeHarness]:
    """A fresh emulated cluster (namespaces default, kube-system); kubectl, kopf and clients point at it."""
    with KubeHarness(tmp_path) as harness:
        monkeypatch.setenv("KUBECONFIG", str(harness.kubeconfig))
        # The kubernetes client (kopf's default login) reads $KUBECONFIG once, at import time.
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(harness.kubeconfig))
        yield harness


@pytest.fixture
def kube_crd(kube: KubeHarness) -> KubeHarness:
    """The cluster with the RemoteOllama CRD registered."""
    kube.apply_crd()
    return kube
