"""The tee on running capture: each camera's worker hands its video packets to its `LiveTap`,
which muxes them only while the controller wants that camera live.

The hook in the capture worker is three calls (`begin`, `packet`, `end`); with no viewer a
packet costs one attribute read. Muxing runs on the capture thread (a remux of one packet is
microseconds of memcpy) and any failure turns this camera's live feed off, never capture.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from av.packet import Packet
from av.video.stream import VideoStream

from edge_agent.live.mux import TsMuxer

log = logging.getLogger(__name__)

# (camera_id, ts bytes, starts at a keyframe, wall time us, codec) -> accepted; camera down.
ChunkSink = Callable[[str, bytes, bool, int, str], bool]
DownSink = Callable[[str, str], None]


class LiveTap:
    """One camera's tee. `begin/packet/end` come from the capture thread; `start/stop` from
    the live client's thread."""

    def __init__(self, camera_id: str, now_us: Callable[[], int]) -> None:
        self.camera_id = camera_id
        self._now_us = now_us
        self._lock = threading.Lock()
        self._stream: VideoStream | None = None
        self._sink: ChunkSink | None = None
        self._down: DownSink | None = None
        self._muxer: TsMuxer | None = None

    @property
    def active(self) -> bool:
        return self._sink is not None

    # -- the capture side -------------------------------------------------------------------

    def begin(self, stream: VideoStream) -> None:
        """A capture session opened on `stream` (a reconnect or codec change: a new muxer)."""
        with self._lock:
            self._close_muxer()
            self._stream = stream

    def packet(self, packet: Packet[Any]) -> None:
        if self._sink is None:  # nobody watches: the common case, no lock
            return
        with self._lock:
            sink, stream = self._sink, self._stream
            if sink is None or stream is None:
                return
            try:
                if self._muxer is None:
                    now, camera = self._now_us, self.camera_id
                    codec = stream.codec_context.name
                    self._muxer = TsMuxer(stream, lambda d, k: sink(camera, d, k, now(), codec))
                self._muxer.feed(packet)
            except Exception:
                log.exception("camera %s: live muxing failed; live feed stopped", self.camera_id)
                self._close_muxer()
                self._sink = None

    def end(self, reason: str) -> None:
        """The capture session ended: tell a watching controller the camera is down."""
        with self._lock:
            self._close_muxer()
            self._stream = None
            down = self._down if self._sink is not None else None
        if down is not None:
            down(self.camera_id, reason)

    # -- the controller side ----------------------------------------------------------------

    def start(self, sink: ChunkSink, down: DownSink) -> None:
        with self._lock:
            self._close_muxer()  # a restart begins at the next keyframe
            self._sink, self._down = sink, down
            streaming = self._stream is not None
        if not streaming:
            down(self.camera_id, "camera not streaming")

    def stop(self) -> None:
        with self._lock:
            self._close_muxer()
            self._sink = self._down = None

    def _close_muxer(self) -> None:
        if self._muxer is not None:
            self._muxer.close()
            self._muxer = None


class LiveTaps:
    """Every camera's tap, made on first use (cameras come and go with reconfiguration)."""

    def __init__(self, now_us: Callable[[], int]) -> None:
        self._now_us = now_us
        self._lock = threading.Lock()
        self._taps: dict[str, LiveTap] = {}

    def tap(self, camera_id: str) -> LiveTap:
        with self._lock:
            tap = self._taps.get(camera_id)
            if tap is None:
                tap = self._taps[camera_id] = LiveTap(camera_id, self._now_us)
            return tap

    def known(self, camera_id: str) -> bool:
        with self._lock:
            return camera_id in self._taps

    def active(self) -> list[str]:
        with self._lock:
            return sorted(c for c, t in self._taps.items() if t.active)

    def stop_all(self) -> None:
        with self._lock:
            taps = list(self._taps.values())
        for tap in taps:
            tap.stop()
