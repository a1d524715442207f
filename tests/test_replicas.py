"""The desired-replicas decision (core/replicas.py) on an injected clock: up at once when the load
crosses, down one replica at a time after scaleDownAfter, never a replica with a request in flight,
always within min (or keep-warm) and max (or the budget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remote_ollama.core.replicas import ScaleDecision, ScaleInput, ScaleMemory, decide_replicas, needed
from remote_ollama.spec.sections import ReplicaPolicy
from remote_ollama.spec.vocabulary import Reason

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = ReplicaPolicy(min=0, max=4, target_in_flight=4, scale_down_after=300.0)


class Shell:
    """Carries out decisions as a shell would: a set of running replicas and the memory between rounds."""

    def __init__(self, policy: ReplicaPolicy = POLICY, running: frozenset[int] = frozenset()) -> None:
        self.policy, self.running, self.memory, self.now = policy, running, ScaleMemory(), T0

    def round(self, in_flight: dict[int, int], held: int = 0, at: float = 0.0, **kw: int) -> ScaleDecision:
        self.now = T0 + timedelta(seconds=at)
        d = decide_replicas(
            ScaleInput(self.policy, 4, self.now, self.running, in_flight, held, memory=self.memory, **kw)
        )
        assert not set(d.stop) & {i for i, n in in_flight.items() if n}, "stopped a busy replica"
        self.running = (self.running | set(d.start)) - set(d.stop)
        self.memory = d.memory
        return d


def test_needed_is_ceil_of_load_over_target() -> None:
    assert [needed(n, 4) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_a_burst_from_zero_scales_up_in_the_same_round() -> None:
    shell = Shell()
    d = shell.round({}, held=12)  # 3 x target held, nothing running
    assert (d.desired, d.start, d.reason) == (3, (0, 1, 2), Reason.SCALING_UP)
    d = shell.round({0: 4, 1: 4, 2: 4}, at=1)  # they are served: nothing more
    assert (d.desired, d.start, d.stop) == (3, (), ())


def test_never_above_max_nor_the_budget() -> None:
    shell = Shell()
    assert shell.round({}, held=100).start == (0, 1, 2, 3)
    d = shell.round({0: 25, 1: 25, 2: 25, 3: 25}, at=1)
    assert (d.desired, d.reason) == (4, Reason.AT_MAX_REPLICAS)
    capped = Shell().round({}, held=100, ceiling=2)
    assert (capped.desired, capped.start) == (2, (0, 1))


def test_min_and_keep_warm_are_floors() -> None:
    d = Shell(ReplicaPolicy(min=2, max=4, target_in_flight=4)).round({})
    assert (d.desired, d.start) == (2, (0, 1))
    warm = Shell().round({}, floor=3)
    assert (warm.desired, warm.start) == (3, (0, 1, 2))
    assert Shell(ReplicaPolicy(min=2, max=4)).round({}, ceiling=1).desired == 1  # the budget wins


def test_idle_returns_to_min_one_replica_at_a_time_after_scale_down_after() -> None:
    shell = Shell(ReplicaPolicy(min=1, max=4, target_in_flight=4, scale_down_after=300.0))
    shell.round({}, held=12)
    assert shell.running == {0, 1, 2}
    stops: list[tuple[float, tuple[int, ...]]] = []
    for second in range(1, 1200, 5):
        d = shell.round({}, at=second)
        if d.stop:
            stops.append((second, d.stop))
    # the window forgets the burst after 10 s; then 300 s below target per step; 1 (min) stays
    assert [s for _, s in stops] == [(2,), (1,)]
    (first, _), (second_stop, _) = stops
    assert 300 <= first <= 320 and second_stop - first >= 300
    assert shell.running == {0}


def test_a_short_dip_does_not_scale_down() -> None:
    shell = Shell()
    shell.round({}, held=8)
    for second in range(1, 600, 5):
        busy = second % 200 < 100  # idle 100 s at a time: less than scaleDownAfter
        d = shell.round({0: 4, 1: 4} if busy else {}, at=second)
        assert d.stop == (), second
    assert shell.running == {0, 1}


def test_a_replica_with_a_request_in_flight_is_never_stopped() -> None:
    shell = Shell()
    shell.round({}, held=8)
    shell.round({0: 1, 1: 1}, at=20)  # load 2: one replica would carry it
    d = shell.round({0: 1, 1: 1}, at=400)  # time to step down, but both are busy
    assert (d.stop, d.reason, d.recheck_after) == ((), Reason.SCALE_DOWN_PENDING, 1.0)
    d = shell.round({0: 0, 1: 2}, at=401)  # replica 0 finished: it is the one that goes
    assert d.stop == (0,) and shell.running == {1}


def test_max_lowered_stops_only_idle_extras() -> None:
    shell = Shell(running=frozenset({0, 1, 2}))
    shell.policy = ReplicaPolicy(min=0, max=1, target_in_flight=4)
    d = shell.round({0: 1, 1: 0, 2: 3})
    assert d.stop == (1,) and d.reason is Reason.AT_MAX_REPLICAS


def test_max_one_asks_for_at_most_one_replica() -> None:
    shell = Shell(ReplicaPolicy())
    d = shell.round({}, held=50)
    assert (d.desired, d.start) == (1, (0,))
    assert shell.round({0: 50}, at=1).desired == 1


def test_a_ramp_up_is_not_mistaken_for_a_fall() -> None:
    """The window's average lags a rise (here requests arrive one per 0.1 s): while the load stays,
    nothing is stopped."""
    shell = Shell(ReplicaPolicy(min=0, max=3, target_in_flight=4, scale_down_after=1.0))
    ramp = [(i * 0.1, i + 1) for i in range(12)] + [(1.2 + i * 0.5, 12) for i in range(10)]
    for at, load in ramp:
        d = shell.round({}, held=load, at=at)
        assert d.stop == (), (at, d)
    assert shell.running == {0, 1, 2}
