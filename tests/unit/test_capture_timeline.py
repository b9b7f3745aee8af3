"""A B-frame camera's timestamps, as FFmpeg's RTSP demuxer hands them over, placed on disk
(pure): frames stay one frame apart in presentation order, so no tool maps two of them onto
one frame number (CI once saw `ffmpeg -f null` say "non monotonically increasing dts ...
25 >= 25" for a segment of the h264-bframes-pcma camera)."""

from __future__ import annotations

from fractions import Fraction

from edge_agent.capture.timeline import VideoTimeline
from edge_agent.capture.wobble import WOBBLE_TICKS, steady_pts

STEP = 3600  # 25 fps at 90 kHz
FRAME_US = 40_000


def bframe_stream(frames: int, wobble: dict[int, int]) -> list[tuple[int, int]]:
    """(pts, dts) in decode order of an I P B B P B B ... stream whose frame n (in
    presentation order) is `wobble[n]` ticks off its cadence. RTP carries only pts: like
    FFmpeg (libavformat's pts buffer, one frame of reordering delay) the dts of each packet is
    the smallest of the last two pts, so a frame's wobble lands on a later packet's dts."""
    order = [0]
    for p in range(3, frames, 3):
        order += [p, p - 2, p - 1]
    pts = [n * STEP + wobble.get(n, 0) for n in order]
    buf = [-STEP, pts[0] - STEP]
    out = []
    for p in pts:
        buf[0] = p
        buf.sort()
        out.append((p, buf[0]))
    return out


def placed(packets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    timeline = VideoTimeline(Fraction(1, 90_000))
    return [timeline.place(p, d, STEP, FRAME_US, 0) for p, d in packets]


def frame_numbers(pts: list[int], start: int) -> list[int]:
    """What `ffmpeg -f null` makes of them (vsync passthrough): each frame's time from the
    file's start in frames, rounded (FFmpeg adds 2^-17 so exact midpoints round one way)."""
    return [int((p - start) / STEP + 0.5 + 2**-17) for p in sorted(pts)]


def test_frames_of_a_wobbling_bframe_camera_are_one_frame_apart_in_presentation_order() -> None:
    wobble = {n: (1 if n % 3 else -1) for n in range(4, 300, 7)}  # a tick off, now and then
    out = placed(bframe_stream(300, wobble))
    dts = [d for _, d in out]
    pts = sorted(p for p, _ in out)
    assert all(b - a == STEP for a, b in zip(dts, dts[1:], strict=False))
    assert all(b - a == STEP for a, b in zip(pts, pts[1:], strict=False)), [
        (a, b) for a, b in zip(pts, pts[1:], strict=False) if b - a != STEP
    ]
    assert all(p >= d for p, d in out)
    # The segment's audio started 7.5 frames before its first video frame, as it did in CI:
    # at that phase a frame a tick early lands on the previous frame's number.
    for lead in (7 * STEP + STEP // 2, 7 * STEP + STEP // 2 - 1, 8 * STEP):
        numbers = frame_numbers(pts, pts[0] - lead)
        assert all(b > a for a, b in zip(numbers, numbers[1:], strict=False)), lead


def test_a_real_change_of_pace_shows_through() -> None:
    out = placed(bframe_stream(30, {n: 900 for n in range(12, 30)}))  # 10 ms later from 12 on
    pts = sorted(p for p, _ in out)
    assert pts[12] - pts[11] == STEP + 900
    assert all(b - a == STEP for a, b in zip(pts[12:], pts[13:], strict=False))


def test_steady_pts_moves_only_a_wobble_and_keeps_pts_at_or_after_dts() -> None:
    assert steady_pts(10_801, 0, STEP) == 10_800
    assert steady_pts(3_599, 0, STEP) == 3_600
    assert steady_pts(5, 0, STEP) == 0
    assert steady_pts(STEP + WOBBLE_TICKS + 1, 0, STEP) == STEP + WOBBLE_TICKS + 1
    assert steady_pts(1_800, 0, STEP) == 1_800  # half a frame: not a wobble
    assert steady_pts(7, 3, 0) == 7  # no known frame interval
