"""A camera's audio in its segments: AAC passes through; G.711 is converted to AAC.

Why convert G.711 (PCMA/PCMU, 8 kHz, the usual audio of Chinese cameras): MPEG-TS has no way
to carry it and browsers (MSE) cannot play it, so it would be lost either way. Decoding G.711
is a table lookup and AAC at 8 kHz mono is cheap (about 0.2 % of a core per camera, measured);
it is the only transcoding the agent does. Video is never transcoded.

Audio rides on the video's segments: an audio packet goes into the segment open when it
arrives (none before the first video keyframe). Its timestamps follow the video's clock: when
they stray from the video's by more than `ALIGN_US` (an RTSP session re-basing each stream's
clock on its first RTCP report, a file's timestamps jumping) they are re-aligned to it, so the
two never drift apart by seconds. The rules are pure functions (`plan_for`, `change_of`,
`aligned_offset`); `AudioTrack` is the PyAV adapter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import av.error
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

log = logging.getLogger(__name__)

COPY_CODECS = frozenset({"aac", "mp2", "mp3", "ac3"})  # MPEG-TS and MP4 carry these as they are
CONVERT_CODECS = frozenset({"pcm_alaw", "pcm_mulaw"})  # G.711: converted to AAC
ALIGN_US = 1_000_000  # audio this far from the video's clock is re-aligned to it
SILENT_US = 5_000_000  # no audio for this long while video flows: the camera's audio stopped
_AAC_BPS_PER_CHANNEL = 32_000

Plan = Literal["copy", "aac", "drop"]


@dataclass(frozen=True, slots=True)
class AudioFormat:
    codec: str
    sample_rate: int
    channels: int

    def __str__(self) -> str:
        return f"{self.codec} {self.sample_rate} Hz {self.channels} ch"


def plan_for(fmt: AudioFormat, container: str = "ts", has_config: bool = True) -> Plan:
    """What to do with a camera's audio: keep it, convert it to AAC, or drop it (unknown).

    AAC without its configuration (ADTS, as MPEG-TS recordings carry it) cannot be copied into
    MP4 segments (the MP4 muxer needs the configuration up front): those are converted too."""
    if fmt.codec == "aac" and container == "mp4" and not has_config:
        return "aac"
    if fmt.codec in COPY_CODECS:
        return "copy"
    if fmt.codec in CONVERT_CODECS and fmt.sample_rate > 0:
        return "aac"
    return "drop"


def change_of(before: AudioFormat | None, after: AudioFormat | None) -> tuple[str, str] | None:
    """The event (kind, detail) for a camera's audio changing between connections or files."""
    if before == after:
        return None
    if after is None:
        return "audio_lost", f"the camera no longer sends audio (it sent {before})"
    if before is None:
        return "audio_changed", f"the camera now sends audio: {after}"
    return "audio_changed", f"audio changed from {before} to {after}"


def aligned_offset(audio_us: int, video_us: int | None, offset_us: int) -> int:
    """The offset to add to audio timestamps so they stay on the video's clock."""
    if video_us is None or abs(audio_us + offset_us - video_us) <= ALIGN_US:
        return offset_us
    return video_us - audio_us


def format_of(stream: AudioStream) -> AudioFormat:
    cc = stream.codec_context
    return AudioFormat(cc.name or "unknown", int(cc.sample_rate or 0), int(cc.channels or 0))


class AudioTrack:
    """One connection's (or file's) audio stream, turned into packets for segment files."""

    def __init__(self, stream: AudioStream, container: str = "ts") -> None:
        self.stream = stream
        self.format = format_of(stream)
        config = bool(stream.codec_context.extradata)
        self.plan: Plan = plan_for(self.format, container, config)
        self.cpu_s = 0.0  # thread CPU spent converting (G.711 -> AAC)
        self._rate = self.format.sample_rate or 8000
        self._layout = "stereo" if self.format.channels == 2 else "mono"
        self._enc: AudioCodecContext | None = None
        self._resampler: AudioResampler | None = None
        self._next_pts: int | None = None

    def add_to(self, out: OutputContainer) -> Stream | None:
        """This track's stream in a new segment file (None: the audio is dropped)."""
        if self.plan == "copy":
            return out.add_stream_from_template(self.stream)
        if self.plan == "aac":
            stream = out.add_stream("aac", rate=self._rate, layout=self._layout)
            stream.codec_context.bit_rate = _AAC_BPS_PER_CHANNEL * max(1, self.format.channels)
            return stream
        return None

    def convert(self, packet: Packet[Stream]) -> list[Packet[Stream]]:
        """The packets to mux for one input packet (itself when copied)."""
        if self.plan == "copy":
            return [packet]
        if self.plan != "aac":
            return []
        began = time.thread_time()
        try:
            return self._to_aac(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("audio conversion failed (%s); starting it afresh", exc)
            self._enc = self._resampler = None
            self._next_pts = None
            return []
        finally:
            self.cpu_s += time.thread_time() - began

    def _to_aac(self, packet: Packet[Stream]) -> list[Packet[Stream]]:
        tb = Fraction(1, self._rate)
        out: list[Packet[Stream]] = []
        for frame in self.stream.codec_context.decode(packet):
            if frame.pts is None or frame.time_base is None:
                continue
            pts = round(frame.pts * frame.time_base / tb)
            # A jump in the input (a gap, a re-aligned clock): a fresh encoder, so the AAC
            # timestamps say where the sound really is instead of running on from before.
            if self._enc is None or self._next_pts is None or abs(pts - self._next_pts) > 1:
                out += self._flush()
                self._enc = self._new_encoder()
                self._resampler = AudioResampler(
                    format="fltp", layout=self._layout, rate=self._rate
                )
            assert self._resampler is not None
            self._next_pts = pts + frame.samples
            for ready in self._resampler.resample(frame):
                ready.pts, ready.time_base = pts, tb
                pts += ready.samples
                out += self._enc.encode(ready)
        return out

    def flush(self) -> list[Packet[Stream]]:
        """The converter's buffered packets (the end of a connection or file)."""
        if self.plan != "aac":
            return []
        self._next_pts = None
        return self._flush()

    def _new_encoder(self) -> AudioCodecContext:
        enc = av.CodecContext.create("aac", "w")
        assert isinstance(enc, AudioCodecContext)
        enc.sample_rate = self._rate
        enc.layout = self._layout
        enc.format = "fltp"
        enc.bit_rate = _AAC_BPS_PER_CHANNEL * max(1, self.format.channels)
        enc.time_base = Fraction(1, self._rate)
        enc.open()
        return enc

    def _flush(self) -> list[Packet[Stream]]:
        enc, self._enc = self._enc, None
        if enc is None:
            return []
        try:
            return list(enc.encode(None))
        except (av.error.FFmpegError, ValueError):
            return []
