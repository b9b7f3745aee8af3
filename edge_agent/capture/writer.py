"""The segmenter's shell: remux packets into segment files and commit them to the buffer.

`edge_agent.segmenter` decides; this class does what it says with PyAV (remux only, the output
stream is a template copy of the input, nothing is decoded) and with the buffer. A segment that
cannot be written or stored (full disk, I/O error) is dropped and its time becomes a recorded
gap; what is already buffered is never touched, and capture goes on at the next keyframe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import av.error
from av.container import OutputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from edge_agent import segmenter
from edge_agent.model import Gap, SegmentFlag, SegmentInfo, SegmentState
from edge_agent.redact import redact_text
from edge_agent.segmenter import Action, ClosedSegment, CutPolicy, CutState, GapSpan, PacketMeta
from edge_agent.sources.h264 import find_sps

log = logging.getLogger(__name__)

_MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
_MAX_REASON = 200


class SegmentSink(Protocol):
    """The part of `edge_agent.store.SegmentBuffer` capture uses (it is thread-safe)."""

    def temp_path(self, camera_id: str, container: str = "ts") -> Path: ...

    def commit(
        self,
        camera_id: str,
        temp_path: Path,
        start_us: int,
        duration_us: int,
        flags: SegmentFlag = SegmentFlag.NONE,
        container: str = "ts",
    ) -> SegmentInfo: ...

    def discard(self, temp_path: Path) -> None: ...

    def record_gap(self, gap: Gap) -> None: ...

    def segments(
        self,
        camera_id: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        state: SegmentState | None = None,
    ) -> list[SegmentInfo]: ...

    def gaps(
        self, camera_id: str | None = None, start_us: int | None = None, end_us: int | None = None
    ) -> list[Gap]: ...


def clean_reason(text: str) -> str:
    """A gap reason the buffer accepts: printable, one line, at most 200 characters."""
    line = "".join(ch if ch.isprintable() else " " for ch in redact_text(text)).strip()
    return (line or "unknown")[:_MAX_REASON]


class SegmentWriter:
    """Feeds one camera's packets through the cut rules into committed segments.

    Not thread-safe: one writer belongs to one capture worker thread.
    """

    def __init__(
        self,
        camera_id: str,
        sink: SegmentSink,
        policy: CutPolicy,
        container: str = "ts",
        on_segment: Callable[[SegmentInfo], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._sink = sink
        self._policy = policy
        self._container = container
        self._on_segment = on_segment
        self._on_gap = on_gap
        self._state: CutState | None = None
        self._offset_us = 0  # the segmenter's timestamp re-base, in µs and in stream ticks
        self._offset_tb = 0
        self._in_stream: VideoStream | None = None
        self._tb = (1, 90_000)
        self._out: OutputContainer | None = None
        self._out_stream: VideoStream | None = None
        self._temp: Path | None = None
        # Where this camera's record (segments and recorded gaps) reaches: the next connection's
        # first segment starts no earlier, and any time in between is reported as a gap.
        self.covered_until_us: int | None = None
        self.segments_committed = 0

    # -- lifecycle of one connection or file ------------------------------------------------

    def begin(
        self,
        stream: VideoStream,
        anchor_us: int,
        *,
        live: bool,
        prior_end_us: int | None = None,
        gap_reason: str = "",
        flags: SegmentFlag = SegmentFlag.NONE,
        skip_before_us: int | None = None,
        earliest_us: int | None = None,
    ) -> None:
        """Start a connection (live) or a file; see `segmenter.begin` for the arguments."""
        if self._state is not None:
            self.end(truncated=True)
        tb = Fraction(stream.time_base or Fraction(1, 90_000))
        self._tb = (tb.numerator * 1_000_000, tb.denominator)
        self._in_stream = stream
        self._offset_us = self._offset_tb = 0
        self._state = segmenter.begin(
            anchor_us,
            live=live,
            prior_end_us=prior_end_us,
            gap_reason=gap_reason,
            flags=flags,
            skip_before_us=skip_before_us,
            earliest_us=earliest_us,
        )

    def feed(self, packet: Packet[VideoStream], now_us: int | None = None) -> bool:
        """Take one packet; True if it was written into a segment."""
        state = self._state
        if state is None:
            raise RuntimeError("SegmentWriter.feed before begin")
        meta = self._meta(packet)
        if meta is None:
            return False
        state, decision = segmenter.step(state, meta, now_us, self._policy)
        if decision.offset_us != self._offset_us:
            log.info(
                "camera %s: stream timestamps re-based by %.3f s; the video goes on",
                self.camera_id,
                (decision.offset_us - self._offset_us) / 1e6,
            )
            self._offset_us = decision.offset_us
            num, den = self._tb
            self._offset_tb = round(decision.offset_us * den / num)
        if self._offset_tb:
            packet.pts = None if packet.pts is None else packet.pts + self._offset_tb
            packet.dts = None if packet.dts is None else packet.dts + self._offset_tb
        self._state = state
        # Gaps before the segment they precede: a crash between the two then leaves a gap
        # that the next run continues from, never a hole that nothing accounts for.
        for gap in decision.gaps:
            self._record_gap(gap)
        if decision.closed is not None:
            self._commit(decision.closed)
        if decision.action in (Action.OPEN, Action.CUT):
            self._open()
        if decision.action in (Action.OPEN, Action.CUT, Action.WRITE) and self._out is not None:
            return self._mux(packet)
        return False

    def end(self, *, truncated: bool) -> SegmentInfo | None:
        """Finish the connection or file: the open segment is committed (TRUNCATED if cut
        short by a disconnect, a stop or a damaged file)."""
        state = self._state
        self._state = None
        self._in_stream = None
        if state is None:
            return None
        _, closed, gaps = segmenter.finish(state, truncated=truncated)
        for gap in gaps:
            self._record_gap(gap)
        if closed is None:
            self._drop_output()
            return None
        return self._commit(closed)

    def cancel(self) -> None:
        """Drop the open segment unwritten (its source can be read again, e.g. a file)."""
        self._state = None
        self._in_stream = None
        self._drop_output()

    @property
    def segment_open(self) -> bool:
        return self._out is not None

    # -- internals --------------------------------------------------------------------------

    def _meta(self, packet: Packet[VideoStream]) -> PacketMeta | None:
        num, den = self._tb
        pts, dts = packet.pts, packet.dts
        if pts is None:
            if dts is None:
                return None
            pts = dts
        sps = None
        is_key = bool(packet.is_keyframe)
        if is_key:
            sps = find_sps(bytes(memoryview(packet)[:8192]))
        return PacketMeta(
            pts_us=pts * num // den,
            dts_us=None if dts is None else dts * num // den,
            duration_us=(packet.duration or 0) * num // den,
            is_key=is_key,
            sps=sps,
        )

    def _open(self) -> None:
        self._drop_output()
        stream = self._in_stream
        if stream is None:
            return
        temp: Path | None = None
        try:
            temp = self._sink.temp_path(self.camera_id, self._container)
            if self._container == "mp4":
                out = av.open(str(temp), "w", format="mp4", options=_MP4_OPTIONS)
            else:
                out = av.open(str(temp), "w", format="mpegts")
            self._out_stream = out.add_stream_from_template(stream)
            self._out, self._temp = out, temp
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._temp = temp
            self._fail("cannot start a segment file", exc)

    def _mux(self, packet: Packet[VideoStream]) -> bool:
        out, out_stream = self._out, self._out_stream
        if out is None or out_stream is None:
            return False
        try:
            packet.stream = out_stream
            out.mux(packet)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._fail("cannot write a segment file", exc)
            return False
        return True

    def _commit(self, closed: ClosedSegment) -> SegmentInfo | None:
        out, temp = self._out, self._temp
        self._out, self._out_stream, self._temp = None, None, None
        if out is None or temp is None:
            return None  # its file failed earlier; that time is already being reported
        try:
            out.close()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._discard(temp)
            self._lost(closed, f"cannot finish segment file: {_describe(exc)}")
            return None
        try:
            info = self._sink.commit(
                self.camera_id,
                temp,
                closed.start_us,
                max(1, closed.duration_us),
                closed.flags,
                self._container,
            )
        except Exception as exc:  # noqa: BLE001 - StoreError/DiskFullError and any I/O failure
            self._discard(temp)
            self._lost(closed, f"cannot store segment: {_describe(exc)}")
            return None
        self.segments_committed += 1
        self.covered_until_us = max(self.covered_until_us or 0, info.end_us)
        if self._on_segment is not None:
            self._on_segment(info)
        return info

    def _fail(self, what: str, exc: BaseException) -> None:
        """A segment file could not be written: drop it; its time becomes a gap."""
        reason = f"{what}: {_describe(exc)}"
        log.error("camera %s: %s; dropping this segment", self.camera_id, reason)
        self._drop_output()
        if self._state is not None:
            self._state = segmenter.abandon(self._state, clean_reason(reason))

    def _lost(self, closed: ClosedSegment, reason: str) -> None:
        log.error(
            "camera %s: segment [%d, %d) lost: %s",
            self.camera_id,
            closed.start_us,
            closed.end_us,
            reason,
        )
        if closed.duration_us > 0:
            self._record_gap(GapSpan(closed.start_us, closed.end_us, reason))

    def _record_gap(self, span: GapSpan) -> None:
        gap = Gap(self.camera_id, span.start_us, span.end_us, clean_reason(span.reason))
        try:
            self._sink.record_gap(gap)
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop capture
            log.error(
                "camera %s: cannot record gap [%d, %d) (%s): %s",
                self.camera_id,
                gap.start_us,
                gap.end_us,
                gap.reason,
                _describe(exc),
            )
        else:
            self.covered_until_us = max(self.covered_until_us or 0, gap.end_us)
        log.warning(
            "camera %s: gap of %.3f s [%d, %d): %s",
            self.camera_id,
            (gap.end_us - gap.start_us) / 1e6,
            gap.start_us,
            gap.end_us,
            gap.reason,
        )
        if self._on_gap is not None:
            self._on_gap(gap)

    def _drop_output(self) -> None:
        out, temp = self._out, self._temp
        self._out, self._out_stream, self._temp = None, None, None
        if out is not None:
            try:
                out.close()
            except (av.error.FFmpegError, OSError, ValueError):
                pass
        if temp is not None:
            self._discard(temp)

    def _discard(self, temp: Path) -> None:
        try:
            self._sink.discard(temp)
        except Exception as exc:  # noqa: BLE001 - the buffer removes stray temp files at open
            log.warning("camera %s: cannot discard %s: %s", self.camera_id, temp, _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return redact_text(exc.strerror or type(exc).__name__)
    return redact_text(str(exc) or type(exc).__name__)
