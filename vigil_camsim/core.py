"""Pure decisions of the camera emulator: camera specs, frame pacing and the GOP feed.

This module is loaded by TWO interpreters: the venv (launcher, unit tests) and Debian's
/usr/bin/python3, which runs the GStreamer RTSP server (`gst_server.py`) because `gi` imports
only there. So it uses the standard library only and imports nothing from the project: the
server loads it by file path, without importing the `edge_agent` package.

Everything here is a function over plain data, so the pacing and fault behaviour the tests rely
on (keyframe cadence, dropped IDRs, resolution switches at a keyframe) is unit tested without
GStreamer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace

# Bump when the picture or encoder settings change, so cached loops are re-encoded.
LOOP_FORMAT_VERSION = 3

CAMERA_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9 _.:-]{1,40}$")
MIN_SIDE = 16
MAX_WIDTH = 3840
MAX_HEIGHT = 2160
MAX_FPS = 60
MAX_BITRATE_KBPS = 50_000
MAX_LOOP_FRAMES = 1_500
# Picture faults (image health): a still picture, a black one, one out of focus.
PICTURE_FAULTS = ("frozen", "black", "blurred")
VIDEO_CODECS = ("h264", "h265", "mjpeg", "none")  # none: audio only (the loop still paces it)
MJPEG_MAX_SIDE = 2040  # RTP/JPEG (RFC 2435) gives width/8 and height/8 one byte each
AUDIO_CODECS = ("aac", "pcma", "pcmu")  # profiles.AUDIO, restated: this module imports nothing
MAX_BFRAMES = 4

# A pusher that fell behind (a starved core) catches up with the frames due: timestamps come
# from the schedule, not from the push, so the burst keeps 1/fps spacing and nothing is lost.
# Past this lag (a stopped process) it re-bases the schedule: the stream shows a gap instead
# of a flood of stale frames.
MAX_LAG_SECONDS = 2.0


class SpecError(ValueError):
    """A camera setting is out of range; the message names the setting."""


@dataclass(frozen=True)
class CameraSpec:
    """What one emulated camera sends: the encoder settings of its pre-encoded loop."""

    camera_id: str
    label: str
    width: int = 1920
    height: int = 1080
    fps: int = 25
    bitrate_kbps: int = 4000
    gop_frames: int = 50
    loop_frames: int = 100
    codec: str = "h264"
    bframes: int = 0
    audio: str | None = None
    profile: str = "h264"  # the profile name these three came from (reported, not encoded)
    video_gop: int = 0  # the GOP before an MJPEG profile forced 1 (0: gop_frames)
    # A picture fault for image-health tests (PICTURE_FAULTS; "" a normal picture).
    picture: str = ""

    def validated(self) -> CameraSpec:
        """Return self, or raise SpecError naming the first bad setting."""
        check_camera_id(self.camera_id)
        if not LABEL_RE.match(self.label):
            raise SpecError(f"label must match {LABEL_RE.pattern}")
        check_resolution(self.width, self.height)
        if not 1 <= self.fps <= MAX_FPS:
            raise SpecError(f"fps must be in 1..{MAX_FPS}")
        if not 50 <= self.bitrate_kbps <= MAX_BITRATE_KBPS:
            raise SpecError(f"bitrate must be in 50..{MAX_BITRATE_KBPS} kbit/s")
        if not 1 <= self.gop_frames <= 10 * self.fps:
            raise SpecError("GOP must be 1 frame .. 10 seconds")
        if self.loop_frames % self.gop_frames or not 0 < self.loop_frames <= MAX_LOOP_FRAMES:
            raise SpecError(f"loop must be a whole number of GOPs, at most {MAX_LOOP_FRAMES}")
        if self.codec not in VIDEO_CODECS:
            raise SpecError(f"codec must be one of {', '.join(VIDEO_CODECS)}")
        if not 0 <= self.bframes <= MAX_BFRAMES:
            raise SpecError(f"bframes must be in 0..{MAX_BFRAMES}")
        if self.audio is not None and self.audio not in AUDIO_CODECS:
            raise SpecError(f"audio must be one of {', '.join(AUDIO_CODECS)}")
        if self.codec == "none" and self.audio is None:
            raise SpecError("a camera without video needs audio")
        if self.codec == "mjpeg" and (self.gop_frames != 1 or self.bframes):
            raise SpecError("MJPEG has only keyframes: GOP 1, no B-frames")
        if self.codec == "mjpeg" and max(self.width, self.height) > MJPEG_MAX_SIDE:
            raise SpecError(f"MJPEG over RTP is limited to {MJPEG_MAX_SIDE} pixels a side")
        return self

    def at_resolution(self, width: int, height: int) -> CameraSpec:
        return replace(self, width=width, height=height).validated()

    def with_picture(self, fault: str) -> CameraSpec:
        """The same camera sending a frozen, black or blurred picture ("" / "none": normal)."""
        fault = "" if fault == "none" else fault
        if fault and fault not in PICTURE_FAULTS:
            raise SpecError(f"picture fault must be one of: none, {', '.join(PICTURE_FAULTS)}")
        return replace(self, picture=fault)


def with_profile(
    spec: CameraSpec, name: str, codec: str, bframes: int, audio: str | None
) -> CameraSpec:
    """`spec` turned into a camera of profile `name` (MJPEG: every frame is a keyframe; the
    GOP it had is kept aside for a later switch back to H.264/H.265)."""
    video_gop = spec.video_gop or spec.gop_frames
    gop = 1 if codec == "mjpeg" else video_gop
    return replace(
        spec,
        codec=codec,
        bframes=bframes,
        audio=audio,
        profile=name,
        gop_frames=gop,
        video_gop=video_gop,
    ).validated()


def check_camera_id(camera_id: str) -> str:
    if not CAMERA_ID_RE.match(camera_id):
        raise SpecError(f"camera id must match {CAMERA_ID_RE.pattern}")
    return camera_id


def check_resolution(width: int, height: int) -> None:
    """H.264 4:2:0 needs even sides; the bounds keep a typo from eating the machine."""
    if not (MIN_SIDE <= width <= MAX_WIDTH and MIN_SIDE <= height <= MAX_HEIGHT):
        raise SpecError(
            f"resolution must be within {MIN_SIDE}x{MIN_SIDE}..{MAX_WIDTH}x{MAX_HEIGHT}"
        )
    if width % 2 or height % 2:
        raise SpecError("width and height must be even")


def gop_frames_for(fps: int, gop_seconds: float) -> int:
    if not math.isfinite(gop_seconds) or gop_seconds <= 0:
        raise SpecError("gop seconds must be positive")
    return max(1, round(fps * gop_seconds))


def loop_frames_for(gop_frames: int, fps: int, loop_seconds: float) -> int:
    """The shortest whole number of GOPs (at least two) that lasts `loop_seconds`.

    Two GOPs at least, so a client always sees a keyframe-to-keyframe interval inside one loop.
    """
    if not math.isfinite(loop_seconds) or loop_seconds <= 0:
        raise SpecError("loop seconds must be positive")
    gops = max(2, math.ceil(loop_seconds * fps / gop_frames))
    return gops * gop_frames


def make_specs(
    count: int,
    *,
    width: int,
    height: int,
    fps: int,
    bitrate_kbps: int,
    gop_seconds: float,
    loop_seconds: float,
    label_prefix: str,
) -> list[CameraSpec]:
    """Specs for cameras "1".."count", each labelled `<prefix> <id>` so streams differ."""
    if not 1 <= count <= 64:
        raise SpecError("cameras must be in 1..64")
    gop = gop_frames_for(fps, gop_seconds)
    loop = loop_frames_for(gop, fps, loop_seconds)
    return [
        CameraSpec(
            camera_id=str(i),
            label=f"{label_prefix} {i}",
            width=width,
            height=height,
            fps=fps,
            bitrate_kbps=bitrate_kbps,
            gop_frames=gop,
            loop_frames=loop,
        ).validated()
        for i in range(1, count + 1)
    ]


def cache_key(spec: CameraSpec) -> str:
    """A file-name-safe digest of everything that changes the encoded bytes (not the id)."""
    material = json.dumps(
        [
            LOOP_FORMAT_VERSION,
            spec.label,
            spec.width,
            spec.height,
            spec.fps,
            spec.bitrate_kbps,
            spec.gop_frames,
            spec.loop_frames,
            spec.codec,
            spec.bframes,
            *([f"picture:{spec.picture}:2"] if spec.picture else []),  # normal: keys unchanged
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:24]


# --- pacing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Frame k is due at `origin + k / fps` (absolute monotonic seconds): no drift."""

    origin: float
    fps: int
    emitted: int = 0

    def due_at(self, frame: int) -> float:
        return self.origin + frame / self.fps

    def next_deadline(self) -> float:
        return self.due_at(self.emitted)


def plan_tick(schedule: Schedule, now: float) -> tuple[int, Schedule]:
    """How many frames to emit at `now`, and the schedule after emitting them.

    Normally one; all the frames due when the timer fired late by up to MAX_LAG_SECONDS.
    Past that, the schedule is re-based so exactly one frame is due: the stream shows a gap.
    """
    due = math.floor((now - schedule.origin) * schedule.fps + 1e-9) + 1 - schedule.emitted
    if due <= 0:
        return 0, schedule
    lag = now - schedule.next_deadline()
    if lag > MAX_LAG_SECONDS:
        rebased = Schedule(origin=now - schedule.emitted / schedule.fps, fps=schedule.fps)
        return 1, replace(rebased, emitted=schedule.emitted + 1)
    return due, replace(schedule, emitted=schedule.emitted + due)


@dataclass(frozen=True)
class AudioClock:
    """Audio access unit k is due at `origin + k * samples / rate`: the camera's audio runs on
    the same monotonic clock as its video, so both streams' timestamps agree (A/V sync)."""

    origin: float
    rate: int
    samples: int
    sent: int = 0

    def due_at(self, unit: int) -> float:
        return self.origin + unit * self.samples / self.rate


def plan_audio(clock: AudioClock, until: float) -> tuple[int, AudioClock]:
    """How many audio access units are due by `until` (the due time of the video frame being
    sent), and the clock after sending them. Audio thus rides on the video timer (no timer of
    its own); when video re-bases its schedule after a long stop, audio does the same."""
    due = math.floor((until - clock.origin) * clock.rate / clock.samples + 1e-9) + 1 - clock.sent
    if due <= 0:
        return 0, clock
    if until - clock.due_at(clock.sent) > MAX_LAG_SECONDS:
        origin = until - clock.sent * clock.samples / clock.rate
        return 1, replace(clock, origin=origin, sent=clock.sent + 1)
    return due, replace(clock, sent=clock.sent + due)


# --- the feed: which access unit goes out next ------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """The position of a camera's virtual encoder in its pre-encoded loop.

    Loops are whole GOPs, so `pos % gop == 0` is exactly "this frame is an IDR".
    `drop_idrs` counts IDRs still to withhold (the broken-GOP fault); `pending` is a loop to
    switch to at the next keyframe (the resolution fault), given as (loop key, loop length).
    """

    loop: str
    loop_len: int
    gop: int
    pos: int = 0
    drop_idrs: int = 0
    pending: tuple[str, int] | None = None


@dataclass(frozen=True)
class Emit:
    """One frame slot: the loop and index to send, or index None when the frame is withheld."""

    loop: str
    index: int | None
    keyframe: bool


def advance(feed: Feed) -> tuple[Emit, Feed]:
    """Produce the next frame slot and the feed after it."""
    if feed.pending is not None and feed.pos % feed.gop == 0:
        key, length = feed.pending
        feed = replace(feed, loop=key, loop_len=length, pos=0, pending=None)
    keyframe = feed.pos % feed.gop == 0
    nxt = (feed.pos + 1) % feed.loop_len
    if keyframe and feed.drop_idrs > 0:
        return Emit(feed.loop, None, True), replace(feed, pos=nxt, drop_idrs=feed.drop_idrs - 1)
    return Emit(feed.loop, feed.pos, keyframe), replace(feed, pos=nxt)


def gate(started: bool, keyframe: bool) -> bool:
    """Whether a client receives this frame: from its first keyframe on (a fresh client, or one
    resumed after a stall, would otherwise get frames it cannot decode)."""
    return started or keyframe


# --- the corrupt-NAL fault ----------------------------------------------------------------------


def nal_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit's bytes (after its 00 00 01 start code) in Annex B data."""
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    spans = []
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        while n + 1 < len(starts) and end > start and data[end - 1] == 0:
            end -= 1  # the zero byte of a 4-byte start code belongs to the next
        spans.append((start, end))
    return spans


def corrupt_access_unit(data: bytes) -> bytes:
    """The access unit with its largest NAL unit (the picture's slice) scrambled after the
    NAL header: start codes, NAL headers and parameter sets stay intact, so parsers and
    payloaders pass it on and the decoder finds the picture broken (its slice header names
    no valid parameter set or slice), as with bit errors on a real link. Never emits a start
    code inside the damaged run."""
    spans = nal_spans(data)
    if not spans:
        return data
    start, end = max(spans, key=lambda s: s[1] - s[0])
    cut = min(end, start + 2)  # NAL header: 1 byte in H.264, 2 in H.265
    damaged = bytes(0x5A ^ ((i * 37) & 0xFF) | 0x01 for i in range(end - cut))
    return data[:cut] + damaged + data[end:]


# --- the wall-clock stamp (glass-to-glass latency) -----------------------------------------------

# user_data_unregistered SEI: this UUID, then the capture wall time in microseconds as 16 ASCII
# digits. Digits never make 00 00 0x, so the payload needs no emulation prevention bytes and a
# reader finds it with a plain byte search (tests, bench.live, the browser test's TS parser).
WALLCLOCK_UUID = b"VIGIL-WALLCLOCK!"
_SEI_H264 = b"\x00\x00\x00\x01\x06\x05\x20"  # NAL 6 (SEI), payload 5 (user data), 32 bytes
_SEI_H265 = b"\x00\x00\x00\x01\x4e\x01\x05\x20"  # NAL 39 (prefix SEI), same payload


def wallclock_sei(codec: str, wall_us: int) -> bytes:
    """The SEI NAL unit (with its start code) that says 'this frame was captured at wall_us'."""
    head = {"h264": _SEI_H264, "h265": _SEI_H265}.get(codec)
    if head is None:
        return b""
    return head + WALLCLOCK_UUID + b"%016d" % (wall_us % 10**16) + b"\x80"


def _first_vcl(data: bytes, codec: str) -> int:
    """Offset of the start code of the access unit's first picture slice (len(data): none)."""
    for start, _end in nal_spans(data):
        kind = data[start] & 0x1F if codec == "h264" else (data[start] >> 1) & 0x3F
        if (codec == "h264" and 1 <= kind <= 5) or (codec == "h265" and kind <= 31):
            cut = start - 3
            return cut - 1 if cut > 0 and data[cut - 1] == 0 else cut
    return len(data)


def with_wallclock(data: bytes, codec: str, wall_us: int) -> bytes:
    """The access unit with the wall-clock SEI just before its first slice (after any access
    unit delimiter and parameter sets, where H.264 and H.265 want SEI). Other codecs: as is."""
    sei = wallclock_sei(codec, wall_us)
    if not sei:
        return data
    cut = _first_vcl(data, codec)
    return data[:cut] + sei + data[cut:]


def read_wallclock(data: bytes) -> list[int]:
    """Every wall-clock stamp (microseconds) in a byte stream, in order."""
    out, i = [], data.find(WALLCLOCK_UUID)
    while i >= 0:
        digits = data[i + 16 : i + 32]
        if len(digits) == 16 and digits.isdigit():
            out.append(int(digits))
        i = data.find(WALLCLOCK_UUID, i + 16)
    return out
