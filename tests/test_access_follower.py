"""The operator-mode proxy's key follower stops when cancelled, even as a kick fires (Python 3.11)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from remote_ollama.kube.access import AccessFollower
from remote_ollama.kube.control import control
from remote_ollama.proxy.guard import ClientKeys
from remote_ollama.proxy.interfaces import ProxySettings


class SecretReader:
    async def get(self, path: str) -> dict[str, Any]:
        return {"data": {"k": "a2V5"}}  # "key"


async def test_cancelled_as_the_secret_name_changes_the_follower_stops() -> None:
    """`asyncio.wait_for` on 3.11 swallowed a cancel arriving with the kick: the loop then ran on."""
    proxy = SimpleNamespace(settings=ProxySettings(), keys=ClientKeys())
    follower = AccessFollower(SecretReader(), "ns", proxy, interval=3600)  # type: ignore[arg-type]
    for attempt in range(20):
        task = asyncio.create_task(follower.run())
        for _ in range(5):
            await asyncio.sleep(0)  # the loop now waits for a kick
        follower.apply_spec({"clientAuth": {"secretRef": {"name": f"keys-{attempt}"}}})  # kicks
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done == {task} and task.cancelled(), f"the follower ran on after cancel ({attempt})"


async def test_a_dot_name_fails_closed_without_a_crash() -> None:
    """`clientAuth.secretRef.name: ..` names no Secret: every client is refused, the follower lives."""
    proxy = SimpleNamespace(settings=ProxySettings(), keys=ClientKeys(["old"]))
    follower = AccessFollower(SecretReader(), "ns", proxy, interval=3600)  # type: ignore[arg-type]
    for name in ("..", "."):
        follower.apply_spec({"clientAuth": {"secretRef": {"name": name}}})
        await follower.refresh()
        assert (
            proxy.keys.enabled
            and not proxy.keys.accepts("Bearer old")
            and not proxy.keys.accepts("Bearer key")
        )


def test_the_cli_refuses_a_dot_name(capsys: Any) -> None:
    assert control("status", "..", "ns", "text") == 2
    assert "not a name" in capsys.readouterr().err
