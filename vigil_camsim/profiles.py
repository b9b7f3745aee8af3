"""Camera profiles: what kind of camera an emulated camera imitates (codec, B-frames, audio).

Longnan's installed base is not the emulator's default camera (H.264 without B-frames, no
audio): most cameras since 2018 send H.265, many carry G.711 audio, H.264 ones send B-frames.
A profile name says which of these a camera does:

    <video>[-<audio>]   video: h264 | h264-bframes | h265 | h265-bframes
                        audio: aac | pcma | pcmu (none when left out)
    audio-only-<audio>  no video at all (bad input for a video recorder)
    mjpeg[-<audio>]     Motion JPEG, every frame a keyframe (a codec the agent refuses)

e.g. `h264` (the default, as before), `h265`, `h264-bframes-pcma`, `h265-aac`. Sizes are named
presets (`d1`, `720p`, `1080p`, `4mp`); per-camera profiles are `ID=NAME` assignments.

Like core.py this module is loaded by two interpreters (venv and /usr/bin/python3 with gi), so
it is standard library only, and everything here is pure and unit tested.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_PROFILE = "h264"
PRESETS: dict[str, tuple[int, int]] = {
    "d1": (704, 576),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "4mp": (2560, 1440),
}
# B-frames between references when a profile has them (x264/x265 "bframes"): the common
# camera setting, and enough to make decode order differ from presentation order.
BFRAMES = 2
_VIDEO: dict[str, tuple[str, int]] = {
    "h264": ("h264", 0),
    "h264-bframes": ("h264", BFRAMES),
    "h265": ("h265", 0),
    "h265-bframes": ("h265", BFRAMES),
    "mjpeg": ("mjpeg", 0),
}
AUDIO_ONLY = "audio-only"
_ASSIGNMENT = re.compile(r"^(?P<id>[A-Za-z0-9_-]{1,32})=(?P<name>[a-z0-9-]{1,40})$")


class ProfileError(ValueError):
    """A profile, preset or assignment is not one the emulator knows; the message lists them."""


@dataclass(frozen=True)
class AudioFormat:
    """One audio codec as the emulator sends it: RTP stream `pay1` next to the video's `pay0`.

    `samples` is the samples per access unit, the unit of pacing: 20 ms for G.711 (what
    cameras send), one AAC frame (1024) for AAC.
    """

    codec: str
    rate: int
    channels: int
    samples: int
    caps: str  # of the encoded access units (the server's audio appsrc)
    encoder: str  # raw S16LE mono in, `caps` out
    payloader: str  # `caps` in, RTP out

    @property
    def chunk_ns(self) -> float:
        return self.samples * 1e9 / self.rate


AUDIO: dict[str, AudioFormat] = {
    "aac": AudioFormat(
        "aac",
        16000,
        1,
        1024,
        "audio/mpeg,mpegversion=4,stream-format=adts,rate=16000,channels=1",
        "voaacenc bitrate=32000 ! aacparse ! audio/mpeg,mpegversion=4,stream-format=adts",
        "aacparse ! rtpmp4gpay name=pay1 pt=97",
    ),
    "pcma": AudioFormat(
        "pcma",
        8000,
        1,
        160,
        "audio/x-alaw,rate=8000,channels=1",
        "alawenc",
        "rtppcmapay name=pay1 pt=8",
    ),
    "pcmu": AudioFormat(
        "pcmu",
        8000,
        1,
        160,
        "audio/x-mulaw,rate=8000,channels=1",
        "mulawenc",
        "rtppcmupay name=pay1 pt=0",
    ),
}


@dataclass(frozen=True)
class Profile:
    """A parsed profile name."""

    name: str
    codec: str  # "h264" | "h265" | "mjpeg" | "none" (audio only)
    bframes: int
    audio: str | None  # a key of AUDIO, or None

    @property
    def audio_format(self) -> AudioFormat | None:
        return None if self.audio is None else AUDIO[self.audio]


def profile_names() -> list[str]:
    """Every valid profile name, video profiles first."""
    names = list(_VIDEO)
    names += [f"{video}-{audio}" for video in _VIDEO for audio in AUDIO]
    return names + [f"{AUDIO_ONLY}-{audio}" for audio in AUDIO]


def parse_profile(name: str) -> Profile:
    """The profile called `name`, or ProfileError listing the valid names."""
    video, audio = name, None
    for codec in AUDIO:
        if name.endswith(f"-{codec}"):
            video, audio = name[: -len(codec) - 1], codec
            break
    if video == AUDIO_ONLY and audio is not None:
        return Profile(name=name, codec="none", bframes=0, audio=audio)
    if video not in _VIDEO:
        raise ProfileError(
            f"unknown camera profile {name!r}; use <video>[-<audio>] with video one of "
            f"{', '.join(_VIDEO)} and audio one of {', '.join(AUDIO)} (e.g. h264-bframes-pcma), "
            f"or {AUDIO_ONLY}-<audio>"
        )
    codec, bframes = _VIDEO[video]
    return Profile(name=name, codec=codec, bframes=bframes, audio=audio)


def preset_size(name: str) -> tuple[int, int]:
    """(width, height) of a named resolution preset."""
    size = PRESETS.get(name.lower())
    if size is None:
        raise ProfileError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return size


def parse_assignments(items: Iterable[str]) -> dict[str, Profile]:
    """`["2=h265", "3=h264-pcma"]` -> {"2": h265, "3": h264-pcma}; each item also may be a
    comma-separated list ("2=h265,3=h264-pcma"). A camera named twice is an error."""
    out: dict[str, Profile] = {}
    for item in items:
        for part in item.split(","):
            match = _ASSIGNMENT.match(part.strip())
            if match is None:
                raise ProfileError(
                    f"bad camera profile {part.strip()!r}: expected CAMERA_ID=PROFILE, "
                    "e.g. 2=h265 or 3=h264-bframes-pcma"
                )
            if match["id"] in out:
                raise ProfileError(f"camera {match['id']} is given a profile twice")
            out[match["id"]] = parse_profile(match["name"])
    return out


def profiles_for(
    camera_ids: Sequence[str], default: str, assignments: Iterable[str]
) -> dict[str, Profile]:
    """Each camera's profile: its assignment, else `default`. An assignment for a camera that
    does not exist is an error (a typo would otherwise silently test the default camera)."""
    base = parse_profile(default)
    chosen = parse_assignments(assignments)
    unknown = sorted(set(chosen) - set(camera_ids))
    if unknown:
        raise ProfileError(
            f"camera profile for unknown camera(s) {', '.join(unknown)}; "
            f"cameras are {', '.join(camera_ids)}"
        )
    return {cid: chosen.get(cid, base) for cid in camera_ids}


# --- the RTSP media of one camera --------------------------------------------------------------


def media_launch(codec: str, audio: AudioFormat | None) -> str:
    """gst-rtsp-server launch line: appsrc `src` (video access units) -> pay0, and when the
    camera has audio, appsrc `asrc` (audio access units) -> pay1. Clients that cannot keep up
    lose their oldest queued buffers rather than growing a queue."""
    common = "is-live=true format=time do-timestamp=false min-latency=0 leaky-type=downstream"
    if codec == "none":  # audio only: the audio is the first (and only) stream
        if audio is None:
            raise ValueError("a camera without video needs audio")
        pay0 = audio.payloader.replace("name=pay1", "name=pay0")
        return f"( appsrc name=asrc {common} max-bytes=200000 caps={audio.caps} ! {pay0} )"
    if codec == "mjpeg":
        line = (
            f"( appsrc name=src {common} max-bytes=8000000 caps=image/jpeg "
            f"! jpegparse ! rtpjpegpay name=pay0 pt=26"
        )
    else:
        parse, pay = ("h265parse", "rtph265pay") if codec == "h265" else ("h264parse", "rtph264pay")
        line = (
            f"( appsrc name=src {common} max-bytes=8000000 "
            f"caps=video/x-{codec},stream-format=byte-stream,alignment=au "
            f"! {parse} ! {pay} name=pay0 pt=96 config-interval=1"
        )
    if audio is not None:
        line += f" appsrc name=asrc {common} max-bytes=200000 caps={audio.caps} ! {audio.payloader}"
    return line + " )"


# --- B-frames: decode order is not presentation order ---------------------------------------


def composition_offsets(pts_frames: Sequence[int]) -> list[int]:
    """Per access unit in decode order, how many frame periods its PTS lies after its DTS.

    `pts_frames[k]` is the presentation index of the k-th access unit the encoder produced.
    The pacer sends access unit k at schedule slot k and stamps DTS = slot k; then
    PTS = DTS + offset[k] with offset[k] = pts_frames[k] + delay - k, where `delay` (the
    reorder depth) is the smallest shift that keeps every PTS >= its DTS. Without B-frames
    every offset is 0 (PTS == DTS, as before). The indices must be a permutation of
    0..n-1 that keeps whole GOPs together, so every loop repetition continues the timeline.
    """
    n = len(pts_frames)
    if sorted(pts_frames) != list(range(n)):
        raise ValueError("presentation indices must be a permutation of 0..n-1")
    delay = max((k - p for k, p in enumerate(pts_frames)), default=0)
    return [p + delay - k for k, p in enumerate(pts_frames)]


def pts_frames_from_ns(pts_ns: Sequence[int], fps: int) -> list[int]:
    """Presentation indices from an encoder's buffer PTS (any origin), rounded to frames."""
    if not pts_ns:
        return []
    first = min(pts_ns)
    return [round((p - first) * fps / 1e9) for p in pts_ns]


# --- audio loops --------------------------------------------------------------------------------


def audio_loop_seconds(rate: int, samples: int) -> int:
    """The shortest whole number of seconds that is a whole number of access units, so the
    loop's beeps stay on whole seconds of the camera's clock (G.711: 1 s, AAC 16 kHz: 8 s)."""
    return samples // math.gcd(rate, samples)


def beep_pcm(rate: int, seconds: int, freq: int = 1000, beep_ms: int = 100) -> bytes:
    """S16LE mono: a `beep_ms` tone at the start of every second, a quiet hum otherwise.
    Audible sync marks at whole seconds of camera time, and never digital silence (some
    encoders and players treat that as 'no audio')."""
    out = bytearray()
    beep = rate * beep_ms // 1000
    for i in range(rate * seconds):
        loud = i % rate < beep
        amp = 12000 if loud else 300
        f = freq if loud else 440
        value = int(amp * math.sin(2 * math.pi * f * i / rate))
        out += value.to_bytes(2, "little", signed=True)
    return bytes(out)
