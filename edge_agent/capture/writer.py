"""The segmenter's shell: remux packets into segment files and commit them to the buffer.

`edge_agent.segmenter` decides; this class does what it says with PyAV (video is remuxed, the
output stream a template copy of the input, never decoded; audio rides along, see
`edge_agent.capture.audio`) and with the buffer. A segment that cannot be written or stored
(full disk, I/O error) is dropped and its time becomes a recorded gap; what is already buffered
is never touched, and capture goes on at the next keyframe.

What reaches a muxer is checked first: a video packet without both timestamps, or whose
timestamps go back, is never handed over (the muxer would fail the whole segment), and a
segment opens only on a keyframe with real timestamps. Every keyframe carries the stream's
parameter sets, so each segment decodes on its own. MPEG-TS continuity counters continue from
one segment file of a camera to the next (`tscontinuity`), so its files form one stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from edge_agent import segmenter
from edge_agent.model import Gap, SegmentFlag, SegmentInfo
from edge_agent.segmenter import Action, ClosedSegment, CutPolicy, CutState, GapSpan, PacketMeta
from edge_agent.sources.nal import (
    find_sps,
    missing_parameter_sets,
    parameter_sets,
    switched_codec,
)

from .audio_lane import AudioLane
from .lograte import LogRate
from .sink import SegmentSink, clean_reason, describe_error
from .timeline import VideoTimeline
from .tsfile import BUFFER_BYTES, TsWriteThrough

__all__ = ["SegmentSink", "SegmentWriter", "clean_reason"]

log = logging.getLogger(__name__)

_MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
# Timestamps go to disk as they are: FFmpeg would otherwise shift a whole file whose first
# packet is slightly negative (a B-frame's dts, AAC priming), and that file alone would then
# overlap the next one. The MPEG-TS muxer's own delay keeps such values positive on the wire.
# flush_packets=0: the muxer writes through a file object (tsfile), which FFmpeg would
# otherwise flush after every packet; whole buffers are what makes hashing on the way cheap.
_TS_OPTIONS = {"avoid_negative_ts": "disabled", "flush_packets": "0"}
EventCallback = Callable[[str, str], None]  # (kind, detail): an AgentEvent for this camera


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
        on_event: EventCallback | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._sink = sink
        self._policy = policy
        self._container = container
        self._on_segment = on_segment
        self._on_gap = on_gap
        self._on_event = on_event
        self._state: CutState | None = None
        self._rebase_log = LogRate()  # a flapping camera clock must not flood the log
        self._timeline = VideoTimeline(Fraction(1, 90_000))
        self._in_stream: VideoStream | None = None
        self._video_index = 0
        self._codec = "h264"
        self._param_sets: dict[int, bytes] = {}
        self._out: OutputContainer | None = None
        self._out_stream: Stream | None = None
        self._temp: Path | None = None
        self._tsfile: TsWriteThrough | None = None  # the open MPEG-TS file, hashed as written
        self._last_dts: int | None = None  # the last video dts muxed into the open file
        self._last_video_us: int | None = None  # the same, in µs after the re-base
        self._audio = AudioLane(camera_id, self._event, container)
        self._cc: dict[int, int] = {}  # MPEG-TS continuity counters, carried across files
        self._gop_warned = False
        self.gop_s: float | None = None  # the camera's measured keyframe interval
        self.untimed_dropped = 0  # video packets never handed to a muxer (no or bad timestamps)
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
        audio: AudioStream | None = None,
    ) -> None:
        """Start a connection (live) or a file; see `segmenter.begin` for the arguments.
        `audio` is the source's audio stream, if it has one."""
        if self._state is not None:
            self.end(truncated=True)
        self._timeline = VideoTimeline(Fraction(stream.time_base or Fraction(1, 90_000)))
        self._in_stream = stream
        self._video_index = stream.index
        self._codec = stream.codec_context.name or "h264"
        self._param_sets = parameter_sets(self._codec, stream.codec_context.extradata)
        self._last_video_us = None
        self._audio.begin(audio)
        self._state = segmenter.begin(
            anchor_us,
            live=live,
            prior_end_us=prior_end_us,
            gap_reason=gap_reason,
            flags=flags,
            skip_before_us=skip_before_us,
            earliest_us=earliest_us,
        )

    def feed(self, packet: Packet[Any], now_us: int | None = None) -> bool:
        """Take one packet (video or audio); True if it was written into a segment."""
        state = self._state
        if state is None:
            raise RuntimeError("SegmentWriter.feed before begin")
        if packet.stream_index != self._video_index:
            return self._audio.feed(packet)
        # Only recordings can change codec mid-stream (an RTSP session's SDP fixes it; a
        # camera reconfigured to another codec reconnects), so only they pay for the search.
        switched = None if state.live else switched_codec(self._codec, bytes(packet))
        if switched is not None:
            # The packet holds the new codec's first keyframe behind the old one's last frame,
            # under the old frame's timestamps: it is dropped, and the new codec starts at its
            # next keyframe (the time between is a recorded gap).
            self._switch_codec(state, switched[0], now_us)
            return False
        pts, dts = packet.pts, packet.dts
        meta = None if pts is None or dts is None else self._meta(packet, pts, dts)
        if meta is None or pts is None or dts is None:
            self.untimed_dropped += 1
            return False
        state, decision = segmenter.step(state, meta, now_us, self._policy)
        self._watch_gop(state)
        timeline = self._timeline
        if decision.offset_us != timeline.offset_us:
            # Live sources are rate-limited; a recording (no arrival time) logs each one.
            times = 1 if now_us is None else self._rebase_log.note(now_us)
            if times is not None:
                log.info(
                    "camera %s: stream timestamps re-based by %.3f s (%d time(s) since the "
                    "last such line); the video goes on",
                    self.camera_id,
                    (decision.offset_us - timeline.offset_us) / 1e6,
                    times,
                )
        first = timeline.lift_tb is None
        placed = timeline.place(pts, dts, packet.duration or 0, state.frame_us, decision.offset_us)
        if placed != (pts, dts):
            packet.pts, packet.dts = placed
        if first:
            self._audio.lift_us = timeline.lift_us
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
            if meta.is_key:
                packet = self._with_parameter_sets(packet)
            written = self._mux(packet)
            if written:
                if meta.dts_us is not None:
                    self._audio.heard_video(meta.dts_us + timeline.offset_us)
            return written
        return False

    def _switch_codec(self, state: CutState, codec: str, now_us: int | None) -> None:
        """The stream changed codec mid-way: what came before is committed, what follows
        starts a DISCONTINUITY segment of the new codec at its first keyframe, as after a
        reconnect (FFmpeg already describes the new codec to the muxer)."""
        old = "H.264" if self._codec == "h264" else "H.265"
        new = "H.264" if codec == "h264" else "H.265"
        detail = f"video codec changed mid-stream from {old} to {new}"
        log.warning("camera %s: %s; a new segment starts", self.camera_id, detail)
        self._event("codec_changed", detail)
        stream, audio = self._in_stream, self._audio.stream
        anchor = state.last_end_us if state.last_end_us is not None else state.anchor_hint_us
        if state.live and now_us is not None:
            anchor = now_us
        self.end(truncated=False)
        if stream is None:
            raise RuntimeError("SegmentWriter: codec switch without a stream")
        self.begin(
            stream,
            anchor,
            live=state.live,
            prior_end_us=self.covered_until_us,
            gap_reason=detail,
            flags=SegmentFlag.DISCONTINUITY,
            audio=audio,
        )
        self._codec, self._param_sets = codec, {}

    def end(self, *, truncated: bool) -> SegmentInfo | None:
        """Finish the connection or file: the open segment is committed (TRUNCATED if cut
        short by a disconnect, a stop or a damaged file)."""
        state = self._state
        self._state = None
        self._in_stream = None
        if state is None:
            return None
        self._audio.flush()
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

    def _meta(self, packet: Packet[Stream], pts: int, dts: int) -> PacketMeta | None:
        """The packet's facts, or None if its timestamps are wrong: an untimed packet never
        reaches a muxer, and a segment opens only on a keyframe with both."""
        if pts < dts:
            return None
        us = self._timeline.us
        sps = None
        is_key = bool(packet.is_keyframe)
        if is_key:
            sps = find_sps(bytes(memoryview(packet)[:8192]), self._codec)
        return PacketMeta(
            pts_us=us(pts),
            dts_us=us(dts),
            duration_us=us(packet.duration or 0),
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
                self._tsfile = TsWriteThrough(temp, self._cc)
                out = av.open(
                    self._tsfile,
                    "w",
                    format="mpegts",
                    container_options=_TS_OPTIONS,
                    buffer_size=BUFFER_BYTES,
                )
            self._out_stream = out.add_stream_from_template(stream)
            self._audio.open(out)
            self._out, self._temp = out, temp
            self._last_dts = None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._temp = temp
            self._fail("cannot start a segment file", exc)

    def _mux(self, packet: Packet[Stream]) -> bool:
        out, out_stream = self._out, self._out_stream
        if out is None or out_stream is None:
            return False
        dts = packet.dts
        if dts is None or (self._last_dts is not None and dts <= self._last_dts):
            self.untimed_dropped += 1  # the muxer would refuse it and fail the whole segment
            return False
        try:
            packet.stream = out_stream
            out.mux(packet)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._fail("cannot write a segment file", exc)
            return False
        self._last_dts = dts
        return True

    def _with_parameter_sets(self, packet: Packet[Stream]) -> Packet[Stream]:
        """The keyframe with the stream's parameter sets in front if it lacks them, so the
        segment it may open decodes on its own."""
        if not self._param_sets:
            return packet
        head = bytes(memoryview(packet)[:8192])
        prefix = missing_parameter_sets(self._codec, head, self._param_sets)
        if not prefix:
            return packet
        fixed: Packet[Stream] = Packet(prefix + bytes(packet))
        fixed.pts, fixed.dts, fixed.duration = packet.pts, packet.dts, packet.duration
        fixed.time_base = packet.time_base
        fixed.is_keyframe = True
        return fixed

    @property
    def audio_cpu_s(self) -> float:
        """Thread CPU spent converting this connection's audio (0 when it passes through)."""
        return self._audio.cpu_s

    def _watch_gop(self, state: CutState) -> None:
        """Measure the camera's GOP; warn once if it is longer than the segment target."""
        interval = state.key_interval_us
        if interval is None or interval <= 0:
            return
        self.gop_s = interval / 1_000_000
        if self._gop_warned or interval <= self._policy.target_us + state.frame_us // 2:
            return
        self._gop_warned = True
        target = self._policy.target_us / 1e6
        detail = (
            f"keyframe every {self.gop_s:.1f} s, longer than the {target:g} s segment target: "
            "segments are cut at keyframes, so each lasts a whole GOP"
        )
        log.warning("camera %s: %s", self.camera_id, detail)
        self._event("long_gop", detail)

    def _event(self, kind: str, detail: str) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, detail)
        except Exception:  # a broken subscriber must not stop capture
            log.exception("camera %s: event subscriber failed on %s", self.camera_id, kind)

    def _commit(self, closed: ClosedSegment) -> SegmentInfo | None:
        out, temp, tsfile = self._out, self._temp, self._tsfile
        self._out, self._out_stream, self._temp, self._tsfile = None, None, None, None
        self._audio.close()
        if out is None or temp is None:
            return None  # its file failed earlier; that time is already being reported
        digest: tuple[int, str] | None = None
        try:
            out.close()
            if tsfile is not None:
                tsfile.close()
                # The counters run on from this file only once it is written whole.
                self._cc, digest = tsfile.counters, tsfile.digest
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._discard(temp)
            self._lost(closed, f"cannot finish segment file: {describe_error(exc)}")
            return None
        try:
            info = self._sink.commit(
                self.camera_id,
                temp,
                closed.start_us,
                max(1, closed.duration_us),
                closed.flags,
                self._container,
                digest=digest,
            )
        except Exception as exc:  # noqa: BLE001 - StoreError/DiskFullError and any I/O failure
            self._discard(temp)
            self._lost(closed, f"cannot store segment: {describe_error(exc)}")
            return None
        self.segments_committed += 1
        self.covered_until_us = max(self.covered_until_us or 0, info.end_us)
        if self._on_segment is not None:
            self._on_segment(info)
        return info

    def _fail(self, what: str, exc: BaseException) -> None:
        """A segment file could not be written: drop it; its time becomes a gap."""
        reason = f"{what}: {describe_error(exc)}"
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
                describe_error(exc),
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
        out, temp, tsfile = self._out, self._temp, self._tsfile
        self._out, self._out_stream, self._temp, self._tsfile = None, None, None, None
        self._audio.close()
        if out is not None:
            try:
                out.close()
            except (av.error.FFmpegError, OSError, ValueError):
                pass
        if tsfile is not None:
            try:
                tsfile.close()
            except OSError:
                pass
        if temp is not None:
            self._discard(temp)

    def _discard(self, temp: Path) -> None:
        try:
            self._sink.discard(temp)
        except Exception as exc:  # noqa: BLE001 - the buffer removes stray temp files at open
            log.warning(
                "camera %s: cannot discard %s: %s", self.camera_id, temp, describe_error(exc)
            )
