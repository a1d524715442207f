"""The operator-mode proxy's wait for the operator's answer to its wake request (kube/wake_answer.py):
only for a refusal a round may lift, at most ANSWER_WAIT, and a forged echo in the tenant-writable
status only shortens or lengthens that bounded wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remote_ollama.kube.wake_answer import ANSWER_WAIT, WakeAnswer
from remote_ollama.proxy.interfaces import Refusal
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
