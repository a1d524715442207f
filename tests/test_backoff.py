"""The one backoff policy: doubling from the base, capped, jitter within its bounds."""

from remote_ollama.core.backoff import backoff


def test_doubles_then_caps() -> None:
    assert [backoff(n, cap=300) for n in range(1, 10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff(3, base=0.5, cap=60) == 4 and backoff(10_000, cap=60) == 60


def test_jitter_stays_within_its_bounds() -> None:
    for _ in range(200):
        assert 4 <= backoff(3, cap=60, jitter="half") <= 8
        assert 0 <= backoff(3, cap=60, jitter="full") <= 8
