"""A GB/T 28181 channel's frames as the live hub's MPEG-TS chunks (what an agent's live tee
sends), so console viewers, HLS and cascades watch a device channel exactly as they watch an
agent camera.

Remuxed per frame by PyAV with `flush_packets` (no decoding; each frame's bytes leave when it
arrives). Output starts at a keyframe and FFmpeg's MPEG-TS muxer repeats PAT/PMT before every
video keyframe, so every keyframe chunk is a valid start for a new viewer (the hub caches the
GOP from there). `reset` starts over for a new INVITE session (its PTS has another origin).
Audio: when the device's PSM lists an audio stream at the keyframe the output starts with
(`audio_hint`), the output has an AAC track too (G.711 A-law/μ-law encoded as in the recorded
segments, `tsmux.AudioOut`; AAC copied), so HLS players, VLC and upper platforms hear it;
audio bytes leave as they are muxed (chunks that are not keyframe starts). Without a hint at
that keyframe the output stays video only until it starts over.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import av

from controller.gb28181.ps import VIDEO_TYPES, AccessUnit, codec_of
from controller.gb28181.tsmux import DEVICE_AUDIO, PTS_WRAP, TB, AudioOut

log = logging.getLogger("vigil.gb28181")
Emit = Callable[[bytes, bool, str], None]  # (ts bytes, starts at a keyframe, codec)
AudioHint = Callable[[], int | None]  # the audio stream type the device's PSM lists, if any


def _no_audio() -> int | None:
    return None


class LiveTs:
    def __init__(self, emit: Emit, audio_hint: AudioHint = _no_audio) -> None:
        self._emit = emit
        self._audio_hint = audio_hint
        self._audio: AudioOut | None = None
        self._key_held = False
        self._sink = io.BytesIO()
        self._out: Any = None
        self._stream: Any = None
        self._codec = ""
        self._base = 0
        self._last: int | None = None
        self.chunks = 0

    def unit(self, au: AccessUnit) -> None:
        if au.pts is None:
            return
        if au.stream_type in DEVICE_AUDIO:
            if self._audio is not None:
                try:
                    self._audio.add(au)
                except av.error.FFmpegError as exc:  # bad audio: the video goes on alone
                    log.warning("GB live audio: %s; dropped until the stream starts over", exc)
                    self._audio = None
                self._flush(False)
            return
        if au.stream_type not in VIDEO_TYPES:
            return
        if self._out is None:
            if not au.key:
                return  # a viewer can only start at a keyframe
            self._open(au)
        dts_abs = au.dts if au.dts is not None else au.pts
        dts = (dts_abs - self._base) % PTS_WRAP
        if self._last is not None and dts <= self._last:
            return  # the muxer refuses non-increasing DTS: a device glitch, skip the frame
        packet = av.Packet(au.data)
        packet.dts = dts
        packet.pts = (au.pts - self._base) % PTS_WRAP
        packet.time_base = TB
        packet.stream = self._stream
        packet.is_keyframe = au.key
        try:
            self._out.mux(packet)
        except av.error.FFmpegError as exc:  # bad input from a device: start over at a key
            log.warning("GB live remux: %s; waiting for the next keyframe", exc)
            self.reset()
            return
        self._last = dts
        self._flush(au.key)

    def _flush(self, key: bool) -> None:
        """Emit what the muxer wrote since the last chunk. A keyframe the muxer held back
        (waiting to interleave with the first audio) marks the chunk it comes out in."""
        key = key or self._key_held
        data = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        self._key_held = key and not data
        if data:
            self.chunks += 1
            self._emit(data, key, self._codec)

    def _open(self, au: AccessUnit) -> None:
        self._sink = io.BytesIO()
        # With audio, FFmpeg's interleaving would hold video back for the AAC encoder's delay
        # (~130 ms and more) unless told to write what it has at once.
        options = {"flush_packets": "1", "max_interleave_delta": "1"}
        self._out = av.open(self._sink, "w", format="mpegts", options=options)
        self._codec = codec_of(au.stream_type)
        self._stream = self._out.add_stream(self._codec)
        self._base = au.dts if au.dts is not None else au.pts or 0
        self._last = None
        self._key_held = False
        kind = self._audio_hint()
        self._audio = None
        if kind is not None and kind in DEVICE_AUDIO:
            self._audio = AudioOut(self._out, kind, self._base, live=True)

    def reset(self) -> None:
        """Forget the stream: the next output starts at a keyframe with PAT/PMT."""
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: S110 - a trailer nobody reads
                pass
        self._out = None
        self._audio = None

    close = reset
