"""Camera state classification, GOP measure and the state in health payloads (pure)."""

from __future__ import annotations

import pytest

from edge_agent.capture.status import (
    CameraState,
    StatusTracker,
    classify,
    gop_of,
)
from edge_agent.health import payloads as pl
from edge_agent.model import AgentEvent, CameraStatus
from edge_agent.sources.errors import (
    ConnectError,
    RecordingFileError,
    StallError,
    UnsupportedStreamError,
)
from protos.vigil.v1 import fleet_pb2

T0 = 1_800_000_000_000_000
OPEN = "camera c: cannot open rtsp://***@127.0.0.1:554/x: "


@pytest.mark.parametrize(
    ("error", "message", "state"),
    [
        (UnsupportedStreamError("x"), "", CameraState.UNSUPPORTED_CODEC),
        (StallError("x"), "", CameraState.STALLED),
        (RecordingFileError("x"), "", CameraState.FILE_ERROR),
        (
            ConnectError(OPEN + "Server returned 401 Unauthorized (authorization failed)"),
            "",
            CameraState.AUTH_FAILED,
        ),
        (
            ConnectError(OPEN + "Server returned 403 Forbidden (access denied)"),
            "",
            CameraState.AUTH_FAILED,
        ),
        (ConnectError(OPEN + "Connection refused"), "", CameraState.UNREACHABLE),
        (ConnectError(OPEN + "Input/output error"), "", CameraState.UNREACHABLE),
        (ConnectError(OPEN + "Server returned 404 Not Found"), "", CameraState.UNREACHABLE),
        (
            ConnectError("camera c: stream broke: Connection reset by peer"),
            "",
            CameraState.DISCONNECTED,
        ),
        # A ConnectError whose text mentions a codec is still a connection problem.
        (ConnectError("camera c: stream broke: video; only"), "", CameraState.DISCONNECTED),
        # Text only (workers that pass the reason): the sources' own wording.
        (
            None,
            "camera c: rtsp://h/x sends hevc video; only H.264 is supported (the agent "
            "never transcodes)",
            CameraState.UNSUPPORTED_CODEC,
        ),
        (None, "camera c: rtsp://h/x has no video stream", CameraState.UNSUPPORTED_CODEC),
        (
            None,
            "camera c: rtsp://h/x sends audio only (aac), no video; a camera must send H.264 "
            "or H.265 video",
            CameraState.UNSUPPORTED_CODEC,
        ),
        (
            None,
            "camera c: rtsp://h/x sends mjpeg video; only H.264 and H.265 are supported",
            CameraState.UNSUPPORTED_CODEC,
        ),
        (
            None,
            "camera c: URL 'http://h/x' is not rtsp:// or rtsps://",
            CameraState.UNSUPPORTED_CODEC,
        ),
        (
            None,
            OPEN + "Server returned 401 Unauthorized (authorization failed)",
            CameraState.AUTH_FAILED,
        ),
        (None, OPEN + "Connection refused", CameraState.UNREACHABLE),
        (None, "camera c: no data for the read timeout (stalled)", CameraState.STALLED),
        (None, "camera c: disconnected", CameraState.DISCONNECTED),
        (None, "camera c: capture failed unexpectedly (see log)", CameraState.FAILED),
        (None, "camera c: cannot read folder /nvr/c: [Errno 2]", CameraState.FILE_ERROR),
        (None, "", CameraState.DISCONNECTED),
    ],
)
def test_classify(error: BaseException | None, message: str, state: CameraState) -> None:
    assert classify(error, message) is state


def test_tracker_states_through_a_session() -> None:
    t = StatusTracker("c")
    assert t.snapshot().state == CameraState.STARTING
    t.set_connected(False, OPEN + "Connection refused", CameraState.UNREACHABLE)
    s = t.snapshot()
    assert (s.state, s.reason, s.connected) == (
        CameraState.UNREACHABLE,
        OPEN + "Connection refused",
        False,
    )
    t.set_connected(True)
    assert t.snapshot().state == CameraState.NO_KEYFRAME_YET and t.snapshot().reason == ""
    t.packet(100, False, T0, 0.0)
    assert t.snapshot().state == CameraState.NO_KEYFRAME_YET
    t.packet(100, True, T0, 0.04)
    assert t.snapshot().state == CameraState.STREAMING
    t.set_connected(False, "camera c: no data for the read timeout (stalled)")
    assert t.snapshot().state == CameraState.STALLED and t.snapshot().fps == 0


def test_gop_measured_from_keyframe_media_times() -> None:
    t = StatusTracker("c")
    for i in range(60):  # 2 fps, a keyframe every 10 s
        t.packet(1000, i % 20 == 0, T0 + i * 500_000, i * 0.5)
    assert t.snapshot().gop_s == pytest.approx(10.0)
    # A reconnect starts a new stream clock: no bogus interval across sessions.
    t.set_connected(False, "camera c: disconnected")
    t.set_connected(True)
    t.packet(1000, True, T0, 5000.0)
    t.packet(1000, True, T0, 5010.0)
    assert t.snapshot().gop_s == pytest.approx(10.0)


def test_gop_median_ignores_one_scene_cut_and_clock_jumps() -> None:
    assert gop_of([2.0, 2.0, 0.3, 2.0, 2.0]) == 2.0
    assert gop_of([]) == 0.0
    t = StatusTracker("c")
    t.packet(1, True, T0, 100.0)
    t.packet(1, True, T0, 50.0)  # went backwards: not an interval
    t.packet(1, True, T0, 1000.0)  # 950 s: a jump, not a GOP
    assert t.snapshot().gop_s == 0.0


def test_health_payload_carries_state_reason_gop_without_credentials() -> None:
    st = CameraStatus(
        "c",
        state="auth_failed",
        reason="camera c: cannot open rtsp://admin:hunter2@10.0.0.5/x: 401 Unauthorized",
        gop_s=2.5,
    )
    h = pl.camera_health(st, T0)
    assert (h.state, h.gop_s) == ("auth_failed", 2.5)
    assert "401 Unauthorized" in h.reason and "hunter2" not in h.reason
    assert pl.camera_health(CameraStatus("c", True), T0).state == "streaming"
    assert pl.camera_health(CameraStatus("c"), T0).state == "starting"


def test_state_change_is_a_significant_change() -> None:
    def msg(state: str) -> fleet_pb2.Health:
        return pl.health("d", 1, 1, T0, SYSTEM, None, [CameraStatus("c", False, state=state)], 0)

    a, b = msg("starting"), msg("unreachable")
    assert pl.significant_change(a, b)
    assert not pl.significant_change(b, msg("unreachable"))


SYSTEM = pl.SystemFigures(1.0, 2.0, 10**9, 10**10)


def test_capture_events_travel_with_their_own_kind() -> None:
    ev = AgentEvent("long_gop", T0, camera_id="c", detail="keyframe every 10.0 s")
    msg = pl.event(ev, "d", 1, 1)
    assert msg.kind == fleet_pb2.Event.KIND_LONG_GOP and msg.detail == "keyframe every 10.0 s"
    for kind in ("codec_changed", "audio_changed", "audio_lost", "file_rejected"):
        assert pl.event(AgentEvent(kind, T0), "d", 1, 1).kind != fleet_pb2.Event.KIND_UNSPECIFIED
