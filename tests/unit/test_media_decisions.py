"""The pure decisions of the H.264 rendition service (no I/O)."""

from __future__ import annotations

import pytest

from controller.media.decisions import (
    H264,
    ORIGINAL,
    Admission,
    CacheEntry,
    admit,
    choose_evictions,
    default_concurrency,
    parse_rendition,
    retry_after_s,
    segment_rendition,
)


def test_parse_rendition_accepts_the_known_ones_and_refuses_the_rest() -> None:
    assert parse_rendition(None) == ORIGINAL
    assert parse_rendition("") == ORIGINAL
    assert parse_rendition("original") == ORIGINAL
    assert parse_rendition("h264") == H264
    for bad in ("H264", "hevc", "h265", "../x", "h264 "):
        with pytest.raises(ValueError, match="rendition"):
            parse_rendition(bad)


@pytest.mark.parametrize(
    ("requested", "codec", "expected"),
    [
        (ORIGINAL, "hevc", ORIGINAL),  # ffmpeg / VLC / HEVC browsers: bit-exact original
        (ORIGINAL, "h264", ORIGINAL),
        (ORIGINAL, "", ORIGINAL),
        (H264, "h264", ORIGINAL),  # already H.264: no conversion
        (H264, "hevc", H264),
        (H264, "", H264),  # unknown: the converter says what is wrong
        (H264, "mpeg4", H264),
    ],
)
def test_segment_rendition(requested: str, codec: str, expected: str) -> None:
    assert segment_rendition(requested, codec) == expected


def test_admit_never_converts_twice_and_bounds_concurrency() -> None:
    assert admit(cached=True, in_flight=False, active=9, limit=1) is Admission.SERVE
    assert admit(cached=False, in_flight=True, active=1, limit=1) is Admission.JOIN
    assert admit(cached=False, in_flight=True, active=0, limit=4) is Admission.JOIN
    assert admit(cached=False, in_flight=False, active=0, limit=1) is Admission.START
    assert admit(cached=False, in_flight=False, active=1, limit=2) is Admission.START
    assert admit(cached=False, in_flight=False, active=2, limit=2) is Admission.WAIT
    assert admit(cached=False, in_flight=False, active=3, limit=2) is Admission.WAIT


def test_default_concurrency_is_half_the_cpus_at_least_one() -> None:
    assert default_concurrency(None) == 1
    assert default_concurrency(1) == 1
    assert default_concurrency(2) == 1
    assert default_concurrency(8) == 4
    assert default_concurrency(8, configured=3) == 3


def test_retry_after_is_at_least_a_second() -> None:
    assert retry_after_s(0.0, 0.02) == 1
    assert retry_after_s(2.0, 0.5) == 2
    assert retry_after_s(0.5, 4.4) == 4


def entries(*items: tuple[str, int, float]) -> list[CacheEntry]:
    return [CacheEntry(n, s, t) for n, s, t in items]


def test_eviction_is_least_recently_used_first_until_it_fits() -> None:
    cache = entries(("a", 40, 3.0), ("b", 40, 1.0), ("c", 40, 2.0))
    assert choose_evictions(cache, 120) == []
    assert choose_evictions(cache, 100) == ["b"]
    assert choose_evictions(cache, 40) == ["b", "c"]
    assert choose_evictions(cache, 0) == ["b", "c", "a"]


def test_eviction_skips_entries_in_use_and_ties_break_by_name() -> None:
    cache = entries(("x", 50, 1.0), ("w", 50, 1.0), ("y", 50, 5.0))
    assert choose_evictions(cache, 100) == ["w"]
    assert choose_evictions(cache, 100, keep={"w"}) == ["x"]
    # everything left is in use: the bound is exceeded rather than breaking a reader
    assert choose_evictions(cache, 0, keep={"w", "x", "y"}) == []
    assert choose_evictions([], 0) == []
