"""Emulated handheld terminal: writes short labelled H.264 clips into a drop folder.

A real handheld syncs recordings into a folder the agent watches. Clips are written under a
hidden temporary name and renamed into place only when complete and fsynced, so a consumer
never sees half a clip. For bad-input tests the emulator can also drop clips that are
truncated or garbage under a normal name.

Clip names sort by time: `<device>_<YYYYmmddTHHMMSS>Z_<seq>.mp4|ts` (UTC, from the clock).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av

from edge_agent.clock import Clock
from vigil_camsim import font

ClipFormat = Literal["mp4", "ts"]
Corruption = Literal["truncated", "garbage"]
_CONTAINER = {"mp4": "mp4", "ts": "mpegts"}
TEMP_PREFIX = "."
TEMP_SUFFIX = ".part"


@dataclass(frozen=True)
class HandheldConfig:
    drop_dir: Path
    device_id: str = "HH01"
    fmt: ClipFormat = "mp4"
    clip_seconds: float = 2.0
    interval_seconds: float = 5.0
    width: int = 640
    height: int = 360
    fps: int = 25
    bitrate_kbps: int = 1000
    gop_seconds: float = 1.0
    corrupt_every: int = 0  # every Nth clip is corrupt (0: never)

    def validated(self) -> HandheldConfig:
        if self.fmt not in _CONTAINER:
            raise ValueError("format must be mp4 or ts")
        if not (16 <= self.width <= 3840 and 16 <= self.height <= 2160):
            raise ValueError("resolution out of range")
        if self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even")
        if not 1 <= self.fps <= 60:
            raise ValueError("fps must be in 1..60")
        if not 0 < self.clip_seconds <= 600:
            raise ValueError("clip seconds must be in (0, 600]")
        if self.interval_seconds < 0:
            raise ValueError("interval must not be negative")
        if self.corrupt_every < 0:
            raise ValueError("corrupt_every must not be negative")
        if not self.device_id or not all(c.isalnum() or c in "-_" for c in self.device_id):
            raise ValueError("device id: letters, digits, - and _ only")
        return self


def clip_name(device_id: str, start_us: int, seq: int, fmt: ClipFormat) -> str:
    stamp = datetime.fromtimestamp(start_us / 1e6, tz=UTC).strftime("%Y%m%dT%H%M%S")
    return f"{device_id}_{stamp}Z_{seq:06d}.{fmt}"


def temp_name(name: str) -> str:
    """The name a clip has while written: hidden and with a non-video suffix."""
    return f"{TEMP_PREFIX}{name}{TEMP_SUFFIX}"


def is_corrupt_turn(seq: int, corrupt_every: int) -> bool:
    return corrupt_every > 0 and seq % corrupt_every == 0


def frame_count(clip_seconds: float, fps: int) -> int:
    return max(1, round(clip_seconds * fps))


def _timestamp_text(us: int, tz: tzinfo = UTC) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4]


class ClipPainter:
    """Moving luma gradient, the device label top left and the capture clock bottom left."""

    def __init__(self, width: int, height: int, label: str) -> None:
        self.width, self.height = width, height
        self.scale = max(1, height // 120)
        self._ramp = bytes((i * 2) & 0xFF for i in range(width)) * 3
        self._label = font.render(label, self.scale)
        self._chroma = bytes([128])

    def paint(self, frame: av.VideoFrame, index: int, capture_us: int, tz: tzinfo = UTC) -> None:
        """Paint frame `index`; the clock shows `capture_us` as wall-clock time in `tz`."""
        luma = frame.planes[0]
        stride, w, h = luma.line_size, self.width, self.height
        shift = (index * 4) % w
        pad = bytes(stride - w)
        plane = bytearray(
            b"".join(self._ramp[(shift + y) % w : (shift + y) % w + w] + pad for y in range(h))
        )
        margin = 2 * self.scale
        font.stamp(plane, stride, self._label, margin, margin, w)
        clock = font.render(_timestamp_text(capture_us, tz), self.scale)
        font.stamp(plane, stride, clock, margin, h - len(clock) - margin, w)
        luma.update(bytes(plane))
        for chroma in frame.planes[1:]:
            chroma.update(self._chroma * chroma.buffer_size)


def encode_clip(path: Path, config: HandheldConfig, start_us: int, label: str) -> None:
    """Encode one clip to `path` (H.264 in MP4 or MPEG-TS, no B-frames, fixed GOP)."""
    n = frame_count(config.clip_seconds, config.fps)
    painter = ClipPainter(config.width, config.height, label)
    with av.open(str(path), mode="w", format=_CONTAINER[config.fmt]) as container:
        container.metadata["title"] = label
        container.metadata["service_name"] = label  # MPEG-TS keeps it in the SDT
        container.metadata["service_provider"] = "vigil-camsim"
        stream = container.add_stream("libx264", rate=config.fps)
        stream.width, stream.height = config.width, config.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = config.bitrate_kbps * 1000
        stream.options = {
            "preset": "ultrafast",
            "g": str(max(1, round(config.gop_seconds * config.fps))),
            "bf": "0",
            "sc_threshold": "0",
        }
        stream.codec_context.time_base = Fraction(1, config.fps)
        for i in range(n):
            frame = av.VideoFrame(config.width, config.height, "yuv420p")
            painter.paint(frame, i, start_us + i * 1_000_000 // config.fps)
            frame.pts = i
            frame.time_base = Fraction(1, config.fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _corrupt(path: Path, how: Corruption) -> None:
    size = path.stat().st_size
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(max(1, size // 3))
    else:
        path.write_bytes(secrets.token_bytes(max(1024, size // 4)))


class HandheldEmulator:
    """Writes clip after clip into `config.drop_dir`, each atomically."""

    def __init__(self, config: HandheldConfig, clock: Clock) -> None:
        self.config = config.validated()
        self.clock = clock
        self.seq = 0

    def write_clip(self, corrupt: Corruption | None = None) -> Path:
        """Write the next clip and return its final path (after the rename)."""
        cfg = self.config
        cfg.drop_dir.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        start_us = self.clock.now_us()
        name = clip_name(cfg.device_id, start_us, self.seq, cfg.fmt)
        tmp = cfg.drop_dir / temp_name(name)
        final = cfg.drop_dir / name
        try:
            encode_clip(tmp, cfg, start_us, f"{cfg.device_id} CLIP {self.seq}")
            if corrupt is not None:
                _corrupt(tmp, corrupt)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(cfg.drop_dir)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def run(
        self,
        stop: threading.Event,
        count: int | None = None,
        on_clip: Callable[[Path], object] | None = None,
    ) -> list[Path]:
        """Write a clip every `interval_seconds` (absolute schedule) until `stop` or `count`."""
        written: list[Path] = []
        origin = self.clock.monotonic()
        while not stop.is_set() and (count is None or len(written) < count):
            turn = self.seq + 1
            corrupt: Corruption | None = (
                "truncated" if is_corrupt_turn(turn, self.config.corrupt_every) else None
            )
            written.append(self.write_clip(corrupt))
            if on_clip is not None:
                on_clip(written[-1])
            if count is not None and len(written) >= count:
                break
            due = origin + len(written) * self.config.interval_seconds
            stop.wait(max(0.0, due - self.clock.monotonic()))
        return written
