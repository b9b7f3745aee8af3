"""The stream-parameter bytes of an MPEG-TS head (media/ts_params.py) and the probe memo
built on them (ingest/caches.py): equal bytes mean equal probe facts, any change or any head
they cannot be read from goes to the real probe."""

from __future__ import annotations

import io
import os
from dataclasses import replace

import av
import numpy as np

from controller.ingest.caches import ProbeMemo
from controller.media.probe import PROBE_BYTES, MediaInfo, probe_bytes
from controller.media.ts_params import stream_params


def segment(
    codec: str = "libx264",
    width: int = 320,
    height: int = 180,
    audio_rate: int = 0,
    shade: int = 0,
    frames: int = 12,
) -> bytes:
    """A short MPEG-TS recording: flat frames (cheap to encode), AAC if `audio_rate`."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        video = out.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = (
            {"preset": "ultrafast"}
            if codec == "libx264"
            else {"preset": "ultrafast", "x265-params": "log-level=none"}
        )
        audio = out.add_stream("aac", rate=audio_rate) if audio_rate else None
        if audio is not None:
            audio.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for k, plane in enumerate(frame.planes):
                plane.update(bytes([(shade + i * 7 + k * 60) % 256]) * plane.buffer_size)
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
            if audio is not None:
                samples = audio_rate // 25
                sound = av.AudioFrame.from_ndarray(
                    np.zeros((1, samples), dtype=np.float32), format="fltp", layout="mono"
                )
                sound.sample_rate, sound.pts = audio_rate, i * samples
                for packet in audio.encode(sound):
                    out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            for packet in audio.encode():
                out.mux(packet)
    return buf.getvalue()[:PROBE_BYTES]


def test_same_encoder_settings_give_the_same_bytes_whatever_the_pictures() -> None:
    a, b = segment(shade=0), segment(shade=100)
    assert a != b
    assert stream_params(a) is not None
    assert stream_params(a) == stream_params(b)
    assert replace(probe_bytes(a), probe_us=0) == replace(probe_bytes(b), probe_us=0)


def test_what_the_probe_reports_changes_the_bytes() -> None:
    base = stream_params(segment(audio_rate=8000))
    assert base is not None
    others = [
        segment(width=640, height=360, audio_rate=8000),  # picture size (SPS)
        segment(audio_rate=16000),  # sample rate (ADTS header)
        segment(),  # no audio (program map)
        segment(codec="libx265", audio_rate=8000),  # codec (program map, VPS/SPS/PPS)
    ]
    found = [stream_params(o) for o in others]
    assert all(f is not None for f in found)
    assert len({base, *found}) == 1 + len(others)


def test_heads_it_cannot_fully_read_give_none() -> None:
    good = segment()
    assert stream_params(os.urandom(PROBE_BYTES)) is None
    assert stream_params(b"") is None
    assert stream_params(good[: 188 * 2]) is None  # program tables only, no picture yet
    assert stream_params(b"\x00" + good[1:]) is None  # not a TS packet at the start
    damaged = bytearray(good)
    damaged[188 * 5] = 0x00  # a lost sync byte later on
    assert stream_params(bytes(damaged)) is None


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, head: bytes) -> MediaInfo:
        self.calls += 1
        return probe_bytes(head)


def test_the_memo_probes_once_per_camera_and_change_and_every_nth_segment() -> None:
    probe = Counting()
    memo = ProbeMemo(probe, reprobe_every=3)
    first, second = segment(shade=0), segment(shade=50)
    facts = replace(probe_bytes(second), probe_us=0)
    assert replace(memo("cam-a", first), probe_us=0) == facts
    assert replace(memo("cam-a", second), probe_us=0) == facts
    assert probe.calls == 1
    memo("cam-b", second)  # another camera: its own probe
    assert probe.calls == 2
    memo("cam-a", second)  # third segment of cam-a from its probe
    assert probe.calls == 2
    memo("cam-a", second)  # the fourth is probed again (reprobe_every=3)
    assert probe.calls == 3
    bigger = segment(width=640, height=360)
    assert memo("cam-a", bigger).width == 640  # changed parameters: probed
    assert probe.calls == 4


def test_the_memo_keeps_no_failed_probe_and_probes_unreadable_heads() -> None:
    failing = MediaInfo(error="cannot read the container: boom")
    calls: list[bytes] = []

    def broken(head: bytes) -> MediaInfo:
        calls.append(head)
        return failing

    memo = ProbeMemo(broken)
    head = segment()
    assert memo("cam-a", head) == failing
    assert memo("cam-a", head) == failing
    assert len(calls) == 2
    probe = Counting()
    memo = ProbeMemo(probe)
    noise = os.urandom(PROBE_BYTES)
    memo("cam-a", noise)
    memo("cam-a", noise)
    assert probe.calls == 2
