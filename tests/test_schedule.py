"""Keep-warm windows: parsing, time zones with daylight saving, overnight windows, next edges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remote_ollama.spec.schedule import active_window, next_edge, parse_window

OFFICE = parse_window(
    {
        "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
        "start": "08:55",
        "end": "18:00",
        "timeZone": "Europe/Zurich",
    }
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_inside_and_outside_in_winter_and_summer() -> None:
    # Monday 2025-01-13: Zurich is UTC+1
    assert active_window([OFFICE], utc(2025, 1, 13, 7, 55)) == (utc(2025, 1, 13, 7, 55), utc(2025, 1, 13, 17))
    assert active_window([OFFICE], utc(2025, 1, 13, 7, 54)) is None
    assert active_window([OFFICE], utc(2025, 1, 13, 17, 0)) is None
    # Monday 2025-07-14: UTC+2
    assert active_window([OFFICE], utc(2025, 7, 14, 6, 55)) is not None
    assert active_window([OFFICE], utc(2025, 7, 14, 15, 59)) is not None
    assert active_window([OFFICE], utc(2025, 7, 14, 16, 0)) is None
    # Saturday
    assert active_window([OFFICE], utc(2025, 1, 18, 10)) is None


def test_next_edge() -> None:
    assert next_edge([OFFICE], utc(2025, 1, 13, 6)) == utc(2025, 1, 13, 7, 55)
    assert next_edge([OFFICE], utc(2025, 1, 13, 8)) == utc(2025, 1, 13, 17)
    assert next_edge([OFFICE], utc(2025, 1, 17, 18)) == utc(2025, 1, 20, 7, 55)  # Friday night -> Monday
    assert next_edge([], utc(2025, 1, 13)) is None


def test_dst_switch_day() -> None:
    # Sunday 2025-03-30 clocks go 02:00 -> 03:00 in Zurich; a Sunday 01:00-04:00 window lasts 2 real hours
    w = parse_window({"days": ["Sun"], "start": "01:00", "end": "04:00", "timeZone": "Europe/Zurich"})
    assert active_window([w], utc(2025, 3, 30, 1)) == (utc(2025, 3, 30, 0), utc(2025, 3, 30, 2))


def test_overnight_and_touching_windows_chain() -> None:
    night = parse_window({"days": ["Fri"], "start": "22:00", "end": "02:00"})
    assert active_window([night], utc(2025, 1, 18, 1)) == (utc(2025, 1, 17, 22), utc(2025, 1, 18, 2))
    morning = parse_window({"days": ["Sat"], "start": "02:00", "end": "06:00"})
    assert active_window([night, morning], utc(2025, 1, 17, 23)) == (
        utc(2025, 1, 17, 22),
        utc(2025, 1, 18, 6),
    )
    whole = parse_window({"start": "00:00", "end": "24:00"})
    span = active_window([whole], utc(2025, 1, 15, 12))
    assert span is not None and span[0] <= utc(2025, 1, 15) and span[1] >= utc(2025, 1, 16)


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        ({"days": ["Monday"], "start": "08:00", "end": "09:00"}, "unknown day"),
        ({"days": [], "start": "08:00", "end": "09:00"}, "non-empty"),
        ({"start": "8:00", "end": "09:00"}, "HH:MM"),
        ({"start": "08:00", "end": "25:00"}, "HH:MM"),
        ({"start": "24:00", "end": "09:00"}, "before 24:00"),
        ({"start": "08:00", "end": "08:00"}, "differ"),
        ({"start": "08:00", "end": "09:00", "timeZone": "Mars/Olympus"}, "unknown timeZone"),
        ({"start": "08:00", "end": "09:00", "tz": "UTC"}, "unknown field"),
        ("08:00-09:00", "object"),
    ],
)
def test_invalid_windows(raw: object, msg: str) -> None:
    with pytest.raises((ValueError, TypeError), match=msg):
        parse_window(raw)


def test_round_trip() -> None:
    assert parse_window(OFFICE.to_dict()) == OFFICE
