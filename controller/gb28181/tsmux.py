"""A recorded segment's frames and audio as MPEG-TS (PyAV, FFmpeg's muxer).

Video is remuxed (no decoding). Audio: GB devices put G.711 (A-law, PSM stream type 0x90; μ-law,
0x91, on some NVRs) or AAC (0x0F, ADTS) in their PS. AAC is remuxed as it is. G.711 has no
MPEG-TS stream type:
FFmpeg writes it as private data (0x06) that no player, ffprobe included, reads as audio; so
it is decoded (a table lookup) and encoded to AAC at its own 8 kHz, mono, ~10 µs of CPU per
20 ms packet, which browsers (mpegts.js, HLS) and the playback remux all take. Each segment
has its own encoder, so a segment's audio starts with the encoder's priming (~128 ms at
8 kHz) and the boundary between two segments is not sample-exact.

Times: all relative to the segment's first video frame (`base`); audio from before it is
left out (a segment starts at a keyframe).
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av

from controller.gb28181.ps import AAC, G711A, VIDEO_TYPES, AccessUnit, codec_of

PTS_WRAP = 1 << 33
TB = Fraction(1, 90_000)
G711_RATE = 8000
AUDIO_BITRATE = 32_000
G711U = 0x91  # G.711 μ-law in a device's PSM (the cascade never sends it: no constant in ps)
# The audio a device's PS may carry -> the FFmpeg decoder of what is encoded to AAC (None:
# AAC, remuxed as it is).
DEVICE_AUDIO: dict[int, str | None] = {AAC: None, G711A: "pcm_alaw", G711U: "pcm_mulaw"}


class AudioOut:
    """One output's audio stream (a recorded segment's, or a live feed's: `livets`): AAC
    copied, or G.711 (A-law or μ-law) encoded to AAC."""

    def __init__(self, out: Any, stream_type: int, base: int, live: bool = False) -> None:
        self.out, self.base, self.type = out, base, stream_type
        # Live: the encoder's priming packet (before 0) is not sent: in a live MPEG-TS it
        # reads as a wrapped timestamp (~26.5 h ahead), and mpegts.js drops the audio after it.
        self.live = live
        self.stream: Any = None
        self.decoder: Any = None
        self.resampler: Any = None
        decoder = DEVICE_AUDIO[stream_type]
        if decoder is None:
            self.stream = out.add_stream("aac")
        else:
            self.stream = out.add_stream("aac", rate=G711_RATE, layout="mono")
            self.stream.bit_rate = AUDIO_BITRATE
            self.decoder = av.CodecContext.create(decoder, "r")
            self.decoder.sample_rate, self.decoder.layout = G711_RATE, "mono"
            self.resampler = av.AudioResampler(format=self.stream.format, layout="mono",
                                               rate=G711_RATE)  # fmt: skip

    def add(self, au: AccessUnit) -> None:
        if au.stream_type != self.type or au.pts is None:
            return  # a second audio codec in one stream: not kept
        rel = (au.pts - self.base) % PTS_WRAP
        if rel >= PTS_WRAP // 2:
            return  # before the segment's first frame
        if self.decoder is None:
            packet = av.Packet(au.data)
            packet.pts = packet.dts = rel
            packet.time_base = TB
            packet.stream = self.stream
            self.out.mux(packet)
            return
        for frame in self.decoder.decode(av.Packet(au.data)):
            frame.pts = rel * G711_RATE // 90_000
            frame.time_base = Fraction(1, G711_RATE)
            for resampled in self.resampler.resample(frame):
                self._encode(resampled)

    def _encode(self, frame: Any) -> None:
        for packet in self.stream.encode(frame):
            if self.live and packet.pts is not None and packet.pts < 0:
                continue
            self.out.mux(packet)

    def close(self) -> None:
        if self.decoder is not None:
            self._encode(None)


def mux_ts(units: list[AccessUnit]) -> bytes:
    """The units (starting with a video keyframe) as MPEG-TS: video remuxed, audio kept."""
    video = [u for u in units if u.stream_type in VIDEO_TYPES]
    sink = io.BytesIO()
    with av.open(sink, "w", format="mpegts") as out:
        stream = out.add_stream(codec_of(video[0].stream_type))
        base = video[0].dts if video[0].dts is not None else video[0].pts or 0
        kinds = [u.stream_type for u in units if u.stream_type in DEVICE_AUDIO]
        audio = AudioOut(out, kinds[0], base) if kinds else None
        for au in units:
            if au.stream_type not in VIDEO_TYPES:
                if audio is not None:
                    audio.add(au)
                continue
            packet = av.Packet(au.data)
            packet.pts = ((au.pts or 0) - base) % PTS_WRAP
            packet.dts = ((au.dts if au.dts is not None else au.pts or 0) - base) % PTS_WRAP
            packet.time_base = TB
            packet.stream = stream
            packet.is_keyframe = au.key
            out.mux(packet)
        if audio is not None:
            audio.close()
    return sink.getvalue()
