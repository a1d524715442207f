"""Fixtures: the real Kubernetes control plane (tests/cluster) and the real Ollama
(tests/ollama_real), shared by the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster.control_plane import build_binaries
from cluster.fixtures import control_plane, k8s, kube, operator_release  # noqa: F401  (fixtures)
from exoscale_openapi import check_exchange, recorded_problems
from ollama_real.fixtures import ollama_http, real_ollama  # noqa: F401  (fixtures)
from ollama_real.server import build_ollama

from remote_ollama.sandbox.exoscale.wire import EXCHANGE_OBSERVERS, RECORD_ENV

# fixture a test needs → the build it waits for (its script and what it builds)
_BUILDS: tuple[tuple[str, str, Callable[[], Path]], ...] = (
    ("control_plane", "control plane: tests/cluster/build.sh", build_binaries),
    ("real_ollama", "real Ollama: tests/ollama_real/build.sh", build_ollama),
    ("real_ollama_cli", "real Ollama: tests/ollama_real/build.sh", build_ollama),
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


@pytest.fixture(autouse=True)
def exoscale_traffic_as_described(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every request the product sends to the Exoscale simulator and every answer it gives, in every
    test, is held to the API's own description (python-exoscale's openapi.json): an invented field,
    an unknown enum value or a user-data over 32 KiB fails the test that caused it. A simulator in a
    subprocess (the sandbox) records its exchanges to the file RECORD_ENV names, judged here too."""
    problems: list[str] = []

    def observe(operation: str, body: Any, status: int, answer: Any) -> None:
        problems.extend(check_exchange(operation, body, status, answer))

    record = tmp_path_factory.mktemp("exoscale-exchanges") / "exchanges.jsonl"
    monkeypatch.setenv(RECORD_ENV, str(record))
    EXCHANGE_OBSERVERS.append(observe)
    try:
        yield
    finally:
        EXCHANGE_OBSERVERS.remove(observe)
    problems += recorded_problems(record)
    assert not problems, "Exoscale traffic the API's description forbids:\n" + "\n".join(
        sorted(set(problems))[:20]
    )
