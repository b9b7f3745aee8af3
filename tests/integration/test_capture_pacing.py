"""A live camera is read in bursts once caught up, and packet by packet while watched
(edge_agent/capture/pacing.py); either way every packet reaches the segments."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from av.packet import Packet
from av.video.stream import VideoStream

from edge_agent.capture import CaptureManager, CaptureSettings
from edge_agent.clock import SystemClock
from edge_agent.config import READ_PAUSE_S, CameraConfig
from edge_agent.store import SegmentBuffer
from tests.integration.media import probe
from tests.support import wait_until
from vigil_camsim.launcher import CamsimProcess


class ClockTap:
    """A live tap that notes when each video packet reached it (and its dts)."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.seen: list[tuple[float, int | None]] = []

    def begin(self, stream: VideoStream) -> None:
        pass

    def packet(self, packet: Packet[Any]) -> None:
        self.seen.append((time.monotonic(), packet.dts))

    def end(self, reason: str) -> None:
        pass


class Taps:
    def __init__(self, watched: bool) -> None:
        self.taps: dict[str, ClockTap] = {}
        self.watched = watched

    def tap(self, camera_id: str) -> ClockTap:
        return self.taps.setdefault(camera_id, ClockTap(self.watched))


def record(
    tmp_path: Path, url: str, watched: bool, pause_s: float = READ_PAUSE_S
) -> tuple[list[float], int, int]:
    """Arrival gaps at the tap (s), packets seen, frames in the committed segments
    (`pause_s`: the camera's `read_pause_s` in agent.toml)."""
    taps = Taps(watched)
    settings = CaptureSettings(state_dir=tmp_path / "state")
    with SegmentBuffer.open(tmp_path / "buffer", 10**9, SystemClock()) as buffer:
        manager = CaptureManager(
            [CameraConfig(id="c1", url=url, segment_seconds=2, read_pause_s=pause_s)],
            buffer,
            SystemClock(),
            settings,
            live=taps,
        )
        manager.start()
        try:
            wait_until(lambda: len(buffer.segments("c1")) >= 3, 30, "3 segments", interval=0.1)
        finally:
            manager.stop()
        seen = taps.taps["c1"].seen
        frames = 0
        for seg in buffer.segments("c1"):
            count = probe(buffer.path_of(seg))["frames"]
            assert isinstance(count, int)
            frames += count
        assert buffer.verify_chain("c1", check_files=True) == []
    gaps = [b[0] - a[0] for a, b in zip(seen[10:], seen[11:], strict=False)]  # past the probe
    return gaps, len(seen), frames


def test_read_in_bursts_when_nobody_watches_and_as_they_come_when_watched(
    camsim: Callable[..., CamsimProcess], tmp_path: Path
) -> None:
    cams = camsim(cameras=1)
    gaps, seen, frames = record(tmp_path / "alone", cams.url(1), watched=False)
    # Bursts: after a pause several frames (40 ms apart at the camera) come at once.
    assert sum(g >= 0.2 for g in gaps) >= 4, gaps
    assert sum(g < 0.01 for g in gaps) >= len(gaps) // 2, gaps
    # Nothing lost on the way: every frame the tap saw is in a segment (the segments of a
    # session begin at its first keyframe, so at most a GOP of frames before it is not).
    assert seen - 25 <= frames <= seen, (seen, frames)
    gaps, seen, frames = record(tmp_path / "watched", cams.url(1), watched=True)
    assert max(gaps) < 0.2, gaps  # a live viewer's frames are not held back
    assert seen - 25 <= frames <= seen, (seen, frames)
    # A camera whose RTSP server cannot take a pause is read packet by packet when its
    # `read_pause_s = 0` in agent.toml.
    gaps, seen, frames = record(tmp_path / "no-pause", cams.url(1), False, pause_s=0)
    assert max(gaps) < 0.2, gaps
    assert seen - 25 <= frames <= seen, (seen, frames)
