"""The operator-mode proxy's wait for the operator's answer to its wake request (kube/wake_answer.py):
only for a refusal a round may lift, at most ANSWER_WAIT, and a forged echo in the tenant-writable
status only shortens or lengthens that bounded wait."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remote_ollama.kube import wake_answer
from remote_ollama.kube.proxy_main import ResourceFollower
from remote_ollama.kube.wake_answer import ANSWER_WAIT, WakeAnswer
from remote_ollama.proxy.interfaces import NotReady, Refusal
from remote_ollama.proxy.local import LocalResolver
from remote_ollama.spec.vocabulary import Reason

ASKED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
QUOTA = Refusal("GPU quota exhausted", Reason.QUOTA_EXCEEDED)


def answer() -> WakeAnswer:
    wake = WakeAnswer()
    wake.ask(ASKED, now=100.0)
    return wake


def echo(at: datetime | str) -> dict[str, str]:
    text = at if isinstance(at, str) else at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"wakeRequestAnswered": text}


def test_a_quota_refusal_waits_for_the_answer_to_the_wake_and_no_longer() -> None:
    wake = answer()
    assert wake.waiting({}, QUOTA, 101.0) == ANSWER_WAIT - 1  # no answer yet
    assert wake.waiting(echo(ASKED - timedelta(seconds=1)), QUOTA, 101.0) == ANSWER_WAIT - 1  # an older one
    assert wake.waiting(echo(ASKED), QUOTA, 101.0) == 0  # the annotation as written (milliseconds)
    assert wake.waiting({}, QUOTA, 100.0 + ANSWER_WAIT) == 0  # unanswered: the refusal stands


def test_refusals_no_round_lifts_stand_at_once() -> None:
    wake = answer()
    for refusal in (
        Refusal("budget exceeded", Reason.BUDGET_EXCEEDED),
        Refusal("namespace spend cap reached", Reason.NAMESPACE_SPEND_CAP_REACHED),
        Refusal("cloud API unreachable", Reason.CLOUD_UNAVAILABLE, 15.0),
        Refusal("refusing non-https endpoint"),
    ):
        assert wake.waiting({}, refusal, 101.0) == 0, refusal
    assert WakeAnswer().waiting({}, QUOTA, 101.0) == 0  # this proxy asked for no wake


def test_a_forged_echo_only_moves_the_answer_within_the_bound() -> None:
    wake = answer()
    assert wake.waiting(echo("2999-01-01T00:00:00Z"), QUOTA, 101.0) == 0  # sooner: as before the echo
    for junk in ("soon", "x" * 10_000, 42):
        assert wake.waiting({"wakeRequestAnswered": junk}, QUOTA, 101.0) <= ANSWER_WAIT  # type: ignore[dict-item]
    assert wake.waiting({"wakeRequestAnswered": "soon"}, QUOTA, 100.0 + ANSWER_WAIT) == 0


# -- the operator-mode proxy's follower: what a request sees -------------------------------------------


def quota_status(**extra: Any) -> dict[str, Any]:
    ready = {"type": "Ready", "status": "False", "reason": "QuotaExceeded", "message": "GPU quota exhausted"}
    return {"spec": {}, "status": {"phase": "Failed", "conditions": [ready], **extra}}


def follower() -> tuple[ResourceFollower, LocalResolver]:
    resolver = LocalResolver(phase="Pending")
    return ResourceFollower(None, "ai", "granite", resolver), resolver  # type: ignore[arg-type]


async def test_the_request_that_asks_waits_for_the_answer_then_is_refused_or_held() -> None:
    follow, resolver = follower()
    await follow.apply(quota_status())
    assert resolver.refused() is not None  # no wake asked: refused at once, as before
    follow.wake_asked(ASKED)  # at once, before the request that asked waits
    assert resolver.refused() is None and not resolver.state().ready
    await follow.apply(quota_status(wakeRequestAnswered="2026-03-01T11:59:59Z"))  # an older answer
    assert resolver.refused() is None
    await follow.apply(quota_status(wakeRequestAnswered=echo(ASKED)["wakeRequestAnswered"]))
    refused = resolver.refused()
    assert refused is not None and refused.reason is Reason.QUOTA_EXCEEDED  # the answer: still no quota

    follow.wake_asked(ASKED + timedelta(seconds=20))  # the user raised the quota: the round creates the VM
    await follow.apply(
        {"spec": {}, "status": {"phase": "Provisioning", "wakeRequestAnswered": "2026-03-01T12:00:20.123Z"}}
    )
    assert resolver.refused() is None and resolver.state().phase == "Provisioning"  # held while it comes


async def test_an_unanswered_wake_is_refused_when_the_wait_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wake_answer, "ANSWER_WAIT", 0.05)
    follow, resolver = follower()
    await follow.apply(quota_status())
    follow.wake_asked(ASKED)
    loop = asyncio.get_running_loop()
    with pytest.raises(NotReady) as refused:
        await resolver.await_ready(loop.time() + 30)  # no operator answers: refused once the wait ends
    assert refused.value.reason is Reason.QUOTA_EXCEEDED


async def test_a_budget_refusal_stands_with_its_retry_after() -> None:
    follow, resolver = follower()
    capped = {
        "type": "BudgetExceeded",
        "status": "True",
        "reason": "NamespaceSpendCapReached",
        "message": "cap",
    }
    status = {"phase": "Stopped", "conditions": [capped], "cost": {"budgetResetsAt": "2026-04-01T00:00:00Z"}}
    await follow.apply({"spec": {}, "status": status})
    follow.wake_asked(ASKED)
    refused = resolver.refused()
    assert refused is not None and refused.retry_at == datetime(2026, 4, 1, tzinfo=UTC)
