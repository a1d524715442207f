"""Cloud faults the lifecycle must live with: quota, capacity, failed operations, an instance
deleted out of band, the API gone for a long time. Status says so; nothing leaks or doubles."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standalone_world import MODEL, standalone_world
from waiting import LIFECYCLE, until

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import NotReady, ProxySettings
from remote_ollama.sandbox.exoscale.objects import Operation
from remote_ollama.spec.vocabulary import Phase


async def test_quota_refusal_is_an_error_in_status_with_no_instance_and_no_retry_storm(
    tmp_path: Path,
) -> None:
    async with standalone_world(tmp_path, max_backoff=60.0) as w:
        w.scenario = "quota exceeded, 50 requests"
        w.sim.exceed_quota("gpua5000")
        w.inject()
        c = w.controller
        settings = ProxySettings(hold_timeout=0.3, status_extra=c.status)
        runner, port = await start_proxy(make_proxy_app(c, c, settings), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}"
        answers: list[tuple[int, Any]] = []
        try:
            async with aiohttp.ClientSession() as http:

                async def ask() -> None:
                    async with http.post(f"{url}/api/generate", json={"model": MODEL, "prompt": "x"}) as r:
                        answers.append((r.status, await r.json()))

                started = time.monotonic()
                before = len(w.sim.calls)
                for _ in range(5):  # clients retrying for ~2 s
                    await asyncio.gather(*(ask() for _ in range(10)))
                window = time.monotonic() - started
                async with http.get(f"{url}/status") as r:
                    status = await r.json()
        finally:
            await runner.cleanup()
        calls = w.sim.calls[before:]
        assert status["provisioning_status"] == "error"
        assert "quota" in status["error"].lower()
        assert {code for code, _ in answers} == {503}
        assert all("quota" in body["error"].lower() for _, body in answers[10:]), answers[-1]
        assert not w.live() and not w.seen_ids
        assert sum(c.operation == "create-instance" for c in calls) == 0
        quota_checks = sum(c.operation == "get-quota" for c in calls)
        assert quota_checks <= 2, f"{quota_checks} quota checks in {window:.1f}s: a retry storm"

        # Quota granted: the next wake works.
        w.sim.set_quota("gpua5000", 4)
        w.note = f"{len(calls)} API calls in {window:.1f}s, {quota_checks} quota checks"
        await w.wake()
        await w.ready()
        assert "error" not in c.status()
        await until(lambda: w.recovered() == len(w.faults()) == 1, what="Ready after the quota refusal")


async def test_start_failing_for_capacity_recovers_when_capacity_returns(tmp_path: Path) -> None:
    async with standalone_world(tmp_path) as w:
        w.scenario = "capacity: start refused x3"
        await w.wake()
        await w.ready()
        await w.sleep_now()
        starts = w.sim.call_count("start-instance")
        w.sim.fail_capacity(3, on=("start",))
        await w.wake()
        await w.ready()
        assert w.sim.call_count("start-instance") - starts == 4, "3 refused starts, then one that worked"
        assert w.sim.state.faults.capacity_failures["start"] == 0
        assert len(w.seen_ids) == 1, "the same stopped instance is started, not replaced"
        await until(lambda: w.recovered() == len(w.faults()) == 3, what="Ready after the refusals")


async def test_create_ending_in_failure_for_capacity_is_retried_without_twins(tmp_path: Path) -> None:
    async with standalone_world(tmp_path) as w:
        w.scenario = "capacity: create op failure x2"
        w.sim.fail_capacity(2, on=("create",))
        await w.wake()
        await w.ready()
        assert w.sim.call_count("create-instance") == 3
        assert len(w.live()) == 1
        await until(lambda: w.recovered() == len(w.faults()) == 2, what="Ready after the failures")
    assert w.duplicates == 0


async def test_operations_ending_in_failure_surface_then_recover(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with standalone_world(tmp_path) as w:
        w.scenario = "operation failure x2"
        real: Callable[..., None] = w.sim.state.finish_later
        failed: list[str] = []

        def failing(op: Operation, *, reason: str | None = None, message: str | None = None) -> None:
            if len(failed) < 2:
                failed.append(op.id)
                w.inject()
                return real(op, reason="fault", message="simulated internal fault")
            return real(op, reason=reason, message=message)

        w.sim.state.finish_later = failing  # type: ignore[method-assign]
        await w.wake()
        await w.ready()
        assert len(failed) == 2
        errors = [s["error"] for s in w.statuses if "error" in s]
        assert errors and all("ended in failure" in e for e in errors), w.statuses
        assert "error" not in w.controller.status()
        sgs = [g for g in w.sim.state.security_groups.values() if g.name.endswith(w.owner)]
        assert len(sgs) == 1 and len({r.network for r in sgs[0].rules}) == len(sgs[0].rules)
        await until(lambda: w.recovered() == len(w.faults()) == 2, what="Ready after the failures")


async def test_instance_deleted_out_of_band_is_noticed_at_the_next_check_and_recreated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="remote_ollama")
    async with standalone_world(tmp_path) as w:
        w.scenario = "vanished while Ready"
        await w.wake()
        await w.ready()
        c = w.controller
        old = c.saved.memory.instance_id
        assert old is not None
        old_key = c.saved.credentials and c.saved.credentials["client.key"]
        vanished_at, checks = time.monotonic(), w.sim.call_count("get-instance")
        w.sim.vanish(old)
        w.inject()

        def noticed() -> bool:
            return any(f"instance {old} vanished out of band" in r.getMessage() for r in caplog.records)

        await until(noticed, LIFECYCLE, "the vanish to be noticed")
        w.note = f"noticed in {time.monotonic() - vanished_at:.2f}s"
        assert w.sim.call_count("get-instance") - checks == 1, "noticed by the first check after it"
        await until(lambda: not c.state().ready, LIFECYCLE, "the proxy to stop using the gone VM")
        assert any(s["provisioning_status"] == "provisioning" for s in w.statuses)
        up = await w.ready()
        new = c.saved.memory.instance_id
        assert new not in (None, old)
        assert up.url.startswith("https://")
        assert any("creating instance" in r.getMessage() for r in caplog.records)
        assert c.saved.credentials and c.saved.credentials["client.key"] != old_key, "rotated on re-create"
        assert [i.id for i in w.live()] == [new]
        await until(lambda: w.recovered() == len(w.faults()) == 1, what="Ready on a new VM")
    assert w.duplicates == 0


async def test_api_unreachable_while_ready_degrades_status_keeps_serving_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="remote_ollama")
    async with standalone_world(tmp_path, retries=2, max_backoff=0.2) as w:
        w.scenario = "API offline while Ready"
        await w.wake()
        await w.ready()
        c = w.controller
        await w.sim.go_offline()
        w.inject()
        started = time.monotonic()
        await until(lambda: c.status()["provisioning_status"] == "error", LIFECYCLE, "status to degrade")
        # A long outage in fast time: many consecutive failed rounds.
        await until(lambda: c.failures.count >= 12, LIFECYCLE, "12 failed rounds")
        window = time.monotonic() - started
        assert c._task is not None and not c._task.done(), "the loop must keep running"
        assert c.state().ready, "the VM itself still serves while the API is away"
        assert not any("lifecycle round failed" in r.getMessage() for r in caplog.records)
        rounds = sum("cloud error" in r.getMessage() for r in caplog.records)
        w.note = f"{rounds} failed rounds in {window:.1f}s, served throughout"
        await w.sim.go_online()
        await until(lambda: "error" not in c.status(), LIFECYCLE, "recovery")
        assert c.status()["provisioning_status"] == "ready"
        assert len(w.live()) == 1
        await until(lambda: w.recovered() == len(w.faults()) == 1, what="a clean status again")


async def test_api_unreachable_during_wake_fails_held_requests_with_the_reason_then_recovers(
    tmp_path: Path,
) -> None:
    async with standalone_world(tmp_path, retries=1, max_backoff=0.2) as w:
        w.scenario = "API offline during wake"
        c = w.controller
        await w.sim.go_offline()
        w.inject()
        await w.wake()
        with pytest.raises(NotReady) as err:
            await w.ready(timeout=1.5)
        assert "unavailable" in err.value.message.lower()
        assert c.status()["provisioning_status"] == "error"
        await w.sim.go_online()
        await w.wake()
        await w.ready()
        assert c.state().phase == str(Phase.READY)
        assert "error" not in c.status()
        await until(lambda: w.recovered() == len(w.faults()) == 1, what="Ready after the outage")
    assert w.duplicates == 0
