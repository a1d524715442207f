"""Fixtures: the real Kubernetes control plane (tests/cluster), shared by the session."""

from __future__ import annotations

import pytest
from cluster.control_plane import build_binaries
from cluster.fixtures import control_plane, k8s, kube, operator_release  # noqa: F401  (fixtures)


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
