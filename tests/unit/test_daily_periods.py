"""Local days and the split of a period into whole days and edge hours (catalog/daily.py)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime

from controller.catalog.daily import (
    DAY_US,
    HOUR_US,
    LOCAL_OFFSET_US,
    day_of,
    split_period,
    to_days,
)
from controller.times import LOCAL_ZONE

US = 1_000_000
LOCAL_MIDNIGHT = 1_793_462_400 * US  # 2026-11-01 00:00 Asia/Shanghai (2026-10-31 16:00 UTC)


def test_a_local_day_starts_at_16_00_utc() -> None:
    assert day_of(LOCAL_MIDNIGHT) == LOCAL_MIDNIGHT
    assert day_of(LOCAL_MIDNIGHT + DAY_US - 1) == LOCAL_MIDNIGHT
    assert day_of(LOCAL_MIDNIGHT - 1) == LOCAL_MIDNIGHT - DAY_US
    utc_midnight = LOCAL_MIDNIGHT + 8 * HOUR_US  # 2026-11-01 00:00 UTC is 08:00 local
    assert day_of(utc_midnight) == LOCAL_MIDNIGHT


def test_the_day_tables_use_the_zone_reports_are_read_in() -> None:
    """The day tables assume one fixed offset; it must be the zone people type times in
    (controller/times.py), in winter and in summer (a zone with daylight saving cannot be
    kept per day this way)."""
    for month in (1, 7):
        offset = LOCAL_ZONE.utcoffset(datetime(2026, month, 1))
        assert offset is not None and offset.total_seconds() * US == LOCAL_OFFSET_US


def test_a_local_month_is_all_days_and_a_utc_month_has_edge_hours() -> None:
    parts = split_period(LOCAL_MIDNIGHT, LOCAL_MIDNIGHT + 30 * DAY_US)
    assert parts.hours == () and parts.days == (LOCAL_MIDNIGHT, LOCAL_MIDNIGHT + 30 * DAY_US)
    utc = LOCAL_MIDNIGHT + 8 * HOUR_US
    parts = split_period(utc, utc + 30 * DAY_US)
    assert parts.days == (LOCAL_MIDNIGHT + DAY_US, LOCAL_MIDNIGHT + 30 * DAY_US)
    assert parts.hours == (
        (utc, LOCAL_MIDNIGHT + DAY_US),
        (LOCAL_MIDNIGHT + 30 * DAY_US, utc + 30 * DAY_US),
    )
    assert split_period(utc, utc + 30 * DAY_US, days=False).hours == ((utc, utc + 30 * DAY_US),)
    # Less than a whole day: hours only.
    assert split_period(utc, utc + DAY_US).days is None


def covered(start_us: int, end_us: int, base: int, hours: int) -> list[int]:
    """The hours of [base, base + hours) the split reads, each as often as it reads it."""
    parts = split_period(start_us, end_us)
    out = []
    for h in range(hours):
        t = base + h * HOUR_US
        out += [t for lo, hi in parts.hours if lo <= t < hi]
        if parts.days is not None and parts.days[0] <= day_of(t) < parts.days[1]:
            out.append(t)
    return out


def test_every_hour_starting_in_the_period_is_read_exactly_once() -> None:
    rng = random.Random(16)
    base, hours = LOCAL_MIDNIGHT - 3 * DAY_US, 24 * 12
    for _ in range(300):
        a = base + rng.randrange(hours * HOUR_US)
        b = a + rng.choice([0, 1, HOUR_US, DAY_US]) + rng.randrange(4 * DAY_US)
        b = min(b, base + hours * HOUR_US)
        if rng.random() < 0.3:  # often exactly on an hour or a local midnight
            a -= a % HOUR_US if rng.random() < 0.5 else a - day_of(a)
        wanted = [base + h * HOUR_US for h in range(hours) if a <= base + h * HOUR_US < b]
        assert covered(a, b, base, hours) == wanted, (a, b)


def test_hours_sum_into_their_days_and_heights_keep_the_largest() -> None:
    deltas = {
        ("cam", LOCAL_MIDNIGHT - HOUR_US): Counter(recorded_us=1, video_height=576),
        ("cam", LOCAL_MIDNIGHT): Counter(recorded_us=2, video_height=720),
        ("cam", LOCAL_MIDNIGHT + 23 * HOUR_US): Counter(recorded_us=3, video_height=480),
    }
    assert to_days(deltas) == {
        ("cam", LOCAL_MIDNIGHT - DAY_US): Counter(recorded_us=1, video_height=576),
        ("cam", LOCAL_MIDNIGHT): Counter(recorded_us=5, video_height=720),
    }
    classed = {("cam", LOCAL_MIDNIGHT + HOUR_US, 4): Counter(segments=2)}
    assert to_days(classed) == {("cam", LOCAL_MIDNIGHT, 4): Counter(segments=2)}
