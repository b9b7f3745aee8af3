"""Pure parts of the sources: SPS spotting, recording start times, folder readiness, rates."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from av.packet import Packet

from edge_agent.capture.status import rates
from edge_agent.capture.writer import clean_reason
from edge_agent.sources.errors import UnsupportedStreamError
from edge_agent.sources.folder import Seen, observe, ready
from edge_agent.sources.h264 import find_sps
from edge_agent.sources.recording import (
    FileFacts,
    looks_truncated,
    metadata_time_us,
    name_time_us,
    recording_start_us,
)
from edge_agent.sources.rtsp import _stamp_back, check_rtsp_url

T = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SPS = b"\x67\x42\xc0\x15\xda\x05\x06"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33"
AUD = b"\x09\x10"


def test_find_sps_in_annexb_with_4_and_3_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01" + AUD + b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS
    data += b"\x00\x00\x01" + IDR
    assert find_sps(data) == SPS


def test_find_sps_in_length_prefixed_payload() -> None:
    data = b"".join(len(n).to_bytes(4, "big") + n for n in (AUD, SPS, PPS, IDR))
    assert find_sps(data) == SPS


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x00\x01" + IDR, b"\xff" * 64, (5).to_bytes(4, "big") + IDR],
)
def test_find_sps_absent_or_garbage_is_none(data: bytes) -> None:
    assert find_sps(data) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ch01_20260101T000000Z.mp4", T),
        ("2026-01-01_00-00-00.ts", T),
        ("rec 2026-01-01 00:00:00.mkv", T),
        ("20260101000010.ts", T + 10_000_000),
        ("1767225600.ts", T),
        ("1767225600500.ts", T + 500_000),
        ("clip.mp4", None),
        ("20261399000000.ts", None),  # month 13: digits, not a date
    ],
)
def test_name_time(name: str, expected: int | None) -> None:
    assert name_time_us(name) == expected


def test_name_time_in_a_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    assert name_time_us("ch01_20260101T080000.mp4", shanghai) == T  # 08:00 Beijing = 00:00 UTC
    assert name_time_us("2026-01-01 08-00-00.ts", shanghai) == T
    assert name_time_us("ch01_20260101T000000Z.mp4", shanghai) == T  # "Z" says UTC itself
    assert name_time_us("1767225600.ts", shanghai) == T  # an epoch is UTC by definition
    assert name_time_us("clip.mp4", shanghai) is None
    assert recording_start_us("x_20260101T080000.ts", None, 5, 1, shanghai) == T


def test_metadata_time() -> None:
    assert metadata_time_us("2026-01-01T00:00:00.000000Z") == T
    assert metadata_time_us("1970-01-01T00:00:00Z") is None
    assert metadata_time_us("yesterday") is None
    assert metadata_time_us(None) is None


def test_recording_start_prefers_name_then_metadata_then_mtime() -> None:
    assert recording_start_us("x_20260101T000000.ts", "2030-01-01T00:00:00Z", 5, 1) == T
    assert recording_start_us("clip.mp4", "2026-01-01T00:00:00Z", 5, 1) == T
    assert recording_start_us("clip.mp4", None, T + 60_000_000, 60_000_000) == T
    assert recording_start_us("clip.mp4", None, T, None) == T


def test_truncated_ts_is_not_whole_packets() -> None:
    assert looks_truncated(".ts", 188 * 10 + 7)
    assert not looks_truncated(".ts", 188 * 10)
    assert not looks_truncated(".mp4", 1001)


def test_observe_keeps_since_while_unchanged_and_resets_on_growth() -> None:
    seen = observe({}, {"a.ts": FileFacts(100, 1)}, now=10.0)
    seen = observe(seen, {"a.ts": FileFacts(100, 1)}, now=12.0)
    assert seen["a.ts"].since == 10.0
    seen = observe(seen, {"a.ts": FileFacts(200, 2)}, now=13.0)
    assert seen["a.ts"] == Seen(200, 2, 13.0)
    assert observe(seen, {}, now=14.0) == {}  # a vanished file is forgotten


def test_ready_waits_for_settle_and_skips_handled_files() -> None:
    seen = {
        "old.ts": Seen(10, 5, 0.0),
        "new.ts": Seen(10, 9, 9.5),
        "done.ts": Seen(10, 1, 0.0),
        "changed.ts": Seen(20, 3, 0.0),
    }
    handled = {"done.ts": FileFacts(10, 1), "changed.ts": FileFacts(10, 2)}
    # oldest mtime first; the still-settling file and the unchanged handled one are left out
    assert ready(seen, handled, settle_s=2.0, now=10.0) == ["changed.ts", "old.ts"]
    assert ready(seen, handled, settle_s=0.0, now=10.0) == ["changed.ts", "old.ts", "new.ts"]


def test_rates() -> None:
    assert rates(125, 2_500_000, 5.0) == (25.0, 4_000_000)
    assert rates(0, 0, 0.0) == (0.0, 0)


def test_check_rtsp_url_refuses_other_schemes_without_leaking_credentials() -> None:
    check_rtsp_url("c1", "rtsp://u:p@h/x")
    with pytest.raises(UnsupportedStreamError, match="camera c1") as err:
        check_rtsp_url("c1", "http://admin:hunter2@h/x")
    assert "hunter2" not in str(err.value)


def test_clean_reason_is_printable_short_and_scrubbed() -> None:
    reason = clean_reason("lost rtsp://a:secret@h/x\n" + "x" * 500)
    assert "secret" not in reason and "\n" not in reason and len(reason) == 200
    assert clean_reason("\x00") == "unknown"


def _packet(pts: int | None, dts: int | None, duration: int = 3600) -> Packet:
    p = Packet(b"\x00\x00\x00\x01\x65")
    p.pts, p.dts, p.duration = pts, dts, duration
    return p


def test_untimed_first_packets_are_stamped_back_only_without_frame_reordering() -> None:
    # No B-frames (pts == dts): the untimed keyframe is the frame just before.
    held = [_packet(None, None)]
    stamped = _stamp_back(held, _packet(7200, 7200))
    assert [(p.pts, p.dts) for p in stamped] == [(3600, 3600)]
    # B-frames, as FFmpeg hands them out: the keyframe untimed, the next P with a pts only,
    # then a B with both. The keyframe is shown just before that B; the P keeps its pts.
    held = [_packet(None, None), _packet(10800, None)]
    stamped = _stamp_back(held, _packet(3600, 3600))
    assert [(p.pts, p.dts) for p in stamped] == [(0, -3600), (10800, 0)]
    # Not enough seen to know where the keyframe is shown (a B-frame shown before the P may
    # still come): a guess could put a frame out of order or a pts before its dts and fail
    # the muxer (the 2 s lost at connect), so they are dropped instead.
    assert _stamp_back([_packet(None, None)], _packet(10800, 3600)) == []
    assert _stamp_back([_packet(None, None), _packet(None, None)], _packet(10800, 3600)) == []
    two = _stamp_back([_packet(None, None), _packet(None, None)], _packet(7200, 7200))
    assert [(p.pts, p.dts) for p in two] == [(0, 0), (3600, 3600)]
    assert _stamp_back([_packet(None, None)], _packet(10800, None)) == []
    assert _stamp_back([_packet(None, None)], _packet(7200, 7200, duration=0)) == []
