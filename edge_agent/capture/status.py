"""Live figures of one camera (connected, last frame, fps, bitrate, gaps) for health reports.

The worker thread updates a `StatusTracker` per packet; the health reporter reads snapshots
from another thread, so every access holds a lock. Rates are counted over a short window and
computed by the pure `rates` function.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from av.packet import Packet
from av.video.stream import VideoStream

from edge_agent.model import CameraStatus, Gap

WINDOW_S = 5.0
MAX_GAPS = 20  # the most recent gaps kept in the status; the buffer keeps them all


def media_seconds(packet: Packet[VideoStream]) -> float:
    """A packet's stream time in seconds (its dts when it has no pts)."""
    ts = packet.pts if packet.pts is not None else packet.dts
    return float(ts * packet.time_base) if ts is not None and packet.time_base else 0.0


def rates(packets: int, nbytes: int, elapsed_s: float) -> tuple[float, int]:
    """(frames per second, bits per second) over a window; zeros for an empty window."""
    if elapsed_s <= 0:
        return 0.0, 0
    return packets / elapsed_s, int(nbytes * 8 / elapsed_s)


class StatusTracker:
    def __init__(self, camera_id: str, window_s: float = WINDOW_S) -> None:
        self._lock = threading.Lock()
        self._status = CameraStatus(camera_id=camera_id)
        self._window_s = window_s
        self._window_start: float | None = None
        self._packets = 0
        self._bytes = 0

    def packet(self, size: int, is_key: bool, now_us: int, media_s: float) -> None:
        """Count one packet. Rates run on `media_s`, the packet's stream time: arrival times
        bunch up (FFmpeg's probe burst, network hiccups) and files are read faster than real
        time, while stream time says what the camera actually sends."""
        with self._lock:
            st = self._status
            st.last_frame_us = now_us
            if is_key:
                st.last_keyframe_us = now_us
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

    def set_connected(self, connected: bool, error: str = "") -> None:
        with self._lock:
            self._status.connected = connected
            if error:
                self._status.last_error = error
            if not connected:
                self._status.fps, self._status.bitrate_bps = 0.0, 0
                self._window_start, self._packets, self._bytes = None, 0, 0

    def set_error(self, error: str) -> None:
        with self._lock:
            self._status.last_error = error

    def add_gap(self, gap: Gap) -> None:
        with self._lock:
            self._status.gaps = [*self._status.gaps, gap][-MAX_GAPS:]

    def snapshot(self) -> CameraStatus:
        with self._lock:
            return replace(self._status, gaps=list(self._status.gaps))
