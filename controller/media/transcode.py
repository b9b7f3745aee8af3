"""The H.264 rendition of one segment: PyAV decodes the video and libx264 re-encodes it, the
audio is copied as it is, the output is MPEG-TS.

What makes the rendition interchangeable with the original inside a playlist:
- every keyframe of the source becomes an IDR in the output and there are no others
  (`scenecut=0`, an endless GOP), so a segment starts with a keyframe and the playlist's
  boundaries and durations stay those of the originals;
- timestamps are the source's own (90 kHz, `mpegts_copyts`), so consecutive renditions, or a
  rendition next to an original H.264 segment, continue each other;
- no B-frames (ultrafast/superfast have none; other presets are told `bf=0`), so DTS = PTS.

It raises `TranscodeError` with a sentence for anything it cannot convert (no video, a corrupt
stream that yields no picture): the caller answers that request with an error and carries on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType, VideoFrame

COPY_AUDIO = frozenset({"aac", "mp3", "mp2", "ac3"})  # what MPEG-TS carries and players take
PRESETS = ("ultrafast", "superfast", "veryfast")
TS_TIME_BASE = Fraction(1, 90000)


class TranscodeError(Exception):
    """The segment cannot be converted; the message says why."""


@dataclass(frozen=True, slots=True)
class TranscodeStats:
    frames: int
    keyframes: int
    audio_packets: int
    source_codec: str
    cpu_ms: float  # CPU time of the calling thread (libx264 runs with threads=1)
    wall_ms: float
    bytes_out: int


def _x264_options(preset: str) -> dict[str, str]:
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    return {
        "preset": preset,
        "bf": "0",
        "g": "100000",  # keyframes come only from the source's (forced below)
        "sc_threshold": "0",
        "threads": "1",  # one core per conversion: the concurrency bound is then in cores
        "x264-params": "scenecut=0:open-gop=0",
    }


def transcode_h264(src: Path, dst: Path, preset: str = "ultrafast") -> TranscodeStats:
    """Write the H.264 rendition of the segment `src` to `dst` (MPEG-TS)."""
    options = _x264_options(preset)
    started_cpu, started_wall = time.thread_time(), time.perf_counter()
    try:
        stats = _convert(src, dst, options)
    except (av.error.FFmpegError, RuntimeError, ValueError) as exc:
        dst.unlink(missing_ok=True)
        raise TranscodeError(f"the video cannot be converted: {str(exc)[:300]}") from exc
    except TranscodeError:
        dst.unlink(missing_ok=True)
        raise
    return TranscodeStats(
        frames=stats[0],
        keyframes=stats[1],
        audio_packets=stats[2],
        source_codec=stats[3],
        cpu_ms=(time.thread_time() - started_cpu) * 1000,
        wall_ms=(time.perf_counter() - started_wall) * 1000,
        bytes_out=dst.stat().st_size,
    )


def _convert(src: Path, dst: Path, options: dict[str, str]) -> tuple[int, int, int, str]:
    with av.open(str(src), "r", timeout=10.0) as source:
        if not source.streams.video:
            raise TranscodeError("the segment has no video stream")
        vin = source.streams.video[0]
        ain = source.streams.audio[0] if source.streams.audio else None
        codec = vin.codec_context.name
        vin.thread_count = 1  # one core per conversion (see `_x264_options`)
        with av.open(str(dst), "w", format="mpegts", options={"mpegts_copyts": "1"}) as out:
            vout = out.add_stream("libx264", rate=vin.average_rate or vin.guessed_rate or 25)
            vout.options = dict[str, object](options)
            vout.pix_fmt = "yuv420p"
            vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
            if not vout.width or not vout.height:
                raise TranscodeError(f"the {codec} video has no picture size (corrupt header)")
            vout.time_base = TS_TIME_BASE
            vout.codec_context.time_base = vin.time_base or TS_TIME_BASE
            aout = None
            if ain is not None and ain.codec_context.name in COPY_AUDIO:
                aout = out.add_stream_from_template(ain)
            frames = keyframes = audio = 0
            streams = [vin] if aout is None else [vin, ain]
            for packet in source.demux(streams):
                if packet.stream is vin:
                    for frame in packet.decode():
                        if not isinstance(frame, VideoFrame):
                            continue
                        if (frame.width, frame.height) != (vout.width, vout.height):
                            frame = frame.reformat(vout.width, vout.height)
                        key = bool(frame.key_frame)
                        frame.pict_type = PictureType.I if key else PictureType.NONE
                        keyframes += key
                        frames += 1
                        if frame.format.name != "yuv420p":
                            frame = frame.reformat(format="yuv420p")
                        out.mux(vout.encode(frame))
                elif aout is not None and packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
                    audio += 1
            if frames == 0:
                raise TranscodeError(f"no picture could be decoded from the {codec} video")
            out.mux(vout.encode(None))
    return frames, keyframes, audio, codec
