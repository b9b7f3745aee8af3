"""RTSP cameras like Longnan's installed base (camsim profiles: H.265, H.264 with B-frames,
AAC/PCMA/PCMU audio, long GOP) into a real buffer, every segment checked with ffmpeg/ffprobe."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import CameraConfig
from edge_agent.model import SegmentFlag
from tests.integration.test_capture_media import concat_list, counted, ffmpeg_messages, playlist
from tests.integration.test_capture_rtsp import Capture, capture, faults, tiles, timeline
from tests.support import free_port, wait_until
from vigil_camsim.launcher import CamsimProcess

__all__ = ["capture"]  # the fixture, shared with test_capture_rtsp

S = 1_000_000
FRAME_US = 40_000
PROFILES = {
    "h265": ("hevc", None),
    "h265-aac": ("hevc", "aac"),
    "h264-bframes-pcma": ("h264", "pcma"),
    "h264-pcmu": ("h264", "pcmu"),
    "h265-bframes": ("hevc", None),
}


def rtsp(camera_id: str, url: str, seconds: float = 2) -> CameraConfig:
    return CameraConfig(id=camera_id, url=url, segment_seconds=seconds)


def test_each_profile_records_segments_that_decode_alone_and_form_one_stream(
    camsim: Callable[..., CamsimProcess],
    capture: Capture,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = list(PROFILES)
    cams = camsim(cameras=len(names), profiles=names)
    caplog.set_level(logging.WARNING)
    began = time.time_ns() // 1000
    capture.start([rtsp(name, cams.url(n)) for n, name in enumerate(names, start=1)])
    for name in names:
        capture.wait_segments(name, 6, timeout=60)
    capture.manager.stop()  # type: ignore[union-attr]
    capture.manager = None
    ended = time.time_ns() // 1000
    # Start-up: no packet without timestamps reached a muxer, no segment was dropped.
    assert "cannot write a segment file" not in caplog.text
    assert "dropping this segment" not in caplog.text
    for name, (codec, audio) in PROFILES.items():
        segs = capture.segments(name)
        assert tiles(capture, name), timeline(capture, name)
        assert faults(capture, name, "") == [], timeline(capture, name)
        # Nothing lost at connect: the first segment starts at the first keyframe with
        # timestamps (within two GOPs of connecting), and the record runs to the stop.
        assert began <= segs[0].start_us <= began + 3 * S, timeline(capture, name)
        assert ended - 2 * S <= segs[-1].end_us <= ended + S
        assert all(s.flags == SegmentFlag.NONE for s in segs[:-1]), timeline(capture, name)
        for seg in segs:
            path = capture.buffer.path_of(seg)
            assert ffmpeg_messages("-i", str(path)) == "", (name, seg)
            frames = counted(path)
            assert set(frames) == ({codec, "aac"} if audio else {codec}), (name, frames)
            # Under load the emulator may skip a frame, as a starved camera does.
            assert 0 < frames[codec] <= seg.duration_us // FRAME_US + 1, (name, seg, frames)
            if audio:
                rate = 16000 if audio == "aac" else 8000
                assert frames["aac"] >= seg.duration_us / S * rate / 1024 - 4, (name, frames)
        assert capture.buffer.verify_chain(name, check_files=True) == []
        paths = [capture.buffer.path_of(s) for s in segs]
        five = concat_list(paths[:5], tmp_path / f"{name}.txt")
        assert ffmpeg_messages("-f", "concat", "-safe", "0", "-i", str(five)) == "", name
        m3u8 = playlist(paths, [s.duration_us / S for s in segs], tmp_path / f"{name}.m3u8")
        assert ffmpeg_messages("-allowed_extensions", "ALL", "-i", str(m3u8), "-c", "copy") == ""
        assert ffmpeg_messages("-allowed_extensions", "ALL", "-i", str(m3u8)) == "", name
        assert capture.kinds(name) == [], timeline(capture, name)


def test_a_long_gop_camera_is_cut_at_keyframes_and_reported_once(
    camsim: Callable[..., CamsimProcess], capture: Capture
) -> None:
    cams = camsim(cameras=1, profile="h264-bframes", gop_seconds=10.0, loop_seconds=20.0)
    manager = capture.start([rtsp("lg", cams.url(1), seconds=4)])
    capture.wait_segments("lg", 3, timeout=60)
    worker = manager._workers["lg"]  # the writer's measured GOP, as health reads it
    assert worker.writer.gop_s == pytest.approx(10.0, abs=0.05)
    manager.stop()
    capture.manager = None
    segs = capture.segments("lg")
    # The first segment may be short of a whole GOP only by its start; every later one is a
    # whole 10 s GOP: cut at keyframes, never mid-GOP, whatever the 4 s target says.
    assert all(abs(s.duration_us - 10 * S) <= FRAME_US for s in segs[1:-1]), timeline(capture, "lg")
    for seg in segs:
        assert ffmpeg_messages("-i", str(capture.buffer.path_of(seg))) == ""
    assert tiles(capture, "lg"), timeline(capture, "lg")
    assert capture.kinds("lg") == ["long_gop"], timeline(capture, "lg")


def test_a_camera_that_comes_back_with_another_codec_records_on(
    camsim: Callable[..., CamsimProcess], capture: Capture
) -> None:
    port = free_port()
    old = camsim(cameras=1, profile="h264", port=port)
    capture.start([rtsp("sw", old.url(1))])
    capture.wait_segments("sw", 2)
    old.stop()
    wait_until(lambda: "camera_lost" in capture.kinds("sw"), 20, "camera lost")
    back = time.time_ns() // 1000
    camsim(cameras=1, profile="h265-pcma", port=port)
    capture.wait_segments("sw", 2, after_us=back, timeout=60)
    capture.manager.stop()  # type: ignore[union-attr]
    capture.manager = None
    segs = capture.segments("sw")
    codecs = [set(counted(capture.buffer.path_of(s))) for s in segs]
    first_new = next(i for i, c in enumerate(codecs) if "hevc" in c)
    assert all(c == {"h264"} for c in codecs[:first_new])
    assert all(c == {"hevc", "aac"} for c in codecs[first_new:]), codecs
    assert segs[first_new].flags & SegmentFlag.DISCONTINUITY
    assert tiles(capture, "sw"), timeline(capture, "sw")
    assert "codec_changed" in capture.kinds("sw")
    assert "audio_changed" in capture.kinds("sw")
    for seg in segs:
        assert ffmpeg_messages("-i", str(capture.buffer.path_of(seg))) == ""


def test_corrupt_h265_nals_never_stop_capture(
    camsim: Callable[..., CamsimProcess], capture: Capture
) -> None:
    cams = camsim(cameras=2, profile="h265")
    capture.start([rtsp("bad", cams.url(1)), rtsp("calm", cams.url(2))])
    capture.wait_segments("bad", 2)
    hit = time.time_ns() // 1000
    cams.client.corrupt(1, frames=10)
    capture.wait_segments("bad", 3, after_us=hit + 2 * S, timeout=30)
    capture.wait_segments("calm", 3, after_us=hit + 2 * S, timeout=30)
    capture.manager.stop()  # type: ignore[union-attr]
    capture.manager = None
    # The damaged stretch is either remuxed as it came or a recorded gap; time still tiles,
    # every later segment decodes, and the other camera never noticed.
    assert tiles(capture, "bad"), timeline(capture, "bad")
    later = [s for s in capture.segments("bad") if s.start_us >= hit + 2 * S]
    for seg in later:
        assert ffmpeg_messages("-i", str(capture.buffer.path_of(seg))) == "", seg
    assert capture.buffer.verify_chain("bad", check_files=True) == []
    assert faults(capture, "calm", "") == [] and capture.kinds("calm") == []
