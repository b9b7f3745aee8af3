"""One capture thread per camera, and the RTSP camera's reconnect loop.

Why one thread per camera: PyAV releases the GIL while it waits on the socket and while it
muxes, so threads cost little, and a camera that hangs or breaks stays in its own thread: a
worker catches everything, reports it, and goes on; no failure reaches another camera.

Reconnects use tenacity: capped exponential backoff with jitter (cameras rebooting together
must not reconnect in lock-step). A connection that produced at least one segment counts as
healthy, so the next attempt after it goes at once and the backoff starts over.

Events: `camera_lost` once per outage (with the reason), `camera_back` when video flows again
(with the outage as start_us/end_us). The gap itself is recorded in the buffer by the writer
when the first segment after the outage opens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential_jitter,
)

from edge_agent.clock import Clock
from edge_agent.config import CameraConfig
from edge_agent.image.sampler import ImageSampler
from edge_agent.model import AgentEvent, CameraStatus, Gap, SegmentFlag
from edge_agent.segmenter import CutPolicy
from edge_agent.sources.errors import ConnectError, SourceError
from edge_agent.sources.rtsp import RtspOptions, RtspSession, codec_label

from .audio import format_of
from .livetap import NO_TAP, PacketTap
from .pacing import pause_after
from .status import StatusTracker, classify
from .writer import SegmentSink, SegmentWriter

log = logging.getLogger(__name__)

EventSink = Callable[[AgentEvent], None]
_CLOCK_SLACK_US = 5_000_000  # a buffered end this far in the future means the clock went back
_RECENT_US = 60_000_000  # an outage is dated from the last video if that is this recent


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """Tunables of capture that are not per-camera config (tests shrink the timeouts)."""

    state_dir: Path  # folder cameras keep their ledgers here
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 30.0
    backoff_jitter_s: float = 1.0
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    folder_poll_s: float = 1.0
    forward_jump_s: float = 1.0
    join_timeout_s: float = 15.0


def last_covered_us(sink: SegmentSink, camera_id: str, now_us: int) -> int | None:
    """Where this camera's buffered record (segments and gaps) ends, looking back ≤ 40 days."""
    for days in (1 / 24, 1, 40):
        since = max(0, now_us - int(days * 86_400_000_000))
        ends = [s.end_us for s in sink.segments(camera_id, start_us=since)]
        ends += [g.end_us for g in sink.gaps(camera_id, start_us=since)]
        if ends:
            return max(ends)
    return None


class CameraWorker:
    """The thread, status and events shared by both kinds of camera; `_run` is the loop."""

    def __init__(
        self,
        camera: CameraConfig,
        sink: SegmentSink,
        clock: Clock,
        settings: CaptureSettings,
        on_event: EventSink | None = None,
    ) -> None:
        self.camera = camera
        self.camera_id = camera.id
        self._sink = sink
        self._clock = clock
        self._settings = settings
        self._on_event = on_event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracker = StatusTracker(camera.id)
        self._lost_since_us: int | None = None
        self._last_reason = ""
        self.live: PacketTap = NO_TAP  # the live view's tee (edge_agent/live), set by the manager
        # Image health: one keyframe a minute decoded and checked (edge_agent/image).
        self.image = ImageSampler(camera.id, lambda kind, detail: self._emit(kind, detail=detail))
        self.writer = SegmentWriter(
            camera.id,
            sink,
            CutPolicy.for_seconds(camera.segment_seconds, settings.forward_jump_s),
            camera.container,
            on_gap=self._gap,
            on_event=lambda kind, detail: self._emit(kind, detail=detail),
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: worker already started")
        self._thread = threading.Thread(
            target=self._main, name=f"capture-{self.camera_id}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> bool:
        self.request_stop()
        return self.join(self._settings.join_timeout_s)

    def status(self) -> CameraStatus:
        return self._tracker.snapshot()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
            except Exception:  # a bug must not kill this camera for good, nor any other
                log.exception("camera %s: capture failed unexpectedly; restarting", self.camera_id)
                try:
                    self.writer.end(truncated=True)
                except Exception:
                    log.exception("camera %s: cannot finish the open segment", self.camera_id)
                    self.writer.cancel()
                self._down(f"camera {self.camera_id}: capture failed unexpectedly (see log)")
                self._stop.wait(self._settings.backoff_cap_s)
        log.info("camera %s: capture stopped", self.camera_id)

    def _run(self) -> None:
        raise NotImplementedError

    # -- shared reporting -------------------------------------------------------------------

    def _up(self, what: str = "") -> None:
        """Video flows (again). `what` (the stream) makes it worth a log line."""
        self._tracker.set_connected(True)
        lost = self._lost_since_us
        if lost is not None:
            now = self._clock.now_us()
            self._emit("camera_back", start_us=lost, end_us=now)
            self._lost_since_us = None
            log.info(
                "camera %s: streaming %s, back after %.1f s",
                self.camera_id,
                what,
                (now - lost) / 1e6,
            )
        elif what:
            log.info("camera %s: streaming %s", self.camera_id, what)
        self._last_reason = ""

    def _down(self, reason: str, error: BaseException | None = None) -> None:
        """The camera failed or went away: report once per outage, log each new reason.

        The state health reports (unsupported codec, auth failed, unreachable, ...) is
        classified from `error` when given, else from the reason's text."""
        self._tracker.set_connected(False, reason, classify(error, reason))
        if reason != self._last_reason:
            log.warning("%s", reason)
        else:
            log.debug("%s", reason)
        self._last_reason = reason
        if self._lost_since_us is None:
            now = self._clock.now_us()
            last = self.writer.covered_until_us  # the end of the last video we hold
            recent = last is not None and now - _RECENT_US <= last <= now
            self._lost_since_us = last if recent and last is not None else now
            self._emit("camera_lost", start_us=self._lost_since_us, detail=reason)

    def _gap(self, gap: Gap) -> None:
        self._tracker.add_gap(gap)

    def _emit(self, kind: str, *, start_us: int = 0, end_us: int = 0, detail: str = "") -> None:
        if self._on_event is None:
            return
        event = AgentEvent(
            kind=kind,
            at_us=self._clock.now_us(),
            camera_id=self.camera_id,
            start_us=start_us,
            end_us=end_us,
            detail=detail[:500],
        )
        try:
            self._on_event(event)
        except Exception:  # a broken subscriber must not stop capture
            log.exception("camera %s: event subscriber failed on %s", self.camera_id, kind)

    def _init_coverage(self) -> None:
        """Continue this camera's record where the buffer says it ends (after a restart)."""
        now = self._clock.now_us()
        try:
            covered = last_covered_us(self._sink, self.camera_id, now)
        except Exception as exc:  # the buffer is unhappy: capture anyway, without a restart gap
            log.error("camera %s: cannot read the buffer's last segment: %s", self.camera_id, exc)
            covered = None
        if covered is not None and covered > now + _CLOCK_SLACK_US:
            log.warning(
                "camera %s: buffered video ends %.1f s in the future; the clock went back",
                self.camera_id,
                (covered - now) / 1e6,
            )
            covered = None
        self.writer.covered_until_us = covered


class RtspWorker(CameraWorker):
    """Pulls an RTSP camera, reconnecting on its own for as long as the agent runs."""

    _gap_reason = ""  # why the time before the next segment is missing

    def _run(self) -> None:
        self._init_coverage()
        reason = "agent was not capturing" if self.writer.covered_until_us is not None else ""
        self._gap_reason = reason
        s = self._settings
        while not self._stop.is_set():
            retrying = Retrying(
                sleep=self._sleep,
                stop=stop_when_event_set(self._stop),
                wait=wait_exponential_jitter(
                    multiplier=s.backoff_initial_s, max=s.backoff_cap_s, jitter=s.backoff_jitter_s
                ),
                retry=retry_if_exception_type(SourceError),
                before_sleep=self._before_sleep,
                reraise=True,
            )
            try:
                retrying(self._session)
            except SourceError:
                return  # only when stopping: the retry loop gives up on the stop event

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop request cuts the backoff short

    def _before_sleep(self, state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        log.debug(
            "camera %s: reconnecting in %.1f s (attempt %d)",
            self.camera_id,
            delay,
            state.attempt_number,
        )

    def _session(self) -> None:
        """One connection. Returns after a healthy one ended; raises SourceError otherwise."""
        options = RtspOptions(
            transport=self.camera.transport,
            open_timeout_s=self._settings.open_timeout_s,
            read_timeout_s=self._settings.read_timeout_s,
        )
        opened_at = self._clock.now_us()
        try:
            session = RtspSession.open(self.camera_id, self.camera.url, options)
        except SourceError as exc:
            self._down(str(exc))
            self._gap_reason = f"camera lost: {exc}"
            raise
        committed = self.writer.segments_committed
        error: SourceError | None = None
        started = False
        video = session.stream.index
        tick_s = float(session.time_base)
        # Bound once per session: this loop runs for every packet of every camera.
        live = self.live
        now_us, feed, tap = self._clock.now_us, self.writer.feed, live.packet
        count, stop = self._tracker.packet, self._stop
        pause_s, udp = self.camera.read_pause_s, self.camera.transport == "udp"
        previous: int | None = None  # when the packet before this one arrived
        try:
            for packet in session.packets():
                now = now_us()
                if not started:
                    started = True
                    prior = self.writer.covered_until_us
                    self.writer.begin(
                        session.stream,
                        now,
                        live=True,
                        prior_end_us=prior,
                        gap_reason=self._gap_reason,
                        flags=SegmentFlag.DISCONTINUITY if prior is not None else SegmentFlag.NONE,
                        earliest_us=opened_at,
                        audio=session.audio,
                    )
                    self._up(self._describe_stream(session))
                    self.live.begin(session.stream)
                    self.image.begin(session.stream)
                if packet.stream_index != video:
                    feed(packet, now)  # audio: not counted in the video's rates
                    continue
                # Read the packet's figures first: muxing may hand its data to the muxer.
                size, key, ts = packet.size, packet.is_keyframe, packet.pts
                if ts is None:
                    ts = packet.dts  # as media_seconds: stream time, its dts without a pts
                tap(packet)  # before the writer: muxing takes the packet's data
                if key:  # the sampler only ever looks at keyframes
                    self.image.packet(packet, self._clock.monotonic())
                feed(packet, now)
                count(size, key, now, 0.0 if ts is None else ts * tick_s)
                pause = pause_after(previous, now, pause_s, watched=live.active, udp=udp)
                if pause:
                    stop.wait(pause)
                    now = now_us()  # the pause is not waiting for the camera
                previous = now
                if stop.is_set():
                    break
        except SourceError as exc:
            error = exc
        finally:
            self.live.end(str(error) if error else "camera stream ended")
            self.writer.end(truncated=True)
            session.close()
        if self._stop.is_set():
            return
        reason = str(error) if error else f"camera {self.camera_id}: disconnected"
        self._down(reason)
        self._gap_reason = f"camera lost: {reason}"
        if self.writer.segments_committed > committed:
            return
        raise error or ConnectError(reason)

    _codec = ""  # the video codec of the last connection

    def _describe_stream(self, session: RtspSession) -> str:
        """ "1920x1080 H.265, audio pcm_alaw 8000 Hz 1 ch"; a codec change is an event (the
        segments after it start a DISCONTINUITY, as after any reconnect)."""
        cc = session.stream.codec_context
        codec = codec_label(session.stream)
        if self._codec and codec != self._codec:
            detail = f"video codec changed from {self._codec} to {codec}"
            log.warning("camera %s: %s", self.camera_id, detail)
            self._emit("codec_changed", detail=detail)
        self._codec = codec
        audio = f", audio {format_of(session.audio)}" if session.audio is not None else ""
        return f"{cc.width}x{cc.height} {codec}{audio}"
