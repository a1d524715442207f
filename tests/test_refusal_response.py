"""A refused wake (budget cap, credentials) is not "provisioning": the 503 says so, and Retry-After
points at the budget's reset (or is absent when nobody knows when retrying helps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from proxy_world import MODELS, world

from remote_ollama.kube.proxy_main import budget_resets_at
from remote_ollama.proxy.interfaces import ProxySettings, Refusal


async def post(url: str) -> tuple[int, dict[str, str], dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/api/generate", json={"model": MODELS[0], "prompt": "hi"}) as r,
    ):
        return r.status, dict(r.headers), await r.json()


async def test_budget_refusal_is_not_provisioning_and_retries_at_the_reset() -> None:
    async with world(ProxySettings(retry_after=10), ready=False) as w:
        reset = datetime.now(UTC) + timedelta(hours=3)
        w.resolver.set_refusing("Stopped", Refusal("budget exceeded: 10 running hours today", retry_at=reset))
        status, headers, body = await post(w.url)
        assert status == 503 and body["provisioning"] is False and body["error"].startswith("budget")
        assert 3 * 3600 - 60 <= int(headers["Retry-After"]) <= 3 * 3600

        w.resolver.set_refusing("Stopped", Refusal("credentials refused"))  # no known end
        status, headers, body = await post(w.url)
        assert status == 503 and body["provisioning"] is False and "Retry-After" not in headers


def test_the_operator_proxy_reads_the_reset_from_status() -> None:
    status = {
        "conditions": [{"type": "BudgetExceeded", "status": "True", "message": "budget exceeded"}],
        "cost": {"budgetResetsAt": "2025-02-02T00:00:00Z"},
    }
    assert budget_resets_at(status) == datetime(2025, 2, 2, tzinfo=UTC)
    status["conditions"][0]["status"] = "False"
    assert budget_resets_at(status) is None
