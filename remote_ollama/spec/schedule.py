"""Keep-warm windows: weekly time ranges in a time zone during which the VM is kept running (pure).

A window `{days: [Mon..Fri], start: "08:55", end: "18:00", timeZone: "Europe/Zurich"}` is a
wall-clock range on each listed day; an `end` at or before `start` runs past midnight into the next
day. Daylight-saving changes follow the zone (zoneinfo); times are compared in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")


def utcnow() -> datetime:
    """The one wall clock (UTC): every default `clock`/`now` in the package is this."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time | None  # None: 24:00
    time_zone: str = "UTC"

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": [DAYS[d] for d in sorted(self.days)],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M") if self.end else "24:00",
            "timeZone": self.time_zone,
        }

    def _span(self, day: date) -> tuple[datetime, datetime]:
        """The window opened on `day` (local), as UTC instants."""
        tz = ZoneInfo(self.time_zone)
        start = datetime.combine(day, self.start, tz)
        if self.end is None or self.end <= self.start:
            end_day = day + timedelta(days=1)
            end = datetime.combine(end_day, self.end or time(0), tz)
        else:
            end = datetime.combine(day, self.end, tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def spans(
        self, around: datetime, days_back: int = 1, days_ahead: int = 8
    ) -> Iterable[tuple[datetime, datetime]]:
        local_day = around.astimezone(ZoneInfo(self.time_zone)).date()
        for offset in range(-days_back, days_ahead + 1):
            day = local_day + timedelta(days=offset)
            if day.weekday() in self.days:
                yield self._span(day)


def _clock(value: Any, what: str) -> time | None:
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise ValueError(f"{what} must be HH:MM (00:00..24:00): {value!r}")
    if value == "24:00":
        return None
    h, m = value.split(":")
    return time(int(h), int(m))


def parse_window(raw: Any) -> Window:
    """One window from its CR form; raises ValueError naming the bad part."""
    if not isinstance(raw, dict):
        raise TypeError("must be an object with days, start, end and timeZone")
    unknown = sorted(set(raw) - {"days", "start", "end", "timeZone"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    days_raw = raw.get("days", list(DAYS))
    if not isinstance(days_raw, list) or not days_raw:
        raise ValueError(f"days must be a non-empty list of {', '.join(DAYS)}")
    days: set[int] = set()
    for d in days_raw:
        if d not in DAYS:
            raise ValueError(f"unknown day {d!r}; use {', '.join(DAYS)}")
        days.add(DAYS.index(d))
    start = _clock(raw.get("start"), "start")
    if start is None:
        raise ValueError("start must be before 24:00")
    end = _clock(raw.get("end"), "end")
    tz = raw.get("timeZone", "UTC")
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"timeZone must be an IANA zone such as Europe/Zurich: {tz!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timeZone {tz!r} (use an IANA name such as Europe/Zurich)") from exc
    if end is not None and end == start:
        raise ValueError("end must differ from start")
    return Window(frozenset(days), start, end, tz)


def keep_warm_periods(windows: Sequence[Window], now: datetime) -> list[tuple[datetime, datetime]]:
    """The windows around `now` (a day back, eight ahead) merged into disjoint UTC periods."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(s for w in windows for s in w.spans(now)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def active_window(windows: Sequence[Window], now: datetime) -> tuple[datetime, datetime] | None:
    """(opened, closes) of the keep-warm period containing `now`, chaining windows that touch."""
    return next(((s, e) for s, e in keep_warm_periods(windows, now) if s <= now < e), None)


def next_edge(windows: Sequence[Window], now: datetime) -> datetime | None:
    """The next instant after `now` at which a keep-warm period opens or closes (None: no windows)."""
    edges = [t for span in keep_warm_periods(windows, now) for t in span if t > now]
    return min(edges) if edges else None
