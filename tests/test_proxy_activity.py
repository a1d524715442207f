"""Activity writes are debounced on an injected clock: no real waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from remote_ollama.proxy.activity import ActivityReporter
from remote_ollama.proxy.local import RecordingSink

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


def reporter(sink: RecordingSink, clock: Clock) -> ActivityReporter:
    return ActivityReporter(sink, 15.0, monotonic=clock.monotonic, wallclock=clock.wall)


async def test_at_most_one_write_per_interval() -> None:
    sink, clock = RecordingSink(), Clock()
    r = reporter(sink, clock)
    for second in range(0, 14):
        clock.t = float(second)
        r.begin()
        r.end()
        await r.settle()
    assert sink.touches == [T0]  # the first activity is written at once, the rest held back
    clock.t = 15.0
    r.tick()
    await r.settle()
    assert sink.touches == [T0, T0 + timedelta(seconds=13)]  # the latest activity, not the tick's time
    clock.t = 40.0
    r.tick()
    await r.settle()
    assert len(sink.touches) == 2  # nothing new: no write


async def test_a_long_request_keeps_touching_while_in_flight() -> None:
    sink, clock = RecordingSink(), Clock()
    r = reporter(sink, clock)
    r.begin()
    for second in range(1, 20 * 60, 5):  # a 20-minute generation, ticks every 5 s
        clock.t = float(second)
        r.tick()
        await r.settle()
    assert len(sink.touches) >= 20 * 60 // 15 - 1
    gaps = [(b - a).total_seconds() for a, b in zip(sink.touches, sink.touches[1:], strict=False)]
    assert all(15 <= g <= 20 for g in gaps)


async def test_never_two_writes_in_flight() -> None:
    clock = Clock()
    release = asyncio.Event()
    started: list[datetime] = []

    class SlowSink(RecordingSink):
        async def touch(self, at: datetime, in_flight: int = 0) -> None:
            started.append(at)
            await release.wait()

    r = reporter(SlowSink(), clock)
    r.note()
    await asyncio.sleep(0)
    clock.t = 100.0
    r.note()
    r.tick()
    await asyncio.sleep(0)
    assert len(started) == 1
    release.set()
    await r.settle()
    r.tick()
    await r.settle()
    assert len(started) == 2


async def test_wake_is_immediate_and_coalesced() -> None:
    sink, clock = RecordingSink(), Clock()
    r = reporter(sink, clock)
    for _ in range(100):
        r.request_wake()
    await r.settle()
    assert sink.wakes == [T0]
    r.instance_ready()  # up, then down again: the next request wakes at once
    clock.t = 1.0
    r.request_wake()
    await r.settle()
    assert sink.wakes == [T0, T0 + timedelta(seconds=1)]


async def test_a_failed_write_is_retried_on_the_next_tick() -> None:
    clock = Clock()

    class FlakySink(RecordingSink):
        fail = True

        async def touch(self, at: datetime, in_flight: int = 0) -> None:
            if self.fail:
                self.fail = False
                raise RuntimeError("apiserver unavailable")
            await super().touch(at, in_flight)

    sink = FlakySink()
    r = reporter(sink, clock)
    r.note()
    await r.settle()
    assert sink.touches == []
    clock.t = 1.0
    r.tick()
    await r.settle()
    assert sink.touches == [T0]


async def test_the_first_request_in_flight_is_written_at_once_with_the_count() -> None:
    """Debouncing never hides a request that begins: 0 -> 1 in flight is written at once, even right
    after another write, and every write says how many are in flight (0 once they are done)."""
    sink, clock = RecordingSink(), Clock()
    r = reporter(sink, clock)
    r.note()
    await r.settle()
    assert sink.touches == [T0] and sink.in_flight == 0
    clock.t = 1.0  # well within the 15 s interval
    r.begin()
    await r.settle()
    assert len(sink.touches) == 2 and sink.in_flight == 1
    r.begin()  # a second one waits for the interval, as before
    await r.settle()
    assert len(sink.touches) == 2
    r.end()
    r.end()
    clock.t = 17.0
    r.tick()
    await r.settle()
    assert len(sink.touches) == 3 and sink.in_flight == 0
