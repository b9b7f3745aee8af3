"""A camera's real state and reason reach the controller's fleet view and alerts.

Real components end to end: the agent as `vigil-agent run` builds it (capture workers, buffer,
MQTT health reporter, via `wire_components`), a private Mosquitto with the fleet ACL, the real
controller FleetService, and real RTSP cameras: camsim (H.264, one with a long GOP), a
GStreamer RTSP server sending VP8 (a codec the agent refuses), one that demands a password
the agent gets wrong, and a port where nothing listens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.fleet.alerts import Alert, AlertRules
from controller.fleet.service import FleetOptions, FleetService
from edge_agent.app import Agent
from edge_agent.capture import CaptureSettings
from edge_agent.clock import SystemClock
from edge_agent.config import parse_config
from edge_agent.wiring import wire_components
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker
from tests.integration.test_fleet_support import COUNTY, SITE, record, start_service, wait_online
from tests.support import ManagedProcess, free_port, wait_until
from vigil_camsim.launcher import CamsimProcess

DEVICE = "nvr-states"
GRACE_S = 12.0  # longer than the 5 s-GOP camera needs to stream on a loaded machine
PASSWORD = "s3cret-Right"
WRONG = "wr0ng-Guess"

# A GStreamer RTSP server (Debian's python3-gi): argv = port, codec (vp8 | h264), password
# ("" for none). Tiny and slow (160x120, 5 fps) so it costs next to nothing.
RTSP_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
port, codec, password = sys.argv[1], sys.argv[2], sys.argv[3]
enc = {"vp8": "vp8enc deadline=1 ! rtpvp8pay", "h264": "x264enc tune=zerolatency ! rtph264pay"}
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=5/1 ! "
    + enc[codec] + " name=pay0 )"
)
factory.set_shared(True)
if password:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic("admin", password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_role_from_structure(Gst.Structure.new_from_string(
        "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
    factory.set_permissions(perms)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


def rtsp_server(tmp_path: Path, codec: str, password: str = "") -> tuple[ManagedProcess, int]:
    script = tmp_path / "rtsp_server.py"
    script.write_text(RTSP_SERVER, encoding="utf-8")
    port = free_port()
    proc = ManagedProcess(
        ["/usr/bin/python3", str(script), str(port), codec, password],
        tmp_path / f"rtsp-{codec}-{port}.log",
    )
    proc.wait_port(port)
    return proc, port


@pytest.fixture
def fleet(mosquitto: Broker) -> Iterator[FleetService]:
    options = FleetOptions(tick_s=0.2, rules=AlertRules(startup_grace_s=GRACE_S))
    service = start_service(mosquitto, [DEVICE], options)
    yield service
    service.stop()


def agent_toml(data_dir: Path, port: int, secret: Path, cameras: dict[str, str]) -> str:
    cams = "".join(
        f'[[cameras]]\nid = "{cid}"\nurl = "{url}"\nsegment_seconds = 2\n'
        for cid, url in cameras.items()
    )
    return f"""
device_id = "{DEVICE}"
county = "{COUNTY}"
site = "{SITE}"
data_dir = "{data_dir}"
{cams}
[mqtt]
host = "127.0.0.1"
port = {port}
password_file = "{secret}"
health_interval_s = 1
"""


def camera(service: FleetService, camera_id: str) -> fleet_pb2.CameraHealth | None:
    r = service.device(DEVICE)
    if r is None or r.health is None:
        return None
    return next((c for c in r.health.cameras if c.camera_id == camera_id), None)


def state_of(service: FleetService, camera_id: str) -> str:
    c = camera(service, camera_id)
    return c.state if c is not None else ""


def alert(service: FleetService, kind: str, camera_id: str) -> Alert | None:
    return next(
        (a for a in service.alerts(DEVICE) if a.kind == kind and a.camera_id == camera_id), None
    )


def test_states_and_reasons_reach_the_fleet_view_and_alerts(
    mosquitto: Broker,
    fleet: FleetService,
    camsim: Callable[..., CamsimProcess],
    tmp_path: Path,
) -> None:
    vp8, vp8_port = rtsp_server(tmp_path, "vp8")
    locked, locked_port = rtsp_server(tmp_path, "h264", PASSWORD)
    ok = camsim(cameras=1)
    long_gop = camsim(cameras=1, gop_seconds=5.0, loop_seconds=10.0)
    cameras = {
        "ok": ok.url(1),
        "long": long_gop.url(1),
        "vp8": f"rtsp://127.0.0.1:{vp8_port}/cam",
        "pw": f"rtsp://admin:{WRONG}@127.0.0.1:{locked_port}/cam",
        "off": f"rtsp://127.0.0.1:{free_port()}/cam",  # nothing listens there
    }
    password = mosquitto.add_device(DEVICE)
    secret = mosquitto.password_file_for(DEVICE, password)
    config = parse_config(agent_toml(tmp_path / "agent", mosquitto.port, secret, cameras), "t")
    clock = SystemClock()
    settings = CaptureSettings(
        state_dir=tmp_path / "agent" / "capture",
        backoff_initial_s=0.2,
        backoff_cap_s=1.0,
        backoff_jitter_s=0.1,
        open_timeout_s=3.0,
        read_timeout_s=3.0,
    )
    (tmp_path / "agent").mkdir()
    agent = Agent.open(config, clock, settings)
    wire_components(agent, config, clock)
    agent.start()
    try:
        wait_online(fleet, DEVICE)
        expected = {
            "ok": "streaming",
            "vp8": "unsupported_codec",
            "pw": "auth_failed",
            "off": "unreachable",
        }
        wait_until(
            lambda: {c: state_of(fleet, c) for c in expected} == expected,
            GRACE_S - 1,
            f"camera states {expected} in the fleet view",
        )
        health = record(fleet, DEVICE).health
        assert health is not None and health.uptime_s < GRACE_S
        # Within the start-up grace: refusals that waiting cannot fix alert at once, a camera
        # that may still come up does not.
        wait_until(lambda: alert(fleet, "camera_auth_failed", "pw") is not None, 5, "auth alert")
        assert alert(fleet, "camera_unsupported", "vp8") is not None
        assert alert(fleet, "camera_unreachable", "off") is None

        # The reasons, as the agent logged them, without the camera's password.
        vp8_cam, pw_cam, off_cam = (camera(fleet, c) for c in ("vp8", "pw", "off"))
        assert vp8_cam is not None and pw_cam is not None and off_cam is not None
        assert "sends vp8 video" in vp8_cam.reason
        assert "401 Unauthorized" in pw_cam.reason and WRONG not in pw_cam.reason
        assert "Connection refused" in off_cam.reason
        unsupported = alert(fleet, "camera_unsupported", "vp8")
        assert unsupported is not None and "sends vp8 video" in unsupported.detail
        auth = alert(fleet, "camera_auth_failed", "pw")
        assert auth is not None and "401" in auth.detail and WRONG not in auth.detail

        # After the grace the unreachable camera alerts, naming why.
        wait_until(
            lambda: alert(fleet, "camera_unreachable", "off") is not None,
            GRACE_S + 10,
            "camera_unreachable after the start-up grace",
        )
        off = alert(fleet, "camera_unreachable", "off")
        assert off is not None and "Connection refused" in off.detail
        assert "no frame since the agent started" in off.detail

        # The long-GOP camera: it streams once its first keyframe came (up to one 5 s GOP plus
        # the probe, so not necessarily inside the grace on a loaded machine), then its
        # measured GOP is in health, with one info alert against its 2 s target.
        wait_until(lambda: state_of(fleet, "long") == "streaming", 20, "camera long streaming")
        wait_until(
            lambda: alert(fleet, "long_gop", "long") is not None, 20, "long_gop for camera long"
        )
        long_cam = camera(fleet, "long")
        assert long_cam is not None and long_cam.gop_s == pytest.approx(5.0, abs=0.2)
        long_alert = alert(fleet, "long_gop", "long")
        assert long_alert is not None and long_alert.level == "info"
        ok_cam = camera(fleet, "ok")
        assert ok_cam is not None and ok_cam.gop_s == pytest.approx(1.0, abs=0.1)
        assert not [a for a in fleet.alerts(DEVICE) if a.camera_id == "ok"]
    finally:
        agent.stop()
        vp8.stop()
        locked.stop()

    # Never, from the first health report on, a "stale" alert: not at start-up, and not for
    # cameras whose real reason is known.
    stale = [a for _, a in fleet.alert_log() if a.kind == "camera_stale"]
    assert stale == [], f"spurious stale alerts: {stale}"
    raised = [(a.kind, a.camera_id) for what, a in fleet.alert_log() if what == "raised"]
    assert len(raised) == len(set(raised)), f"an alert was raised twice: {raised}"
