"""Pre-encoded video and audio loops for the camera emulator: encode once, cache on disk.

Runs inside the GStreamer server process (Debian's /usr/bin/python3, standard library + gi),
loaded by file path like `core.py`. Encoding a picture live costs ~57% of a core per 1080p
camera; encoding a few seconds once and replaying the access units costs ~nothing. A loop is
cached under a digest of its settings, so the next start with the same cameras is instant.

The picture: moving SMPTE bars (busy enough for the encoder to reach the requested bitrate),
the camera label top left and the loop's running clock bottom right. H.264 (x264) or H.265
(x265), with no scene-cut keyframes and closed GOPs, so keyframes fall exactly every
`gop_frames` frames in decode order. Without B-frames decode order is presentation order and
the server stamps PTS = DTS as it paces frames; with B-frames the loop keeps each access
unit's composition offset (PTS - DTS, in frames) and the server adds it.

The sound (profiles with audio): a beep at every whole second, encoded as G.711 or AAC into
access units the server paces on the video's clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil_camsim.core import CameraSpec
    from vigil_camsim.profiles import AudioFormat

_MAGIC = "vigil-camsim-loop"


class LoopError(RuntimeError):
    """A loop could not be encoded, or a cached one is unusable."""


@dataclass(frozen=True)
class Loop:
    """The access units in decode order (one frame each, Annex B, parameter sets before every
    IDR) and each one's PTS - DTS in frame periods (all 0 without B-frames)."""

    key: str
    width: int
    height: int
    frames: list[bytes]
    keyframes: list[bool]
    pts_offsets: list[int] = field(default_factory=list)

    def offset(self, index: int) -> int:
        return self.pts_offsets[index] if self.pts_offsets else 0

    def check_cadence(self, gop_frames: int) -> Loop:
        """The feed relies on 'index % gop == 0 <=> keyframe'; refuse a loop that breaks it."""
        expected = [i % gop_frames == 0 for i in range(len(self.frames))]
        if self.keyframes != expected or not self.frames:
            raise LoopError(f"loop {self.key}: keyframes are not every {gop_frames} frames")
        return self


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil-camsim"


def _read_blob(cache_dir: Path, key: str) -> tuple[dict[str, Any], list[bytes]] | None:
    """A cache file's header and its units, or None when absent or damaged."""
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
    if not isinstance(sizes, list) or sum(sizes) != len(data):
        return None
    units, offset = [], 0
    for size in sizes:
        units.append(data[offset : offset + size])
        offset += size
    return header, units


def _write_blob(cache_dir: Path, key: str, header: dict[str, Any], units: list[bytes]) -> None:
    """Write atomically (temp file + rename): parallel servers may cache the same loop."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    full = {"magic": _MAGIC, "key": key, **header, "sizes": [len(u) for u in units]}
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(full).encode() + b"\n")
            for unit in units:
                f.write(unit)
        os.replace(tmp, cache_dir / f"{key}.loop")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached(cache_dir: Path, key: str) -> Loop | None:
    """The cached video loop, or None when absent or damaged (then it is re-encoded)."""
    blob = _read_blob(cache_dir, key)
    if blob is None:
        return None
    header, frames = blob
    keys, offsets = header.get("keyframes"), header.get("pts_offsets", [])
    if not isinstance(keys, list) or not isinstance(offsets, list):
        return None
    if offsets and len(offsets) != len(frames):
        return None
    keyset = set(keys)
    try:
        return Loop(
            key=key,
            width=int(header["width"]),
            height=int(header["height"]),
            frames=frames,
            keyframes=[i in keyset for i in range(len(frames))],
            pts_offsets=[int(o) for o in offsets],
        )
    except (KeyError, TypeError, ValueError):
        return None


def store_cached(cache_dir: Path, loop: Loop) -> None:
    header = {
        "width": loop.width,
        "height": loop.height,
        "keyframes": [i for i, k in enumerate(loop.keyframes) if k],
        "pts_offsets": loop.pts_offsets,
    }
    _write_blob(cache_dir, loop.key, header, loop.frames)


def _encoder(spec: CameraSpec) -> str:
    """The encoding part of the pipeline: fixed GOP, no scene cuts, closed GOPs."""
    gop, rate = spec.gop_frames, spec.bitrate_kbps
    # A frozen picture: a constant quantizer, so every keyframe of the loop is the same
    # picture bit for bit (as from an encoder stuck on one frame), not rate-control noise.
    x264_rate = "pass=quant quantizer=21" if spec.picture == "frozen" else f"bitrate={rate}"
    if spec.codec == "mjpeg":
        return "jpegenc quality=80 ! image/jpeg"
    if spec.codec == "h265":
        options = f"scenecut=0:bframes={spec.bframes}:b-adapt=0:open-gop=0"
        return (
            f"x265enc key-int-max={gop} bitrate={rate} speed-preset=ultrafast "
            f"option-string={options} ! video/x-h265,profile=main "
            f"! h265parse config-interval=-1 ! video/x-h265,stream-format=byte-stream,alignment=au"
        )
    if spec.bframes:
        return (
            f"x264enc key-int-max={gop} {x264_rate} speed-preset=superfast "
            f"bframes={spec.bframes} b-adapt=false b-pyramid=false option-string=scenecut=0 "
            f"! video/x-h264,profile=high "
            f"! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au"
        )
    return (
        f"x264enc key-int-max={gop} {x264_rate} "
        f"speed-preset=ultrafast bframes=0 option-string=scenecut=0 "
        f"! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au"
    )


def _pull_all(gst: Any, pipeline: Any, push: bytes | None = None) -> list[Any]:
    """Run `pipeline` to its end and return its appsink's buffers (after pushing `push` into
    its appsrc `src`, when given)."""
    sink = pipeline.get_by_name("sink")
    buffers: list[Any] = []
    pipeline.set_state(gst.State.PLAYING)
    try:
        if push is not None:
            src = pipeline.get_by_name("src")
            buf = gst.Buffer.new_wrapped(push)
            buf.pts = 0
            src.emit("push-buffer", buf)
            src.emit("end-of-stream")
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buffers.append(sample.get_buffer())
        msg = pipeline.get_bus().pop_filtered(gst.MessageType.ERROR)
        if msg is not None:
            err, _debug = msg.parse_error()
            raise LoopError(f"encoding failed: {err.message}")
    finally:
        pipeline.set_state(gst.State.NULL)
    return buffers


def _parse(gst: Any, desc: str) -> Any:
    try:
        return gst.parse_launch(desc)
    except Exception as exc:  # GLib.Error: a missing plugin
        raise LoopError(f"cannot build the encoding pipeline: {exc}") from exc


def encode_loop(gst: Any, spec: CameraSpec, key: str, profiles: ModuleType) -> Loop:
    """Run the offline pipeline for `spec` and collect its access units from an appsink."""
    font = 14  # textoverlay scales text with the picture (auto-resize), so one size fits all
    raw = f"video/x-raw,format=I420,width={spec.width},height={spec.height},framerate={spec.fps}/1"
    pattern, speed, clock, blur = "smpte", 4, True, ""
    if spec.picture == "black":
        pattern, speed, clock = "black", 0, False
    elif spec.picture == "frozen":
        speed, clock = 0, False  # the same picture every frame
    elif spec.picture == "blurred":  # out of focus: through a 1/48 size and back
        w, h = (max(16, side // 48 // 2 * 2) for side in (spec.width, spec.height))
        blur = f"! videoscale ! video/x-raw,width={w},height={h} ! videoscale ! {raw} "
    label = (
        "! textoverlay name=label valignment=top halignment=left shaded-background=true "
        f'font-desc="Sans {font}" '
    )
    desc = (
        f"videotestsrc name=src num-buffers={spec.loop_frames} pattern={pattern} "
        f"horizontal-speed={speed} ! {raw} "
        + (label if spec.picture != "black" else "")
        + (
            f"! timeoverlay valignment=bottom halignment=right shaded-background=true "
            f'font-desc="Sans {font}" '
            if clock
            else ""
        )
        + blur
        + f"! {_encoder(spec)} ! appsink name=sink sync=false"
    )
    pipeline = _parse(gst, desc)
    kind = {"h264": "", "h265": "  H.265", "mjpeg": "  MJPEG", "none": ""}[spec.codec] + (
        "  B-frames" if spec.bframes else ""
    )
    text = f"{spec.label}  {spec.width}x{spec.height}{kind}"
    if spec.picture != "black":
        pipeline.get_by_name("label").set_property("text", text)
    buffers = _pull_all(gst, pipeline)
    if len(buffers) != spec.loop_frames:
        raise LoopError(f"encoder produced {len(buffers)} of {spec.loop_frames} frames")
    frames = [b.extract_dup(0, b.get_size()) for b in buffers]
    keyframes = [not b.has_flags(gst.BufferFlags.DELTA_UNIT) for b in buffers]
    if spec.picture == "frozen" and keyframes and keyframes[0]:
        # An encoder stuck on one picture: every keyframe the very same bytes (a second
        # encode of the same input differs by rate-control noise, ~2 levels at 320x180).
        frames = [frames[0] if key else f for f, key in zip(frames, keyframes, strict=True)]
    offsets: list[int] = []
    if spec.bframes:
        try:
            pts = profiles.pts_frames_from_ns([int(b.pts) for b in buffers], spec.fps)
            offsets = profiles.composition_offsets(pts)
        except ValueError as exc:
            raise LoopError(f"loop {key}: {exc}") from exc
    loop = Loop(key, spec.width, spec.height, frames, keyframes, offsets)
    return loop.check_cadence(spec.gop_frames)


@dataclass(frozen=True)
class AudioLoop:
    """Encoded audio access units, each `fmt.samples` samples long; replayed in a circle."""

    key: str
    fmt: AudioFormat
    units: list[bytes]


def audio_cache_key(fmt: AudioFormat, seconds: int, version: int) -> str:
    material = json.dumps(["audio", version, fmt.codec, fmt.rate, fmt.samples, seconds])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def encode_audio(gst: Any, fmt: AudioFormat, profiles: ModuleType, key: str) -> AudioLoop:
    """Encode `profiles.beep_pcm` for a whole number of seconds and cut it into access units.

    The PCM is followed by its own first 0.25 s, so an encoder that holds frames back (AAC's
    priming delay) still yields every unit of the loop; the surplus is dropped.
    """
    seconds = profiles.audio_loop_seconds(fmt.rate, fmt.samples)
    count = seconds * fmt.rate // fmt.samples
    pcm = profiles.beep_pcm(fmt.rate, seconds)
    pcm += pcm[: fmt.rate // 2]
    desc = (
        f"appsrc name=src format=time caps=audio/x-raw,format=S16LE,rate={fmt.rate},"
        f"channels=1,layout=interleaved ! {fmt.encoder} ! appsink name=sink sync=false"
    )
    buffers = _pull_all(gst, _parse(gst, desc), push=pcm)
    chunks = [b.extract_dup(0, b.get_size()) for b in buffers]
    if fmt.codec == "aac":
        units = chunks
    else:  # G.711: one byte per sample, whatever the encoder's buffer sizes
        data = b"".join(chunks)
        units = [data[i : i + fmt.samples] for i in range(0, len(data), fmt.samples)]
    if len(units) < count:
        raise LoopError(f"audio encoder produced {len(units)} of {count} units")
    return AudioLoop(key, fmt, units[:count])


def _cadence(frames: int, spec: CameraSpec) -> list[bool]:
    if frames != spec.loop_frames:
        return []
    return [i % spec.gop_frames == 0 for i in range(frames)]


class LoopLibrary:
    """Loops by key: from memory, else from the disk cache, else encoded (one at a time, so
    two requests do not fight over the two cores)."""

    def __init__(self, gst: Any, cache_dir: Path, profiles: ModuleType, version: int) -> None:
        self._gst = gst
        self._cache_dir = cache_dir
        self._profiles = profiles
        self._version = version  # core.LOOP_FORMAT_VERSION, for the audio loops' keys
        self._loops: dict[str, Loop] = {}
        self._audio: dict[str, AudioLoop] = {}
        self._lock = threading.Lock()
        self.encoded = 0
        self.from_cache = 0

    def get(self, spec: CameraSpec, key: str) -> Loop:
        with self._lock:
            loop = self._loops.get(key)
            if loop is None:
                loop = load_cached(self._cache_dir, key)
                if loop is not None and (
                    loop.keyframes != _cadence(len(loop.frames), spec)
                    or bool(loop.pts_offsets) != bool(spec.bframes)
                ):
                    loop = None  # damaged or foreign: encode afresh
                if loop is not None:
                    self.from_cache += 1
                else:
                    loop = encode_loop(self._gst, spec, key, self._profiles)
                    self.encoded += 1
                    try:
                        store_cached(self._cache_dir, loop)
                    except OSError:
                        pass  # a read-only cache only costs time on the next start
                self._loops[key] = loop
            return loop

    def get_audio(self, fmt: AudioFormat) -> AudioLoop:
        """The beep loop in `fmt`: from memory, else the disk cache, else encoded."""
        seconds = self._profiles.audio_loop_seconds(fmt.rate, fmt.samples)
        key = audio_cache_key(fmt, seconds, self._version)
        count = seconds * fmt.rate // fmt.samples
        with self._lock:
            loop = self._audio.get(key)
            if loop is None:
                blob = _read_blob(self._cache_dir, key)
                if blob is not None and len(blob[1]) == count and all(blob[1]):
                    loop = AudioLoop(key, fmt, blob[1])
                    self.from_cache += 1
                else:
                    loop = encode_audio(self._gst, fmt, self._profiles, key)
                    self.encoded += 1
                    try:
                        _write_blob(self._cache_dir, key, {"codec": fmt.codec}, loop.units)
                    except OSError:
                        pass
                self._audio[key] = loop
            return loop
