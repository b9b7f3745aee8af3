"""`vigil-controller footage`: reading times (pure)."""

from __future__ import annotations

import pytest

from controller.jobs.cli import TimeError, iso, parse_time

S = 1_000_000
NOW = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def test_iso_times_need_an_offset() -> None:
    assert parse_time("2026-01-01T08:00:00+08:00", NOW) == NOW
    assert parse_time("2026-01-01T00:00:00Z", NOW) == NOW
    with pytest.raises(TimeError, match="no UTC offset"):
        parse_time("2026-01-01T00:00:00", NOW)


def test_relative_times() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time(" now-15m ", NOW) == NOW - 900 * S
    assert parse_time("now+2h", NOW) == NOW + 7200 * S
    assert parse_time("now-1d", NOW) == NOW - 86400 * S
    for bad in ("yesterday", "now-15", "now*2h", "", "now-1y"):
        with pytest.raises(TimeError):
            parse_time(bad, NOW)


def test_iso_output() -> None:
    assert iso(NOW) == "2026-01-01T00:00:00+00:00"
    assert iso(0) == "-"
