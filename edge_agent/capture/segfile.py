"""One segment file being written: the muxer, its temp file, and what it ends with.

The writer decides when a file opens and closes; this holds the PyAV side of one file. Video
is remuxed (the output stream a template copy of the input, never decoded); a packet whose dts
does not go forward is refused here, since the muxer would fail the whole file on it. MPEG-TS
files are written through `TsWriteThrough` (continuity counters continued, hashed on the way).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import av
import av.error
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from edge_agent.sources.nal import missing_parameter_sets

from .tsfile import BUFFER_BYTES, TsWriteThrough

_MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
# Timestamps go to disk as they are: FFmpeg would otherwise shift a whole file whose first
# packet is slightly negative (a B-frame's dts, AAC priming), and that file alone would then
# overlap the next one. The MPEG-TS muxer's own delay keeps such values positive on the wire.
# flush_packets=0: the muxer writes through a file object (tsfile), which FFmpeg would
# otherwise flush after every packet; whole buffers are what makes hashing on the way cheap.
_TS_OPTIONS = {"avoid_negative_ts": "disabled", "flush_packets": "0"}
FILE_ERRORS = (av.error.FFmpegError, OSError, ValueError)


class SegmentFile:
    """Not thread-safe: it belongs to one writer. Methods raise `FILE_ERRORS`."""

    def __init__(
        self, temp: Path, container: str, stream: VideoStream, counters: Mapping[int, int]
    ) -> None:
        self.temp = temp
        self.tsfile: TsWriteThrough | None = None
        self._out: OutputContainer | None = None
        try:
            if container == "mp4":
                self._out = av.open(str(temp), "w", format="mp4", options=_MP4_OPTIONS)
            else:
                self.tsfile = TsWriteThrough(temp, counters)
                self._out = av.open(
                    self.tsfile,
                    "w",
                    format="mpegts",
                    container_options=_TS_OPTIONS,
                    buffer_size=BUFFER_BYTES,
                )
            self.out: OutputContainer = self._out
            self._stream: Stream = self.out.add_stream_from_template(stream)
        except BaseException:
            self.abandon()
            raise
        self._last_dts: int | None = None  # the last video dts muxed into this file

    def mux(self, packet: Packet[Stream]) -> bool:
        """Write a video packet; False if refused (no dts, or one that does not go forward)."""
        dts = packet.dts
        if dts is None or (self._last_dts is not None and dts <= self._last_dts):
            return False
        packet.stream = self._stream
        self.out.mux(packet)
        self._last_dts = dts
        return True

    def finish(self) -> tuple[dict[int, int], tuple[int, str]] | None:
        """Close the file; for MPEG-TS, the counters it ends with and its (size, SHA-256)."""
        self.out.close()
        if self.tsfile is None:
            return None
        self.tsfile.close()
        return self.tsfile.counters, self.tsfile.digest

    def abandon(self) -> None:
        """Close whatever is open, quietly (the temp file is the caller's to discard)."""
        if self._out is not None:
            try:
                self._out.close()
            except FILE_ERRORS:
                pass
        if self.tsfile is not None:
            try:
                self.tsfile.close()
            except OSError:
                pass


def with_parameter_sets(
    packet: Packet[Stream], codec: str, param_sets: dict[int, bytes]
) -> Packet[Stream]:
    """The keyframe with the stream's parameter sets in front if it lacks them, so the
    segment it may open decodes on its own."""
    if not param_sets:
        return packet
    head = bytes(memoryview(packet)[:8192])
    prefix = missing_parameter_sets(codec, head, param_sets)
    if not prefix:
        return packet
    fixed: Packet[Stream] = Packet(prefix + bytes(packet))
    fixed.pts, fixed.dts, fixed.duration = packet.pts, packet.dts, packet.duration
    fixed.time_base = packet.time_base
    fixed.is_keyframe = True
    return fixed
