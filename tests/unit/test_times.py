"""controller/times.py: one grammar for every typed time; the zone of a zoneless time is the
caller's explicit choice (pure)."""

from __future__ import annotations

import argparse
from datetime import UTC

import pytest

from controller.grants.cli import parse_time_us as grant_time
from controller.times import LOCAL_ZONE, TimeError, iso_utc, parse_time_us

S = 1_000_000
NOW = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def test_zoned_times_mean_the_same_everywhere() -> None:
    for naive in (LOCAL_ZONE, UTC, None):
        assert parse_time_us("2026-01-01T08:00:00+08:00", naive=naive) == NOW
        assert parse_time_us("2026-01-01T00:00:00Z", naive=naive) == NOW


def test_a_zoneless_time_is_local_by_default_and_the_callers_choice() -> None:
    assert parse_time_us("2026-01-01T08:00:00") == NOW  # Asia/Shanghai
    assert parse_time_us("2026-01-01T00:00:00", naive=UTC) == NOW
    with pytest.raises(TimeError, match="no UTC offset"):
        parse_time_us("2026-01-01T08:00:00", naive=None)


def test_typed_command_times_without_a_zone_are_beijing_time() -> None:
    assert grant_time("2026-01-01T08:00:00") == NOW
    assert grant_time(str(NOW)) == NOW
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        grant_time("yesterday")


def test_relative_and_epoch_forms_only_where_allowed() -> None:
    assert parse_time_us("now-15m", now_us=NOW) == NOW - 900 * S
    with pytest.raises(TimeError, match="now"):
        parse_time_us("now-15m")
    assert parse_time_us(str(NOW)) == NOW
    with pytest.raises(TimeError):
        parse_time_us(str(NOW), epoch_us=False)


def test_iso_output_is_utc() -> None:
    assert iso_utc(NOW) == "2026-01-01T00:00:00+00:00"
