"""Pre-encoded H.264 loops for the camera emulator: encode once with GStreamer, cache on disk.

Runs inside the GStreamer server process (Debian's /usr/bin/python3, standard library + gi),
loaded by file path like `core.py`. Encoding a picture live costs ~57% of a core per 1080p
camera; encoding a few seconds once and replaying the access units costs ~nothing. The loop is
cached under a digest of its settings, so the next start with the same cameras is instant.

The picture: moving SMPTE bars (busy enough for x264 to reach the requested bitrate), the
camera label top left and the loop's running clock bottom right. The encoder runs with no
B-frames and no scene-cut keyframes, so keyframes fall exactly every `gop_frames` frames and
decode order is presentation order: the server can timestamp frames as it paces them.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.emulator.core import CameraSpec

_MAGIC = "vigil-camsim-loop"


class LoopError(RuntimeError):
    """A loop could not be encoded, or a cached one is unusable."""


@dataclass(frozen=True)
class Loop:
    """The access units (one H.264 frame each, Annex B, SPS/PPS before every IDR)."""

    key: str
    width: int
    height: int
    frames: list[bytes]
    keyframes: list[bool]

    def check_cadence(self, gop_frames: int) -> Loop:
        """The feed relies on 'index % gop == 0 <=> keyframe'; refuse a loop that breaks it."""
        expected = [i % gop_frames == 0 for i in range(len(self.frames))]
        if self.keyframes != expected or not self.frames:
            raise LoopError(f"loop {self.key}: keyframes are not every {gop_frames} frames")
        return self


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil-camsim"


def load_cached(cache_dir: Path, key: str) -> Loop | None:
    """The cached loop, or None when absent or damaged (then it is simply re-encoded)."""
    path = cache_dir / f"{key}.loop"
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
            data = f.read()
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict) or header.get("magic") != _MAGIC or header.get("key") != key:
        return None
    sizes = header.get("sizes")
    keys = header.get("keyframes")
    if not isinstance(sizes, list) or not isinstance(keys, list) or sum(sizes) != len(data):
        return None
    frames, offset = [], 0
    for size in sizes:
        frames.append(data[offset : offset + size])
        offset += size
    keyset = set(keys)
    return Loop(
        key=key,
        width=int(header["width"]),
        height=int(header["height"]),
        frames=frames,
        keyframes=[i in keyset for i in range(len(frames))],
    )


def store_cached(cache_dir: Path, loop: Loop) -> None:
    """Write atomically (temp file + rename): parallel servers may cache the same loop."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    header = {
        "magic": _MAGIC,
        "key": loop.key,
        "width": loop.width,
        "height": loop.height,
        "sizes": [len(f) for f in loop.frames],
        "keyframes": [i for i, k in enumerate(loop.keyframes) if k],
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{loop.key}.", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            for frame in loop.frames:
                f.write(frame)
        os.replace(tmp, cache_dir / f"{loop.key}.loop")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_loop(gst: Any, spec: CameraSpec, key: str) -> Loop:
    """Run the offline pipeline for `spec` and collect its access units from an appsink."""
    font = 14  # textoverlay scales text with the picture (auto-resize), so one size fits all
    desc = (
        f"videotestsrc name=src num-buffers={spec.loop_frames} pattern=smpte horizontal-speed=4 "
        f"! video/x-raw,format=I420,width={spec.width},height={spec.height},"
        f"framerate={spec.fps}/1 "
        f"! textoverlay name=label valignment=top halignment=left shaded-background=true "
        f'font-desc="Sans {font}" '
        f"! timeoverlay valignment=bottom halignment=right shaded-background=true "
        f'font-desc="Sans {font}" '
        f"! x264enc key-int-max={spec.gop_frames} bitrate={spec.bitrate_kbps} "
        f"speed-preset=ultrafast bframes=0 option-string=scenecut=0 "
        f"! h264parse config-interval=-1 "
        f"! video/x-h264,stream-format=byte-stream,alignment=au "
        f"! appsink name=sink sync=false"
    )
    try:
        pipeline = gst.parse_launch(desc)
    except Exception as exc:  # GLib.Error: a missing plugin
        raise LoopError(f"cannot build the encoding pipeline: {exc}") from exc
    pipeline.get_by_name("label").set_property("text", f"{spec.label}  {spec.width}x{spec.height}")
    sink = pipeline.get_by_name("sink")
    frames: list[bytes] = []
    keyframes: list[bool] = []
    pipeline.set_state(gst.State.PLAYING)
    try:
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buf = sample.get_buffer()
            frames.append(buf.extract_dup(0, buf.get_size()))
            keyframes.append(not buf.has_flags(gst.BufferFlags.DELTA_UNIT))
        msg = pipeline.get_bus().pop_filtered(gst.MessageType.ERROR)
        if msg is not None:
            err, _debug = msg.parse_error()
            raise LoopError(f"encoding failed: {err.message}")
    finally:
        pipeline.set_state(gst.State.NULL)
    if len(frames) != spec.loop_frames:
        raise LoopError(f"encoder produced {len(frames)} of {spec.loop_frames} frames")
    loop = Loop(key, spec.width, spec.height, frames, keyframes)
    return loop.check_cadence(spec.gop_frames)


def _cadence(frames: int, spec: CameraSpec) -> list[bool]:
    if frames != spec.loop_frames:
        return []
    return [i % spec.gop_frames == 0 for i in range(frames)]


class LoopLibrary:
    """Loops by key: from memory, else from the disk cache, else encoded (one at a time, so
    two requests do not fight over the two cores)."""

    def __init__(self, gst: Any, cache_dir: Path) -> None:
        self._gst = gst
        self._cache_dir = cache_dir
        self._loops: dict[str, Loop] = {}
        self._lock = threading.Lock()
        self.encoded = 0
        self.from_cache = 0

    def get(self, spec: CameraSpec, key: str) -> Loop:
        with self._lock:
            loop = self._loops.get(key)
            if loop is None:
                loop = load_cached(self._cache_dir, key)
                if loop is not None and loop.keyframes != _cadence(len(loop.frames), spec):
                    loop = None  # damaged or foreign: encode afresh
                if loop is not None:
                    self.from_cache += 1
                else:
                    loop = encode_loop(self._gst, spec, key)
                    self.encoded += 1
                    try:
                        store_cached(self._cache_dir, loop)
                    except OSError:
                        pass  # a read-only cache only costs time on the next start
                self._loops[key] = loop
            return loop
