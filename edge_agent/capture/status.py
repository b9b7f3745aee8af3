"""Live figures of one camera (state, last frame, fps, bitrate, GOP, gaps) for health reports.

The worker thread updates a `StatusTracker` per packet; the health reporter reads snapshots
from another thread, so every access holds a lock. Rates are counted over a short window and
computed by the pure `rates` function.

The camera's state says what operators must do, so it travels to the controller with its
reason: a camera that sends H.265 or MJPEG needs reconfiguring, one that refuses our password
needs its credentials fixed, one that cannot be reached needs a visit; "stale" alone says
none of that. `classify` names the state from the source's exception (type first, then the
FFmpeg text in its message), purely.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import replace
from enum import StrEnum
from typing import Any

from av.packet import Packet

from edge_agent.model import CameraStatus, Gap
from edge_agent.sources.errors import (
    ConnectError,
    RecordingFileError,
    StallError,
    UnsupportedStreamError,
)

WINDOW_S = 5.0
MAX_GAPS = 20  # the most recent gaps kept in the status; the buffer keeps them all
GOPS_KEPT = 5  # the GOP reported is the median of this many recent keyframe intervals
MAX_GOP_S = 120.0  # a longer "interval" is a clock jump or a lost stream, not a GOP


class CameraState(StrEnum):
    """What a camera is doing, as shown in health, the fleet view and alerts."""

    STARTING = "starting"  # no frame yet since the agent started, and no failure either
    STREAMING = "streaming"
    NO_KEYFRAME_YET = "no_keyframe_yet"  # connected, waiting for the first keyframe
    UNSUPPORTED_CODEC = "unsupported_codec"  # not a codec the agent records (never transcodes)
    AUTH_FAILED = "auth_failed"  # the camera refused our credentials (RTSP 401/403)
    UNREACHABLE = "unreachable"  # could not connect (refused, no route, timeout, 404)
    STALLED = "stalled"  # connected, but nothing arrived within the read timeout
    DISCONNECTED = "disconnected"  # the session broke or the camera closed it
    FILE_ERROR = "file_error"  # a recording folder or file cannot be read
    FAILED = "failed"  # an unexpected error in the agent (see its log)


# FFmpeg's texts (av_strerror, libavutil/error.c; errno strings from libc), lower case.
_AUTH_TEXTS = ("401 unauthorized", "403 forbidden", "authorization failed", "access denied")
_UNSUPPORTED_TEXTS = ("video; only", "no video", "audio only", "is not rtsp://")
_STALL_TEXTS = ("stalled", "no data for the read timeout")
_UNREACHABLE_TEXTS = (
    "cannot open",  # every failure to open a session (rtsp.RtspSession.open)
    "connection refused",
    "no route to host",
    "network is unreachable",
    "host is down",
    "timed out",
    "404 not found",
    "failed to resolve",
    "name or service not known",
)


def classify(error: BaseException | None, message: str = "") -> CameraState:
    """The state a failure puts a camera in, from the exception type, else from its text.

    Workers that only pass the message (`_down(reason)`) are classified from the text the
    sources write: "sends hevc video; only H.264 is supported", "Server returned 401
    Unauthorized (authorization failed)", "cannot open ...: Connection refused", "stalled".
    """
    text = (message or (str(error) if error is not None else "")).lower()
    if isinstance(error, UnsupportedStreamError):
        return CameraState.UNSUPPORTED_CODEC
    if isinstance(error, StallError):
        return CameraState.STALLED
    if isinstance(error, RecordingFileError):
        return CameraState.FILE_ERROR
    if any(t in text for t in _AUTH_TEXTS):
        return CameraState.AUTH_FAILED
    if error is None or not isinstance(error, ConnectError):
        if any(t in text for t in _UNSUPPORTED_TEXTS):
            return CameraState.UNSUPPORTED_CODEC
        if any(t in text for t in _STALL_TEXTS):
            return CameraState.STALLED
        if "capture failed unexpectedly" in text:
            return CameraState.FAILED
        if "cannot read folder" in text:
            return CameraState.FILE_ERROR
    if any(t in text for t in _UNREACHABLE_TEXTS):
        return CameraState.UNREACHABLE
    return CameraState.DISCONNECTED


def media_seconds(packet: Packet[Any], seconds_per_tick: float | None = None) -> float:
    """A packet's stream time in seconds (its dts when it has no pts).

    `seconds_per_tick` is the stream's time base as a float, when the caller has it: that
    spares a Fraction built and multiplied per packet (the live worker's case)."""
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None:
        return 0.0
    if seconds_per_tick is not None:
        return ts * seconds_per_tick
    tb = packet.time_base
    return float(ts * tb) if tb else 0.0


def rates(packets: int, nbytes: int, elapsed_s: float) -> tuple[float, int]:
    """(frames per second, bits per second) over a window; zeros for an empty window."""
    if elapsed_s <= 0:
        return 0.0, 0
    return packets / elapsed_s, int(nbytes * 8 / elapsed_s)


def gop_of(intervals: tuple[float, ...] | list[float]) -> float:
    """The GOP to report from recent keyframe intervals: their median (one scene-cut IDR or
    one lost keyframe does not move it); 0 when none was measured."""
    return float(statistics.median(intervals)) if intervals else 0.0


class StatusTracker:
    def __init__(self, camera_id: str, window_s: float = WINDOW_S) -> None:
        self._lock = threading.Lock()
        self._status = CameraStatus(camera_id=camera_id, state=CameraState.STARTING)
        self._window_s = window_s
        self._window_start: float | None = None
        self._packets = 0
        self._bytes = 0
        self._last_key_media: float | None = None
        self._gops: deque[float] = deque(maxlen=GOPS_KEPT)

    def packet(self, size: int, is_key: bool, now_us: int, media_s: float) -> None:
        """Count one packet. Rates run on `media_s`, the packet's stream time: arrival times
        bunch up (FFmpeg's probe burst, network hiccups) and files are read faster than real
        time, while stream time says what the camera actually sends."""
        with self._lock:
            st = self._status
            st.last_frame_us = now_us
            if is_key:
                st.last_keyframe_us = now_us
                self._keyframe(media_s)
            if st.connected and st.state != CameraState.STREAMING and is_key:
                st.state, st.reason = CameraState.STREAMING, ""
            start = self._window_start
            if start is None or not 0 <= media_s - start <= 3 * self._window_s:
                # first packet, or the stream's clock jumped: start a fresh window
                self._window_start, self._packets, self._bytes = media_s, 0, 0
                return
            self._packets += 1
            self._bytes += size
            elapsed = media_s - start
            if elapsed >= self._window_s:
                st.fps, st.bitrate_bps = rates(self._packets, self._bytes, elapsed)
                self._window_start, self._packets, self._bytes = media_s, 0, 0

    def _keyframe(self, media_s: float) -> None:
        """Measure the GOP from keyframe stream times (under the lock). The writer warns
        about a GOP longer than the segment target; this figure goes into health."""
        last, self._last_key_media = self._last_key_media, media_s
        if last is None:
            return
        interval = media_s - last
        if not 0 < interval <= MAX_GOP_S:
            return  # the stream's clock jumped: measure again from this keyframe
        self._gops.append(interval)
        self._status.gop_s = gop_of(list(self._gops))

    def set_connected(
        self, connected: bool, error: str = "", state: CameraState | None = None
    ) -> None:
        """Connected: waiting for a keyframe until one arrives. Not connected: `state`
        (else classified from `error`) with `error` as the reason."""
        with self._lock:
            st = self._status
            st.connected = connected
            if error:
                st.last_error = error
            if connected:
                if st.state != CameraState.STREAMING:
                    st.state, st.reason = CameraState.NO_KEYFRAME_YET, ""
                return
            st.state = state or classify(None, error)
            st.reason = error
            st.fps, st.bitrate_bps = 0.0, 0
            self._window_start, self._packets, self._bytes = None, 0, 0
            self._last_key_media = None  # the next session's stream clock starts afresh

    def set_error(self, error: str) -> None:
        with self._lock:
            self._status.last_error = error

    def add_gap(self, gap: Gap) -> None:
        with self._lock:
            self._status.gaps = [*self._status.gaps, gap][-MAX_GAPS:]

    def snapshot(self) -> CameraStatus:
        with self._lock:
            return replace(self._status, gaps=list(self._status.gaps))
