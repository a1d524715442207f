"""Operator-mode proxy: a status.endpoint that is not https is refused, never dialled (the client
certificate and any key would otherwise go out in clear)."""

from __future__ import annotations

from typing import Any

import pytest

from remote_ollama.kube.proxy_main import ResourceFollower
from remote_ollama.proxy.interfaces import NotReady
from remote_ollama.proxy.local import LocalResolver


class NoAPI:
    """Any call fails the test: an http endpoint must be refused before the Secret is even read."""

    async def get(self, path: str) -> Any:
        raise AssertionError(f"read {path} for a non-https endpoint")


async def test_a_plain_http_endpoint_is_refused() -> None:
    resolver = LocalResolver(phase="Pending")
    follower = ResourceFollower(NoAPI(), "ai", "granite", resolver)  # type: ignore[arg-type]
    await follower.apply({"spec": {}, "status": {"phase": "Ready", "endpoint": "http://203.0.113.7:11435"}})
    assert not resolver.state().ready
    with pytest.raises(NotReady, match="non-https"):
        await resolver.await_ready(0)
