"""RTSP capture from emulated cameras (real GStreamer RTSP server) into a real buffer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.capture import CaptureManager, CaptureSettings
from edge_agent.clock import SystemClock
from edge_agent.config import CameraConfig
from edge_agent.model import AgentEvent, Gap, SegmentFlag, SegmentInfo
from edge_agent.sources.errors import UnsupportedStreamError
from edge_agent.sources.rtsp import RtspOptions, RtspSession
from edge_agent.store import SegmentBuffer
from tests.integration.media import probe
from tests.support import ManagedProcess, free_port, wait_until
from vigil_camsim.launcher import CamsimProcess

GOP_US = 1_000_000  # camsim test default: keyframe every second
FRAME_US = 40_000


class Capture:
    def __init__(self, tmp_path: Path) -> None:
        self.buffer = SegmentBuffer.open(tmp_path / "buffer", 10**9, SystemClock())
        self.events: list[AgentEvent] = []
        self.settings = CaptureSettings(
            state_dir=tmp_path / "state",
            backoff_initial_s=0.2,
            backoff_cap_s=1.0,
            backoff_jitter_s=0.2,
            open_timeout_s=5.0,
            read_timeout_s=1.0,
        )
        self.manager: CaptureManager | None = None

    def start(self, cameras: list[CameraConfig]) -> CaptureManager:
        self.manager = CaptureManager(
            cameras, self.buffer, SystemClock(), self.settings, self.events.append
        )
        self.manager.start()
        return self.manager

    def segments(self, camera_id: str) -> list[SegmentInfo]:
        return self.buffer.segments(camera_id)

    def wait_segments(
        self, camera_id: str, count: int, after_us: int = 0, timeout: float = 30
    ) -> None:
        wait_until(
            lambda: sum(s.start_us >= after_us for s in self.segments(camera_id)) >= count,
            timeout,
            f"{count} segments of {camera_id}",
            interval=0.1,
        )

    def kinds(self, camera_id: str) -> list[str]:
        return [e.kind for e in self.events if e.camera_id == camera_id]

    def close(self) -> None:
        if self.manager is not None:
            self.manager.stop()
        self.buffer.close()


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Capture]:
    c = Capture(tmp_path)
    yield c
    c.close()


def rtsp(camera_id: str, url: str, seconds: float = 2) -> CameraConfig:
    return CameraConfig(id=camera_id, url=url, segment_seconds=seconds)


def check_segments(capture: Capture, camera_id: str) -> list[SegmentInfo]:
    """Every segment starts on a keyframe and decodes; the chain verifies.

    (Frame counts are not compared with durations: under load the emulator skips frames, as a
    starved camera does, and the timestamps rightly show the time passing regardless.)
    """
    segs = capture.segments(camera_id)
    for seg in segs:
        facts = probe(capture.buffer.path_of(seg))
        assert facts["first_key"] is True, seg
        assert facts["codec"] == "h264"
        frames = facts["frames"]
        assert isinstance(frames, int) and 0 < frames <= seg.duration_us // FRAME_US + 1, (
            seg,
            frames,
        )
    assert capture.buffer.verify_chain(camera_id, check_files=True) == []
    return segs


def test_two_cameras_give_keyframe_segments_that_tile_wall_time(
    camsim: Callable[..., CamsimProcess], capture: Capture
) -> None:
    cams = camsim(cameras=2)
    began = time.time_ns() // 1000
    capture.start([rtsp("c1", cams.url(1)), rtsp("c2", cams.url(2))])
    for cid in ("c1", "c2"):
        capture.wait_segments(cid, 3)
    statuses = {s.camera_id: s for s in capture.manager.statuses()}  # type: ignore[union-attr]
    capture.manager.stop()  # type: ignore[union-attr]
    capture.manager = None
    ended = time.time_ns() // 1000
    for cid in ("c1", "c2"):
        assert statuses[cid].connected and 20 <= statuses[cid].fps <= 30
        segs = check_segments(capture, cid)
        assert len(segs) >= 4
        assert tiles(capture, cid), timeline(capture, cid)  # no overlap, no unexplained hole
        # The first one stays open until the connection backlog drained (see segmenter).
        assert segs[0].duration_us in (2 * GOP_US, 3 * GOP_US, 4 * GOP_US)
        assert all(s.duration_us == 2 * GOP_US for s in segs[1:-1])
        assert all(s.flags == SegmentFlag.NONE for s in segs[:-1])
        assert segs[-1].flags == SegmentFlag.TRUNCATED  # cut by the stop, kept
        # Wall-clock placement: inside the run, starting within connect time + one GOP.
        assert began <= segs[0].start_us <= began + 3 * GOP_US
        assert ended - GOP_US <= segs[-1].end_us <= ended + 200_000
        assert faults(capture, cid, "") == [], timeline(capture, cid)


def test_camera_faults_become_gaps_and_capture_recovers_on_its_own(
    camsim: Callable[..., CamsimProcess], capture: Capture
) -> None:
    cams = camsim(cameras=6)
    # Six cameras set up at once keep the emulator busy for seconds: allow for a slow DESCRIBE.
    capture.settings = replace(capture.settings, open_timeout_s=15.0)
    names = {1: "drop", 2: "stop", 3: "stall", 4: "resolution", 5: "broken_gop", 6: "calm"}
    capture.start([rtsp(name, cams.url(n)) for n, name in names.items()])
    for name in names.values():
        capture.wait_segments(name, 1)
    fault_at = time.time_ns() // 1000
    cams.client.drop(1)
    cams.client.stop(2)
    cams.client.stall(3)
    cams.client.set_resolution(4, 640, 360)
    cams.client.broken_gop(5, gops=2)
    wait_until(
        lambda: "camera_lost" in capture.kinds("stop") and "camera_lost" in capture.kinds("stall"),
        20,
        "stopped and stalled cameras reported lost",
    )
    cams.client.start(2)
    cams.client.unstall(3)
    recovered_from = time.time_ns() // 1000
    for name in ("drop", "stop", "stall"):
        capture.wait_segments(name, 2, after_us=recovered_from)
    capture.wait_segments("resolution", 2, after_us=fault_at + 2 * GOP_US)
    capture.wait_segments("broken_gop", 2, after_us=fault_at + 4 * GOP_US)
    capture.manager.stop()  # type: ignore[union-attr]
    capture.manager = None

    for name in ("drop", "stop", "stall"):
        segs = check_segments(capture, name)
        lost = faults(capture, name, "camera lost")
        assert len(lost) == 1, timeline(capture, name)
        gap = lost[0]
        assert gap.start_us >= fault_at - GOP_US, timeline(capture, name)
        before = [s for s in segs if s.end_us <= gap.start_us]
        after = [s for s in segs if s.start_us >= gap.end_us]
        assert len(before) + len(after) == len(segs)  # nothing overlaps the gap
        assert before[-1].end_us == gap.start_us and before[-1].flags & SegmentFlag.TRUNCATED
        assert after[0].start_us == gap.end_us and after[0].flags & SegmentFlag.DISCONTINUITY
        assert capture.kinds(name)[-2:] == ["camera_lost", "camera_back"]
    assert "stalled" in faults(capture, "stall", "camera lost")[0].reason

    segs = check_segments(capture, "resolution")
    sizes = [probe(capture.buffer.path_of(s))["sizes"] for s in segs]
    assert {(320, 180)} in sizes and sizes[-1] == {(640, 360)}
    switched = next(i for i, sz in enumerate(sizes) if sz == {(640, 360)})
    assert segs[switched].flags & SegmentFlag.DISCONTINUITY
    assert segs[switched].start_us == segs[switched - 1].end_us  # no time lost
    assert faults(capture, "resolution", "") == [], timeline(capture, "resolution")

    check_segments(capture, "broken_gop")
    broken = faults(capture, "broken_gop", "broken GOP")
    assert len(broken) == 1, timeline(capture, "broken_gop")
    assert 2 * GOP_US - FRAME_US <= broken[0].end_us - broken[0].start_us <= 2 * GOP_US + FRAME_US

    check_segments(capture, "calm")
    assert faults(capture, "calm", "") == [], timeline(capture, "calm")
    assert capture.kinds("calm") == []
    for name in names.values():
        assert tiles(capture, name), timeline(capture, name)


def faults(capture: Capture, camera_id: str, reason: str) -> list[Gap]:
    """The camera's gaps whose reason starts with `reason`, leaving out the emulator's own
    starvation: on a loaded machine it can fall behind by more than a second and then sends
    on with a jump in its timestamps, a real gap the agent rightly records."""
    return [
        g
        for g in capture.buffer.gaps(camera_id)
        if g.reason.startswith(reason) and not g.reason.startswith("timestamps jumped forwards")
    ]


def tiles(capture: Capture, camera_id: str) -> bool:
    """Segments and gaps cover the camera's time without overlap or unexplained hole."""
    spans = sorted(
        [(s.start_us, s.end_us) for s in capture.segments(camera_id)]
        + [(g.start_us, g.end_us) for g in capture.buffer.gaps(camera_id)]
    )
    return all(b[0] == a[1] for a, b in zip(spans, spans[1:], strict=False))


def timeline(capture: Capture, camera_id: str) -> str:
    """The camera's segments, gaps and events, for an assertion message."""
    rows = [f"seg {s.start_us} +{s.duration_us} {s.flags!r}" for s in capture.segments(camera_id)]
    rows += [f"gap {g.start_us}..{g.end_us} {g.reason}" for g in capture.buffer.gaps(camera_id)]
    rows += [f"event {e.kind} {e.detail}" for e in capture.events if e.camera_id == camera_id]
    return f"{camera_id}:\n" + "\n".join(rows)


def test_unreachable_camera_retries_with_backoff_and_never_logs_credentials(
    camsim: Callable[..., CamsimProcess], capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cams = camsim(cameras=1)
    secret = "pa55w0rd-XYZ"
    port = cams.port
    cameras = [
        rtsp("closed", f"rtsp://admin:{secret}@127.0.0.1:{free_port()}/cam/1"),
        rtsp("missing", f"rtsp://admin:{secret}@127.0.0.1:{port}/cam/99"),
        rtsp("good", f"rtsp://admin:{secret}@127.0.0.1:{port}/cam/1"),
    ]
    capture.start(cameras)
    capture.wait_segments("good", 2)
    wait_until(
        lambda: all(len(capture.kinds(c)) == 1 for c in ("closed", "missing")),
        20,
        "failing cameras reported lost once each",
    )
    statuses = {s.camera_id: s for s in capture.manager.statuses()}  # type: ignore[union-attr]
    assert not statuses["closed"].connected and "cannot open" in statuses["closed"].last_error
    assert statuses["good"].connected
    assert capture.kinds("closed") == ["camera_lost"]
    text = caplog.text + repr(capture.events) + repr(statuses)
    assert secret not in text
    assert "rtsp://***@127.0.0.1" in caplog.text


# A camera that sends Motion JPEG over RTSP (a real GStreamer server, like camsim's).
MJPEG_SERVER = """
import sys, gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( videotestsrc is-live=true ! video/x-raw,format=I420,width=160,height=120,"
                   "framerate=5/1 ! jpegenc ! rtpjpegpay name=pay0 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/mjpeg", factory)
server.attach(None)
GLib.MainLoop().run()
"""


def test_a_non_h264_camera_is_refused_by_name_and_the_others_record(
    camsim: Callable[..., CamsimProcess], capture: Capture, tmp_path: Path
) -> None:
    cams = camsim(cameras=1)
    port = free_port()
    mjpeg = ManagedProcess(["/usr/bin/python3", "-c", MJPEG_SERVER, str(port)], tmp_path / "mj.log")
    try:
        mjpeg.wait_port(port)
        capture.start([rtsp("mj", f"rtsp://127.0.0.1:{port}/mjpeg"), rtsp("good", cams.url(1))])
        capture.wait_segments("good", 2)
        wait_until(lambda: "camera_lost" in capture.kinds("mj"), 20, "MJPEG camera refused")
        status = {s.camera_id: s for s in capture.manager.statuses()}  # type: ignore[union-attr]
    finally:
        mjpeg.stop()
    assert "camera mj:" in status["mj"].last_error
    assert "sends mjpeg video; only H.264 and H.265 are supported" in status["mj"].last_error
    assert not status["mj"].connected and status["good"].connected
    assert capture.segments("mj") == [] and capture.buffer.gaps("mj") == []
    lost = next(e for e in capture.events if e.camera_id == "mj")
    assert "only H.264 and H.265" in lost.detail


def test_non_rtsp_url_is_refused_before_ffmpeg_sees_it(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedStreamError, match=r"camera c1: URL 'file://\*\*\*@"):
        RtspSession.open("c1", "file://u:p@/etc/passwd", RtspOptions())
    with pytest.raises(ValueError, match="must be rtsp"):
        CameraConfig(id="c1", url="http://u:p@host/x")
