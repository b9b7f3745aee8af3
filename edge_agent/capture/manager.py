"""Runs one capture worker per configured camera; start, stop, status, reconfigure.

A reconfiguration touches only the cameras whose configuration changed: the others keep
recording without a gap. Stopping asks every worker first and then waits for each, so the
agent stops in about the time of the slowest camera, not the sum of them all; each worker
commits its open segment (TRUNCATED) on the way out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from edge_agent.clock import Clock
from edge_agent.config import CameraConfig
from edge_agent.model import CameraStatus

from .folder_worker import FolderWorker
from .livetap import TapSource
from .worker import CameraWorker, CaptureSettings, EventSink, RtspWorker
from .writer import SegmentSink

log = logging.getLogger(__name__)


def make_worker(
    camera: CameraConfig,
    sink: SegmentSink,
    clock: Clock,
    settings: CaptureSettings,
    on_event: EventSink | None,
) -> CameraWorker:
    if camera.kind == "rtsp":
        return RtspWorker(camera, sink, clock, settings, on_event)
    return FolderWorker(camera, sink, clock, settings, on_event)


class CaptureManager:
    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        sink: SegmentSink,
        clock: Clock,
        settings: CaptureSettings,
        on_event: EventSink | None = None,
        live: TapSource | None = None,
    ) -> None:
        self._live = live  # the live view's taps (edge_agent/live), one per camera
        self._sink = sink
        self._clock = clock
        self._settings = settings
        self._on_event = on_event
        self._cameras = {c.id: c for c in cameras}
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            self._settings.state_dir.mkdir(parents=True, exist_ok=True)
            for camera in self._cameras.values():
                self._start_worker(camera)

    def stop(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
            self._started = False
        self._stop_workers(workers)

    def statuses(self) -> list[CameraStatus]:
        with self._lock:
            workers = list(self._workers.values())
        return [w.status() for w in workers]

    def camera_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._cameras)

    def reconfigure(self, cameras: Sequence[CameraConfig]) -> None:
        """Apply a new camera list: stop removed or changed cameras, start new or changed."""
        new = {c.id: c for c in cameras}
        with self._lock:
            changed = [cid for cid, old in self._cameras.items() if new.get(cid) != old]
            added = [cid for cid in new if cid not in self._cameras]
            self._cameras = new
            stopping = [self._workers.pop(cid) for cid in changed if cid in self._workers]
        self._stop_workers(stopping)
        with self._lock:
            if not self._started:
                return
            for cid in [*changed, *added]:
                if cid in new and cid not in self._workers:
                    self._start_worker(new[cid])
        log.info(
            "capture reconfigured: %d cameras restarted or removed, %d added",
            len(changed),
            len(added),
        )

    def _start_worker(self, camera: CameraConfig) -> None:
        worker = make_worker(camera, self._sink, self._clock, self._settings, self._on_event)
        self._workers[camera.id] = worker
        if self._live is not None:
            worker.live = self._live.tap(camera.id)
        worker.start()
        log.info("camera %s: capture started (%s)", camera.id, camera.kind)

    def _stop_workers(self, workers: Sequence[CameraWorker]) -> None:
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            if not worker.join(self._settings.join_timeout_s):
                log.error("camera %s: capture thread did not stop in time", worker.camera_id)
