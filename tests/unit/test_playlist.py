"""HLS playlists: only granted footage, gaps shown as discontinuities, live sliding window."""

from __future__ import annotations

import pytest

from controller.playback.playlist import (
    NoFootageError,
    SegmentRef,
    build_live_playlist,
    build_vod_playlist,
    discontinuities,
    select_segments,
)

S = 1_000_000
T0 = 1_767_225_600 * S


def run(n: int, start: int = T0, dur: int = 10 * S, prefix: str = "s") -> list[SegmentRef]:
    return [SegmentRef(f"{prefix}{i}", start + i * dur, start + (i + 1) * dur) for i in range(n)]


def url(seg_id: str) -> str:
    return f"/play/seg/{seg_id}.ts?sig"


def lines(text: str) -> list[str]:
    assert text.endswith("\n")
    return text.splitlines()


def test_selection_keeps_overlapping_segments_wholly_inside_the_grant_window() -> None:
    segs = run(10)  # [T0, T0+100 s)
    picked = select_segments(segs, T0 + 15 * S, T0 + 45 * S, T0, T0 + 100 * S)
    assert [s.segment_id for s in picked] == ["s1", "s2", "s3", "s4"]
    # The grant window cuts s1 (starts at 10 s) and s4 (ends at 50 s) in half: left out.
    picked = select_segments(segs, T0, T0 + 100 * S, T0 + 15 * S, T0 + 45 * S)
    assert [s.segment_id for s in picked] == ["s2", "s3"]


def test_selection_sorts_dedupes_and_drops_empty_segments() -> None:
    segs = run(3)
    shuffled = [segs[2], segs[0], segs[1], segs[0], SegmentRef("z", T0, T0)]
    picked = select_segments(shuffled, T0, T0 + 30 * S, T0, T0 + 30 * S)
    assert [s.segment_id for s in picked] == ["s0", "s1", "s2"]


def test_vod_playlist_structure() -> None:
    text = build_vod_playlist(run(3), url)
    out = lines(text)
    assert out[:4] == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:10",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in out and out[-1] == "#EXT-X-ENDLIST"
    assert out.count("#EXTINF:10.000,") == 3
    assert out[out.index("#EXTINF:10.000,") + 1] == "/play/seg/s0.ts?sig"
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000+00:00" in out
    assert "#EXT-X-DISCONTINUITY" not in out


def test_a_gap_is_a_discontinuity_never_silently_joined() -> None:
    before = run(2)
    after = run(2, start=T0 + 60 * S, prefix="t")  # 40 s missing
    out = lines(build_vod_playlist(before + after, url))
    i = out.index("#EXT-X-DISCONTINUITY")
    assert out[i + 1] == "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:01:00.000+00:00"
    assert out[i + 3] == "/play/seg/t0.ts?sig"
    assert out.count("#EXT-X-DISCONTINUITY") == 1


def test_small_jitter_is_not_a_gap_but_flags_and_overlaps_are() -> None:
    segs = [
        SegmentRef("a", T0, T0 + 10 * S),
        SegmentRef("b", T0 + 10 * S + 40_000, T0 + 20 * S),  # one frame late: fine
        SegmentRef("c", T0 + 20 * S, T0 + 30 * S, flag="chain_break"),
        SegmentRef("d", T0 + 25 * S, T0 + 35 * S),  # overlaps c
    ]
    assert discontinuities(segs) == [False, False, True, True]


def test_event_playlist_while_the_range_is_still_being_recorded() -> None:
    out = lines(build_vod_playlist(run(2), url, complete=False))
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in out and "#EXT-X-ENDLIST" not in out


def test_target_duration_covers_the_longest_segment() -> None:
    segs = [SegmentRef("a", T0, T0 + 10_400_000), SegmentRef("b", T0 + 10_400_000, T0 + 12 * S)]
    out = lines(build_vod_playlist(segs, url))
    assert "#EXT-X-TARGETDURATION:11" in out
    assert "#EXTINF:10.400," in out and "#EXTINF:1.600," in out


def test_no_footage_is_an_error_not_an_empty_playlist() -> None:
    with pytest.raises(NoFootageError):
        build_vod_playlist([], url)
    with pytest.raises(NoFootageError):
        build_live_playlist([], url, first_sequence=0)


def test_live_playlist_slides_with_stable_numbering() -> None:
    segs = run(10)
    first = lines(build_live_playlist(segs[:8], url, first_sequence=100, window=6))
    second = lines(build_live_playlist(segs[1:9], url, first_sequence=101, window=6))
    assert "#EXT-X-MEDIA-SEQUENCE:102" in first and "#EXT-X-MEDIA-SEQUENCE:103" in second
    assert "#EXT-X-ENDLIST" not in first and "#EXT-X-PLAYLIST-TYPE:VOD" not in first
    assert [ln for ln in first if ln.startswith("/play")][0] == "/play/seg/s2.ts?sig"
    assert sum(ln.startswith("/play") for ln in first) == 6


def test_live_discontinuity_sequence_counts_gaps_that_slid_out() -> None:
    segs = run(3) + run(6, start=T0 + 100 * S, prefix="t")  # gap before t0
    out = lines(
        build_live_playlist(segs, url, first_sequence=0, discontinuity_sequence=2, window=5)
    )
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in out  # the gap before t0 slid out
    assert "#EXT-X-DISCONTINUITY" not in out
    with pytest.raises(ValueError):
        build_live_playlist(segs, url, first_sequence=-1)
