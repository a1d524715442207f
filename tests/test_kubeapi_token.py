"""A projected ServiceAccount token is short-lived: the kubelet rotates the file and the old token
stops working. The operator and the proxy re-read it as client-go does (issue 18)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client

from remote_ollama.kube import api as kubeapi


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Accepts only the currently valid token (`state["valid"]`), as the API server does."""
    state: dict[str, Any] = {"valid": "first", "seen": []}

    async def get(request: web.Request) -> web.Response:
        state["seen"].append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != f"Bearer {state['valid']}":
            return web.json_response({"reason": "Unauthorized", "message": "token expired"}, status=401)
        return web.json_response({"kind": "Namespace", "metadata": {"name": "x"}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{name}", get)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", state
    await runner.cleanup()


async def test_a_rotated_token_is_read_again(
    apiserver: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = apiserver
    token = tmp_path / "token"
    token.write_text("first\n")
    cfg = client.Configuration()
    cfg.host = url
    cfg.api_key = {"authorization": "Bearer first"}  # what load_incluster_config leaves
    monkeypatch.setattr(kubeapi, "_load_configuration", lambda: (cfg, str(token)))
    monkeypatch.setattr(kubeapi, "TOKEN_REREAD", 0.0, raising=False)  # the test does not wait a minute
    api = kubeapi.KubeAPI.from_environment("proxy")
    try:
        assert await api.get("/api/v1/namespaces/x") is not None
        token.write_text("second\n")  # the kubelet rotated it; the old one no longer works
        state["valid"] = "second"
        assert await api.get("/api/v1/namespaces/x") is not None
        assert state["seen"] == ["Bearer first", "Bearer second"]
    finally:
        await api.close()


def test_a_token_is_re_read_once_a_minute_and_kept_when_unreadable(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "token"
    path.write_text("a")
    token = kubeapi.TokenFile(str(path), clock=lambda: now[0])
    assert token.header() == {"Authorization": "Bearer a"}
    path.write_text("b")
    now[0] = 59.0
    assert token.header() == {"Authorization": "Bearer a"}
    now[0] = 60.0
    assert token.header() == {"Authorization": "Bearer b"}
    path.unlink()
    now[0] = 200.0
    assert token.header() == {"Authorization": "Bearer b"}
