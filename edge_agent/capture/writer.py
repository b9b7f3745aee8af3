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
from typing import Any

from av.audio.stream import AudioStream
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from edge_agent import segmenter
from edge_agent.model import Gap, SegmentFlag, SegmentInfo
from edge_agent.segmenter import Action, ClosedSegment, CutPolicy, CutState, PacketMeta
from edge_agent.segmenter.plain import PlainRun
from edge_agent.sources.nal import find_sps, parameter_sets, switched_codec

from .audio_lane import AudioLane
from .lograte import LogRate
from .record import CameraRecord, EventCallback
from .segfile import FILE_ERRORS, SegmentFile, with_parameter_sets
from .sink import SegmentSink, clean_reason, describe_error
from .timeline import VideoTimeline

__all__ = ["SegmentSink", "SegmentWriter", "clean_reason"]

log = logging.getLogger(__name__)


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
        self._policy = policy
        self._container = container
        self._record = CameraRecord(camera_id, sink, container, on_segment, on_gap, on_event)
        self._state: CutState | None = None  # as of the last full step; see `_settled`
        self._run: PlainRun | None = None  # plain frames since then (segmenter/plain.py)
        self._rebase_log = LogRate()  # a flapping camera clock must not flood the log
        self._timeline = VideoTimeline(Fraction(1, 90_000))
        self._in_stream: VideoStream | None = None
        self._video_index = 0
        self._codec = "h264"
        self._param_sets: dict[int, bytes] = {}
        self._file: SegmentFile | None = None  # the open segment file
        self._audio = AudioLane(camera_id, self._record.event, container)
        self._cc: dict[int, int] = {}  # MPEG-TS continuity counters, carried across files
        self._gop_warned = False
        self.gop_s: float | None = None  # the camera's measured keyframe interval
        self.untimed_dropped = 0  # video packets never handed to a muxer (no or bad timestamps)

    @property
    def covered_until_us(self) -> int | None:
        """Where this camera's record (segments and recorded gaps) reaches: the next
        connection's first segment starts no earlier, and any time in between is a gap."""
        return self._record.covered_until_us

    @covered_until_us.setter
    def covered_until_us(self, value: int | None) -> None:
        self._record.covered_until_us = value

    @property
    def segments_committed(self) -> int:
        return self._record.segments_committed

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
        self._run = None
        self._timeline = VideoTimeline(Fraction(stream.time_base or Fraction(1, 90_000)))
        self._in_stream = stream
        self._video_index = stream.index
        self._codec = stream.codec_context.name or "h264"
        self._param_sets = parameter_sets(self._codec, stream.codec_context.extradata)
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
            self._switch_codec(self._settled(), switched[0], now_us)
            return False
        pts, dts = packet.pts, packet.dts
        if pts is not None and dts is not None and pts >= dts and not packet.is_keyframe:
            written = self._plain(packet, pts, dts, now_us)
            if written is not None:
                return written
        state = self._settled()
        meta = None if pts is None or dts is None else self._meta(packet, pts, dts)
        if meta is None or pts is None or dts is None:
            self.untimed_dropped += 1
            return False
        state, decision = segmenter.step(state, meta, now_us, self._policy)
        self._watch_gop(state.key_interval_us, state.frame_us)
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
            self._record.gap(gap)
        if decision.closed is not None:
            self._commit(decision.closed)
        if decision.action in (Action.OPEN, Action.CUT):
            self._open()
        if decision.action in (Action.OPEN, Action.CUT, Action.WRITE) and self._file is not None:
            if meta.is_key:
                packet = with_parameter_sets(packet, self._codec, self._param_sets)
            written = self._mux(packet)
            if written:
                if meta.dts_us is not None:
                    self._audio.heard_video(meta.dts_us + timeline.offset_us)
            return written
        return False

    def _plain(self, packet: Packet[Any], pts: int, dts: int, now_us: int | None) -> bool | None:
        """A plain frame (segmenter/plain.py) written as `feed` would, without a segmenter
        state of its own; None if it is not plain (the full path takes it, nothing changed)."""
        timeline, file = self._timeline, self._file
        run = self._run
        if run is None:
            state = self._state
            if state is None:
                return None
            run = self._run = PlainRun.start(state, self._policy)
            if run is None:
                return None
        # The timeline's re-base and lift are placed by the full path, the file opened by it.
        if file is None or timeline.lift_tb is None or timeline.offset_us != run.offset_us:
            return None
        # Inline rather than through helpers: this runs for 24 of 25 frames of every camera.
        num, den = timeline.num, timeline.den  # ticks -> µs, as `VideoTimeline.us`
        duration = packet.duration or 0
        dts_us = dts * num // den
        if not run.take(pts * num // den, dts_us, duration * num // den, now_us):
            return None
        # `_watch_gop` for the run's interval already ran at the full step the run began
        # from (the same interval, so the same gop_s); only the warning can still come.
        interval = run.base.key_interval_us
        if not self._gop_warned and interval is not None:
            if interval > self._policy.target_us + run.frame_us // 2:
                self._watch_gop(interval, run.frame_us)
        placed = timeline.place(pts, dts, duration, run.frame_us, run.offset_us)
        if placed != (pts, dts):
            packet.pts, packet.dts = placed
        try:
            written = file.mux(packet)
        except FILE_ERRORS as exc:
            self._fail("cannot write a segment file", exc)
            return False
        if not written:
            self.untimed_dropped += 1  # the muxer would refuse it and fail the whole segment
            return False
        self._audio.heard_video(dts_us + timeline.offset_us)
        return True

    def _settled(self) -> CutState:
        """The segmenter's state with any plain frames since the last full step folded in
        (every reader of the state but the plain path goes through here)."""
        run, self._run = self._run, None
        if run is not None:
            self._state = run.fold()
        if self._state is None:
            raise RuntimeError("SegmentWriter: no connection begun")
        return self._state

    def _switch_codec(self, state: CutState, codec: str, now_us: int | None) -> None:
        """The stream changed codec mid-way: what came before is committed, what follows
        starts a DISCONTINUITY segment of the new codec at its first keyframe, as after a
        reconnect (FFmpeg already describes the new codec to the muxer)."""
        old = "H.264" if self._codec == "h264" else "H.265"
        new = "H.264" if codec == "h264" else "H.265"
        detail = f"video codec changed mid-stream from {old} to {new}"
        log.warning("camera %s: %s; a new segment starts", self.camera_id, detail)
        self._record.event("codec_changed", detail)
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
        state = self._settled() if self._state is not None else None
        self._state = None
        self._in_stream = None
        if state is None:
            return None
        self._audio.flush()
        _, closed, gaps = segmenter.finish(state, truncated=truncated)
        for gap in gaps:
            self._record.gap(gap)
        if closed is None:
            self._drop_output()
            return None
        return self._commit(closed)

    def cancel(self) -> None:
        """Drop the open segment unwritten (its source can be read again, e.g. a file)."""
        self._state, self._run = None, None
        self._in_stream = None
        self._drop_output()

    @property
    def segment_open(self) -> bool:
        return self._file is not None

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
        try:
            temp = self._record.sink.temp_path(self.camera_id, self._container)
        except FILE_ERRORS as exc:
            self._fail("cannot start a segment file", exc)
            return
        try:
            self._file = SegmentFile(temp, self._container, stream, self._cc)
            self._audio.open(self._file.out)
        except FILE_ERRORS as exc:
            if self._file is None:
                self._record.discard(temp)
            self._fail("cannot start a segment file", exc)

    def _mux(self, packet: Packet[Stream]) -> bool:
        file = self._file
        if file is None:
            return False
        try:
            if file.mux(packet):
                return True
        except FILE_ERRORS as exc:
            self._fail("cannot write a segment file", exc)
            return False
        self.untimed_dropped += 1  # the muxer would refuse it and fail the whole segment
        return False

    @property
    def audio_cpu_s(self) -> float:
        """Thread CPU spent converting this connection's audio (0 when it passes through)."""
        return self._audio.cpu_s

    def _watch_gop(self, interval: int | None, frame_us: int) -> None:
        """Measure the camera's GOP (the segmenter's keyframe interval); warn once if it is
        longer than the segment target."""
        if interval is None or interval <= 0:
            return
        self.gop_s = interval / 1_000_000
        if self._gop_warned or interval <= self._policy.target_us + frame_us // 2:
            return
        self._gop_warned = True
        target = self._policy.target_us / 1e6
        detail = (
            f"keyframe every {self.gop_s:.1f} s, longer than the {target:g} s segment target: "
            "segments are cut at keyframes, so each lasts a whole GOP"
        )
        log.warning("camera %s: %s", self.camera_id, detail)
        self._record.event("long_gop", detail)

    def _commit(self, closed: ClosedSegment) -> SegmentInfo | None:
        file, self._file = self._file, None
        self._audio.close()
        if file is None:
            return None  # its file failed earlier; that time is already being reported
        try:
            ended = file.finish()
        except FILE_ERRORS as exc:
            file.abandon()
            self._record.discard(file.temp)
            self._record.lost(closed, f"cannot finish segment file: {describe_error(exc)}")
            return None
        digest = None
        if ended is not None:
            # The counters run on from this file only once it is written whole.
            self._cc, digest = ended
        return self._record.store(closed, file.temp, digest)

    def _fail(self, what: str, exc: BaseException) -> None:
        """A segment file could not be written: drop it; its time becomes a gap."""
        reason = f"{what}: {describe_error(exc)}"
        log.error("camera %s: %s; dropping this segment", self.camera_id, reason)
        self._drop_output()
        if self._state is not None:
            self._state = segmenter.abandon(self._settled(), clean_reason(reason))

    def _drop_output(self) -> None:
        file, self._file = self._file, None
        self._audio.close()
        if file is not None:
            file.abandon()
            self._record.discard(file.temp)
