"""A RemoteOllama that can never come up for a permanent cause is answered at once, with the reason,
by the operator's own proxy (started from the Deployment the operator created), as in standalone mode:
no request waits out wake.holdTimeout for a wake that cannot happen, and no Retry-After invites a
retry that cannot help."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from cluster.fixtures import KubeNamespace
from operator_world import OperatorWorld, credentials_secret, operator_world, remote_ollama
from waiting import wait_until

HOLD = "120s"


def ready_reason(world: OperatorWorld) -> str | None:
    obj = world.get("remoteollama", "granite") or {}
    conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
    return (conds.get("Ready") or {}).get("reason")


async def ask(url: str) -> tuple[int, dict[str, str], dict[str, Any], float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/generate", json={"model": "granite3.1-dense:8b", "prompt": "hi", "stream": False}
        ) as resp,
    ):
        body = await resp.json()
        return resp.status, dict(resp.headers), body, time.monotonic() - started


def answered_at_once_with(url: str, reason: str) -> dict[str, Any]:
    status, headers, body, waited = asyncio.run(ask(url))
    assert status == 503, body
    assert body.get("reason") == reason and body["provisioning"] is False, body
    assert "Retry-After" not in headers, headers
    assert waited < 10, f"held {waited:.1f}s for a cause that cannot clear (holdTimeout {HOLD})"
    return body


@pytest.mark.parametrize(
    ("cause", "reason"),
    [("not-authorized", "InstanceTypeNotAuthorized"), ("gpu-quota-0", "QuotaExceeded")],
)
def test_cloud_refusal_is_answered_at_once(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch, cause: str, reason: str
) -> None:
    with operator_world(kube, monkeypatch) as world:
        if cause == "not-authorized":
            world.sim.sim.set_authorized("gpua5000", False)
        else:
            world.sim.sim.exceed_quota("gpua5000")
        world.apply(credentials_secret())
        world.apply(remote_ollama(wake={"holdTimeout": HOLD}))
        wait_until(lambda: ready_reason(world) == reason, 30, f"Ready=False {reason}")
        url = world.start_proxy()
        body = answered_at_once_with(url, reason)
        assert "gpua5000" in body["error"], body
        assert world.instances() == []
        from remote_ollama.kube.operator.context import OPERATOR

        counted = OPERATOR.metrics.registry.get_sample_value(
            "remote_ollama_cloud_errors_total", {"reason": reason}
        )
        assert counted is not None and counted >= 1


def test_invalid_spec_is_answered_at_once(kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec edited into one the CRD accepts but the operator cannot use (an unknown family)."""
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama(wake={"holdTimeout": HOLD}, idle={"stopAfter": "1h"}, suspend=True))
        url = world.start_proxy()
        world.apply(remote_ollama(wake={"holdTimeout": HOLD}, instanceType="gpua9000.small"))
        wait_until(lambda: ready_reason(world) == "InvalidSpec", 30, "Ready=False InvalidSpec")
        body = answered_at_once_with(url, "InvalidSpec")
        assert "spec.instanceType" in body["error"], body
        assert world.instances() == []


def test_the_request_whose_wake_finds_the_quota_raised_is_held_and_served(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal a lifecycle round may lift (the user raises the quota) is not the answer to the
    request whose wake runs that round: the proxy waits for the operator's answer to its wake
    (status.wakeRequestAnswered), a few seconds at most, then holds the request while the VM comes,
    or refuses it with the reason. (Each proxy writes one wake request per activityInterval; the
    request after the raise goes to the Deployment's second proxy, whose wake is its first.)"""
    from remote_ollama.kube.wake_answer import ANSWER_WAIT

    with operator_world(kube, monkeypatch) as world:
        world.sim.sim.exceed_quota("gpua5000")
        world.apply(credentials_secret())
        world.apply(remote_ollama(wake={"holdTimeout": HOLD}))
        wait_until(lambda: ready_reason(world) == "QuotaExceeded", 30, "Ready=False QuotaExceeded")
        url = world.start_proxy()
        other = world.start_proxy(pod_name="granite-proxy-1")

        # the quota still too low: the round on this request's wake says so, and the request is
        # refused with the reason within the wait for that answer, not held for holdTimeout
        status, _, body, waited = asyncio.run(ask(url))
        assert status == 503 and body.get("reason") == "QuotaExceeded", body
        assert waited < ANSWER_WAIT + 5, f"held {waited:.1f}s (holdTimeout {HOLD})"
        assert world.instances() == []

        world.sim.sim.set_quota("gpua5000", 4)  # the user raises the quota; no round is due yet
        status, _, body, waited = asyncio.run(ask(other))
        assert status == 200 and body.get("done") is True, body
        assert [i.state for i in world.instances()] == ["running"]
