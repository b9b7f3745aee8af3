"""What a segment carries, read from its container header with PyAV (never decoded).

Ingest calls `probe_file` on the staged, hash-verified file before it goes to the store, so
the catalog knows each segment's codecs without a second read of the object. The probe is
bounded (`PROBE_BYTES`, `ANALYZE_US`): MPEG-TS and MP4 name their streams in the first few
packets, and H.264/H.265 parameter sets (size, profile) sit in front of the first keyframe.
Stream probing in FFmpeg would otherwise decode a few pictures to settle the stream's
parameters (12 ms for a 1080p H.265 segment here); `skip_frame=all` tells those probing
decoders to discard every picture, so only headers and parameter sets are parsed (0.5 ms,
the same facts). It never raises: a segment that cannot be probed is still stored, with
empty media fields and the reason in `error` (nothing is lost because a header was odd).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import av

PROBE_BYTES = 256 * 1024
ANALYZE_US = 500_000  # enough packets for a frame rate guess, far less than a segment
UNKNOWN_CODEC = "unknown"  # a stream is there, but this FFmpeg has no decoder to name it


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """One segment's media; empty strings and zeros where a fact is unknown or absent."""

    video_codec: str = ""  # "h264", "hevc", ...
    video_profile: str = ""
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    audio_codec: str = ""  # "aac", "pcm_alaw", "pcm_mulaw", ...; "" when there is no audio
    audio_sample_rate: int = 0
    audio_channels: int = 0
    error: str = ""  # why the probe failed ("" when it worked)
    probe_us: int = 0  # what the probe cost (wall time, microseconds)

    @property
    def ok(self) -> bool:
        return not self.error


def _rate(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return round(float(rate), 3) if rate else 0.0


def _read(path: Path | BinaryIO) -> MediaInfo:
    options = {
        "probesize": str(PROBE_BYTES),
        "analyzeduration": str(ANALYZE_US),
        "skip_frame": "all",  # parse headers only: never decode a picture
    }
    source = str(path) if isinstance(path, Path) else path
    with av.open(source, "r", options=options, timeout=5.0) as container:
        videos = container.streams.video
        audios = container.streams.audio
        if not videos and not audios:
            return MediaInfo(error="no audio or video stream in the container")
        facts: dict[str, object] = {}
        # A stream whose codec this FFmpeg cannot decode has no codec context (random or
        # unusual bytes can look like one): it is named UNKNOWN_CODEC, its facts left empty.
        if videos:
            v = videos[0]
            ctx = v.codec_context
            if ctx is None:
                facts.update(video_codec=UNKNOWN_CODEC)
            else:
                facts.update(
                    video_codec=ctx.name,
                    video_profile=ctx.profile or "",
                    width=ctx.width,
                    height=ctx.height,
                    frame_rate=_rate(v),
                )
        if audios:
            a = audios[0].codec_context
            if a is None:
                facts.update(audio_codec=UNKNOWN_CODEC)
            else:
                facts.update(
                    audio_codec=a.name,
                    audio_sample_rate=a.sample_rate or 0,
                    audio_channels=a.channels or 0,
                )
        return MediaInfo(**facts)  # type: ignore[arg-type]


def _why(exc: Exception) -> str:
    known = (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError)
    text = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
    return text[:300]


def probe_file(path: Path) -> MediaInfo:
    """The media of the segment at `path`; never raises (see the module docstring)."""
    started = time.perf_counter_ns()
    try:
        info = _read(path)
    except Exception as exc:  # any: a probe that raised failed the upload, every retry
        info = MediaInfo(error=f"cannot read the container: {_why(exc)}")
    return replace(info, probe_us=(time.perf_counter_ns() - started) // 1000)


def probe_bytes(head: bytes) -> MediaInfo:
    """The media of a segment from its first bytes (at least PROBE_BYTES of it, or all):
    what ingest probes when it streams a segment to the store and keeps no file."""
    started = time.perf_counter_ns()
    try:
        info = _read(io.BytesIO(head)) if head else MediaInfo(error="no bytes to probe")
    except Exception as exc:  # any: a probe that raised failed the upload, every retry
        info = MediaInfo(error=f"cannot read the container: {_why(exc)}")
    return replace(info, probe_us=(time.perf_counter_ns() - started) // 1000)
