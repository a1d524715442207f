"""Deleting a resource leaves nothing open: the operator closes the VM client it kept for it (a
real control plane logged "Unclosed client session" on every delete)."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from memory_data import memory_store

from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.engine.target import Target
from remote_ollama.kube.operator.context import Operator, ResourceContext


async def test_forgetting_a_deleted_resource_closes_its_http_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gc.collect()  # other tests' garbage is not this test's
    caplog.set_level(logging.ERROR)
    caplog.clear()
    operator = Operator()
    meta = {"name": "llm", "namespace": "team-a", "uid": "uid-1"}
    ctx = ResourceContext("uid-1", "team-a", "llm", {"metadata": meta})
    operator.contexts["uid-1"] = ctx
    cloud: Any = object()  # never called: only the VM client's session matters here
    reconciler = Reconciler(cloud, Target("uid-1", "cluster", "llm", "sg"), memory_store())
    ctx._reconciler = reconciler
    session = reconciler.vm._http()  # as after a probe of the VM's Ollama

    await operator.forget("uid-1")

    assert session.closed and "uid-1" not in operator.contexts
    del ctx, reconciler, session
    gc.collect()
    assert "Unclosed client session" not in caplog.text
