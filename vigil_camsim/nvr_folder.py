"""Emulated NVR recording folder: one channel's footage as finished files named in LOCAL time.

Chinese NVRs (and their exports) name recordings by start (and end) time in the recorder's
local time, Beijing time for Longnan, with no zone in the name. The agent must read such names
in the source's configured zone or footage lands 8 h off; this emulator produces the files.

Name styles (all sort by time, all in `tz`, default Asia/Shanghai; a file is 1 s-exact):

    range    ch01_20261203_143000_20261203_143500.mp4   channel, start date_time, end date_time
    hik      ch01_20261203143000_20261203143500.mp4     channel, start, end (Hikvision export)
    compact  20261203143000.ts                          start only (one folder per channel)

With `layout="dated"` files go into a local-date folder (`2026-12-03/...`) as NVRs nest them.
A file covers [start, start + clip_seconds) and is written (hidden temp name, fsync, rename)
when that span has ended, as a recorder finishes a file. With `start` set, `count` files are
written back to back at once (footage from the past: a backfill), else one per clip as time
passes. Names are pure functions (`nvr_name`), unit tested; writing is `NvrFolderEmulator`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import av
from av.audio.stream import AudioStream
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from edge_agent.clock import Clock
from vigil_camsim import profiles
from vigil_camsim.handheld import ClipPainter, frame_count, temp_name

NameStyle = Literal["range", "hik", "compact"]
Layout = Literal["flat", "dated"]
STYLES: tuple[NameStyle, ...] = ("range", "hik", "compact")
DEFAULT_TZ = "Asia/Shanghai"
_CONTAINER = {"mp4": "mp4", "ts": "mpegts"}
_ENCODER = {"h264": "libx264", "h265": "libx265"}


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like {DEFAULT_TZ})"
        ) from exc


def nvr_name(style: NameStyle, channel: int, start: datetime, end: datetime, ext: str) -> str:
    """The file name an NVR gives footage from `start` to `end` (aware datetimes, already in
    the recorder's zone: the name shows wall-clock digits with no zone)."""
    ch = f"ch{channel:02d}"
    if style == "range":
        a, b = start.strftime("%Y%m%d_%H%M%S"), end.strftime("%Y%m%d_%H%M%S")
        return f"{ch}_{a}_{b}.{ext}"
    if style == "hik":
        return f"{ch}_{start:%Y%m%d%H%M%S}_{end:%Y%m%d%H%M%S}.{ext}"
    if style == "compact":
        return f"{start:%Y%m%d%H%M%S}.{ext}"
    raise ValueError(f"unknown name style {style!r}; use one of {', '.join(STYLES)}")


def relative_path(layout: Layout, name: str, start: datetime) -> str:
    return name if layout == "flat" else f"{start:%Y-%m-%d}/{name}"


def parse_local(text: str, tz: ZoneInfo) -> int:
    """UTC microseconds of `YYYY-mm-ddTHH:MM:SS` read as wall-clock time in `tz`."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"start must look like 2026-12-03T14:30:00, got {text!r}") from exc
    if naive.tzinfo is not None:
        raise ValueError("start is local wall-clock time: give it without a zone (see --tz)")
    return int(naive.replace(tzinfo=tz).timestamp()) * 1_000_000


def span(start_us: int, clip_seconds: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A file's start and end as wall-clock times in `tz`."""
    start = datetime.fromtimestamp(start_us // 1_000_000, tz=UTC).astimezone(tz)
    return start, start + timedelta(seconds=clip_seconds)


@dataclass(frozen=True)
class NvrConfig:
    folder: Path
    channel: int = 1
    tz: str = DEFAULT_TZ
    style: NameStyle = "range"
    layout: Layout = "flat"
    fmt: Literal["mp4", "ts"] = "mp4"
    profile: str = "h264"  # a video profile of profiles.py, optionally with -aac
    clip_seconds: int = 10
    width: int = 320
    height: int = 180
    fps: int = 25
    bitrate_kbps: int = 500
    gop_seconds: float = 1.0

    def validated(self) -> NvrConfig:
        zone(self.tz)
        prof = profiles.parse_profile(self.profile)
        if prof.codec not in _ENCODER:
            raise ValueError(f"NVR files from this emulator are H.264 or H.265, not {prof.name}")
        if prof.audio not in (None, "aac"):
            raise ValueError(
                f"{self.fmt} files from this emulator carry AAC audio only, not {prof.audio}"
            )
        if self.style not in STYLES:
            raise ValueError(f"unknown name style {self.style!r}; use one of {', '.join(STYLES)}")
        if self.layout not in ("flat", "dated"):
            raise ValueError("layout must be flat or dated")
        if self.fmt not in _CONTAINER:
            raise ValueError("format must be mp4 or ts")
        if not 1 <= self.channel <= 999:
            raise ValueError("channel must be in 1..999")
        if not 1 <= self.clip_seconds <= 3600:
            raise ValueError("clip seconds must be a whole number in 1..3600")
        if not (16 <= self.width <= 3840 and 16 <= self.height <= 2160):
            raise ValueError("resolution out of range")
        if self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even")
        if not 1 <= self.fps <= 60:
            raise ValueError("fps must be in 1..60")
        if not 0 < self.gop_seconds <= 10:
            raise ValueError("gop seconds must be in (0, 10]")
        return self


def _video_options(prof: profiles.Profile, gop: int) -> dict[str, object]:
    if prof.codec == "h265":
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={prof.bframes}:log-level=none"
        return {"preset": "ultrafast", "x265-params": params}
    options: dict[str, object] = {
        "preset": "superfast",
        "g": str(gop),
        "bf": str(prof.bframes),
        "sc_threshold": "0",
    }
    if prof.bframes:
        options["profile"] = "high"
    return options


def encode_recording(path: Path, config: NvrConfig, start_us: int, label: str) -> None:
    """Encode one recording (video in the profile's codec, AAC beeps if it has audio)."""
    prof = profiles.parse_profile(config.profile)
    tz = zone(config.tz)
    n = frame_count(config.clip_seconds, config.fps)
    gop = max(1, round(config.gop_seconds * config.fps))
    painter = ClipPainter(config.width, config.height, label)
    with av.open(str(path), mode="w", format=_CONTAINER[config.fmt]) as container:
        container.metadata["title"] = label
        stream = cast(VideoStream, container.add_stream(_ENCODER[prof.codec], rate=config.fps))
        stream.width, stream.height = config.width, config.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = config.bitrate_kbps * 1000
        stream.options = _video_options(prof, gop)
        stream.codec_context.time_base = Fraction(1, config.fps)
        audio = None
        if prof.audio is not None:
            audio = container.add_stream("aac", rate=profiles.AUDIO["aac"].rate)
            audio.layout = "mono"
        sound = _AudioFeed(audio, config.clip_seconds) if audio is not None else None
        for i in range(n):
            frame = av.VideoFrame(config.width, config.height, "yuv420p")
            capture_us = start_us + i * 1_000_000 // config.fps
            painter.paint(frame, i, capture_us, tz)
            frame.pts = i
            frame.time_base = Fraction(1, config.fps)
            container.mux(stream.encode(frame))
            if sound is not None:  # interleaved by time, as a recorder writes them
                container.mux(sound.until(Fraction(i + 1, config.fps)))
        container.mux(stream.encode(None))
        if sound is not None:
            container.mux(sound.until(Fraction(config.clip_seconds)) + sound.flush())


class _AudioFeed:
    """The recording's AAC beeps, encoded a chunk at a time as the video advances."""

    def __init__(self, stream: AudioStream, seconds: int) -> None:
        self.stream = stream
        self.rate = profiles.AUDIO["aac"].rate
        self.total = self.rate * seconds
        self.pcm = profiles.beep_pcm(self.rate, seconds)
        self.done = 0

    def until(self, t: Fraction) -> list[Packet[Stream]]:
        packets: list[Packet[Stream]] = []
        end = min(self.total, math.floor(t * self.rate))
        while self.done < end:
            n = min(1024, self.total - self.done)
            frame = av.AudioFrame(format="s16", layout="mono", samples=n)
            frame.planes[0].update(self.pcm[2 * self.done : 2 * (self.done + n)])
            frame.sample_rate = self.rate
            frame.pts = self.done
            frame.time_base = Fraction(1, self.rate)
            packets += self.stream.encode(frame)
            self.done += n
        return packets

    def flush(self) -> list[Packet[Stream]]:
        return list(self.stream.encode(None))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NvrFolderEmulator:
    """Writes one channel's recordings into `config.folder`, each atomically."""

    def __init__(self, config: NvrConfig, clock: Clock) -> None:
        self.config = config.validated()
        self.clock = clock
        self.tz = zone(config.tz)
        self.written = 0

    def write_file(self, start_us: int) -> Path:
        """Write the recording that starts at `start_us` (UTC) and return its final path."""
        cfg = self.config
        start, end = span(start_us, cfg.clip_seconds, self.tz)
        name = nvr_name(cfg.style, cfg.channel, start, end, cfg.fmt)
        final = cfg.folder / relative_path(cfg.layout, name, start)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(temp_name(name))
        try:
            encode_recording(tmp, cfg, start_us, f"CH{cfg.channel:02d} NVR")
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.written += 1
        return final

    def backfill(self, start_us: int, count: int) -> list[Path]:
        """`count` consecutive recordings from `start_us`, written now."""
        step = self.config.clip_seconds * 1_000_000
        return [self.write_file(start_us + k * step) for k in range(count)]

    def run(
        self,
        stop: threading.Event,
        count: int | None = None,
        on_file: Callable[[Path], object] | None = None,
    ) -> list[Path]:
        """Live: a file for each clip span as it ends (the first span ends on the next whole
        second), until `stop` or `count` files."""
        clip = self.config.clip_seconds
        first_end = math.ceil(self.clock.now_us() / 1_000_000)
        mono0 = self.clock.monotonic() + (first_end - self.clock.now_us() / 1_000_000)
        written: list[Path] = []
        k = 0
        while not stop.is_set() and (count is None or len(written) < count):
            stop.wait(max(0.0, mono0 + k * clip - self.clock.monotonic()))
            if stop.is_set():
                break
            start_us = (first_end + k * clip - clip) * 1_000_000
            written.append(self.write_file(start_us))
            if on_file is not None:
                on_file(written[-1])
            k += 1
        return written
