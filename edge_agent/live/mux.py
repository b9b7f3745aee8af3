"""Packets of a running capture, remuxed to MPEG-TS as they arrive (PyAV, no transcoding).

Why remux per packet with `flush_packets`: the controller must get each frame's bytes the
moment the camera delivers it (live latency), not when a 32 KiB I/O buffer fills. Output
starts at a keyframe (a decoder cannot start anywhere else), and FFmpeg's MPEG-TS muxer
repeats PAT/PMT before every video keyframe, so any chunk that starts a GOP is a valid start
for a new viewer. The caller's packet is copied (its data belongs to the segment writer,
which muxes it next).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import av
from av.packet import Packet
from av.video.stream import VideoStream

Emit = Callable[[bytes, bool], bool]  # (ts bytes, starts at a keyframe) -> accepted


class _Collector(io.RawIOBase):
    """The muxer's output file: keeps what one `mux` call writes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.parts.append(data)
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class TsMuxer:
    """One camera's live MPEG-TS, from the stream of the capture session it was opened on.

    `feed` emits the TS bytes of each packet; until a keyframe (at the start, and after
    `emit` refused a chunk because the uplink is behind) packets are skipped, so what the
    controller gets always resumes at a keyframe and never queues stale video.
    """

    def __init__(self, stream: VideoStream, emit: Emit) -> None:
        self._emit = emit
        self._file = _Collector()
        self._out = av.open(self._file, "w", format="mpegts", options={"flush_packets": "1"})
        self._stream = self._out.add_stream_from_template(stream)
        self._waiting_key = True
        self._last_dts: int | None = None

    def feed(self, packet: Packet[Any]) -> None:
        key = bool(packet.is_keyframe)
        if self._waiting_key and not key:
            return
        if packet.dts is not None and self._last_dts is not None and packet.dts <= self._last_dts:
            return  # the muxer refuses non-increasing DTS; a camera glitch, skip the packet
        copy = Packet(bytes(packet))
        copy.pts, copy.dts = packet.pts, packet.dts
        copy.time_base = packet.time_base
        copy.is_keyframe = key
        copy.stream = self._stream
        self._out.mux(copy)
        self._last_dts = packet.dts
        data = self._file.take()
        if not data:
            return
        self._waiting_key = not self._emit(data, key)

    def close(self) -> None:
        try:
            self._out.close()
        except Exception:  # noqa: S110 - a half-written trailer is of no use to anyone live
            pass
