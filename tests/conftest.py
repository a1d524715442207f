"""Fixtures: the real Kubernetes control plane (tests/cluster) and the real Ollama
(tests/ollama_real), shared by the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cluster.control_plane import build_binaries
from cluster.fixtures import control_plane, k8s, kube, operator_release  # noqa: F401  (fixtures)
from ollama_real.fixtures import real_ollama  # noqa: F401  (fixtures)
from ollama_real.server import build_ollama

# fixture a test needs → the build it waits for (its script and what it builds)
_BUILDS: tuple[tuple[str, str, Callable[[], Path]], ...] = (
    ("control_plane", "control plane: tests/cluster/build.sh", build_binaries),
    ("real_ollama", "real Ollama: tests/ollama_real/build.sh", build_ollama),
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the real control plane and the real Ollama before any test that needs them runs.

    Here and not in the session fixtures: a cold build (minutes) must neither count against the first
    test's timeout nor share the cores with running tests; a run without such tests builds nothing.
    """
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for fixture, what, build in _BUILDS:
        if any(fixture in getattr(item, "fixturenames", ()) for item in session.items):
            if reporter is not None:
                reporter.write_line(f"{what} (cached per machine; minutes when cold)")
            build()
