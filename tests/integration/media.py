"""Test media made with PyAV/libx264 on the spot: small H.264 recordings, other codecs, damage.

Small (320x180, 25 fps) and short, so a test encodes them in well under a second. Frames are
flat colours that change each frame (cheap to encode, yet every frame differs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0", "sc_threshold": "0"}


@dataclass(frozen=True)
class Clip:
    """One run of frames: size, count, timestamps start (in frames) and codec."""

    frames: int
    width: int = 320
    height: int = 180
    fps: int = 25
    gop: int = 25
    first_pts: int = 0  # in frames; a later clip with a smaller value makes a backward jump


def _frame(i: int, width: int, height: int) -> VideoFrame:
    frame = VideoFrame(width, height, "yuv420p")
    for k, plane in enumerate(frame.planes):
        plane.update(bytes([(i * 7 + k * 60) % 256]) * plane.buffer_size)
    return frame


def write_h264(path: Path, clips: list[Clip]) -> Path:
    """Write an H.264 recording. Several clips go into an MPEG-TS file one after another, each
    a separately muxed TS byte stream (as when an encoder restarts): a new SPS when the size
    changes, and timestamps that jump wherever `first_pts` says."""
    if len(clips) > 1 and path.suffix != ".ts":
        raise ValueError("several clips only make sense in MPEG-TS")
    parts = []
    for n, clip in enumerate(clips):
        part = path.with_name(f".{path.name}.{n}") if len(clips) > 1 else path
        _encode(part, clip, "mpegts" if path.suffix == ".ts" else None)
        parts.append(part)
    if len(clips) > 1:
        with open(path, "wb") as out:
            for part in parts:
                out.write(part.read_bytes())
                part.unlink()
    return path


def _encode(path: Path, clip: Clip, fmt: str | None) -> None:
    out = av.open(str(path), "w", format=fmt)
    stream = out.add_stream("libx264", rate=clip.fps)
    stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
    stream.options = {**X264_OPTIONS, "g": str(clip.gop), "keyint_min": str(clip.gop)}
    for i in range(clip.frames):
        frame = _frame(i, clip.width, clip.height)
        frame.pts = clip.first_pts + i
        frame.time_base = Fraction(1, clip.fps)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


def write_other_codec(path: Path, codec: str, frames: int = 50) -> Path:
    """A video that is not H.264 (e.g. "mpeg4" = MPEG-4 Part 2, "mjpeg")."""
    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=25)
    assert isinstance(stream, VideoStream)
    stream.width, stream.height = 320, 180
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    for i in range(frames):
        frame = _frame(i, 320, 180).reformat(format=stream.pix_fmt)
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return path


def write_garbage(path: Path, size: int = 50_000) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    """A copy of `src` cut off after `fraction` of its bytes (not on a packet boundary)."""
    data = src.read_bytes()
    cut = int(len(data) * fraction)
    if cut % 188 == 0:
        cut -= 7
    dst.write_bytes(data[:cut])
    return dst


def set_mtime(path: Path, seconds_ago: float) -> None:
    """Make a file look finished long ago (so `settle_seconds` does not hold a test up)."""
    stat = path.stat()
    when = stat.st_mtime - seconds_ago
    os.utime(path, (when, when))


def probe(path: Path) -> dict[str, object]:
    """Facts of a segment file: first packet a keyframe?, frames decoded, size, codec."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        first_key = None
        for packet in c.demux(stream):
            if packet.size:
                first_key = bool(packet.is_keyframe)
                break
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        codec = stream.codec_context.name
        sizes = {(f.width, f.height) for f in frames}
    return {"first_key": first_key, "frames": len(frames), "codec": codec, "sizes": sizes}
