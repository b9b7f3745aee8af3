"""The fleet API over real HTTP: camera states and reasons, GOP, the clock offset, alert levels,
and the agent's segment flags by name (clock_skew).

The fleet view is a real FleetService fed the protobuf messages its MQTT loop delivers (the
MQTT path itself is covered by test_fleet_camera_state and test_fleet_clock_skew).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.catalog import SegmentRow
from controller.clock import ManualClock
from controller.fleet.directory import StaticDirectory
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetService
from controller.fleet.topics import device_topic
from protos.vigil.v1 import fleet_pb2
from tests.integration.test_api_support import OFFICER, T0, ApiWorld

COUNTY, SITE = "成县", "site-01"
MJPEG = (
    "camera cam-01: rtsp://***@10.0.0.5/h265 sends mjpeg video; only H.264 and H.265 are supported"
)
SEG_US = 4_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    world = ApiWorld(tmp_path)
    yield world
    world.close()


def feed(fleet: FleetService, leaf: str, msg: fleet_pb2.Birth | fleet_pb2.Health) -> None:
    topic = device_topic(COUNTY, SITE, "dev-cx", leaf)
    assert fleet.handle_message(topic, msg.SerializeToString()) == "accepted"


def test_camera_states_clock_offset_and_alert_levels(api: ApiWorld) -> None:
    directory = StaticDirectory({"dev-cx": (COUNTY, SITE)})
    fleet = FleetService(
        MqttSettings("127.0.0.1", 1, "x"), ManualClock(api.clock.now_us()), directory
    )
    cams = [
        fleet_pb2.CameraDescription(camera_id="cam-01", segment_seconds=4),
        fleet_pb2.CameraDescription(camera_id="cam-02", segment_seconds=4),
    ]
    feed(fleet, "birth", fleet_pb2.Birth(device_id="dev-cx", session=1, cameras=cams))
    health = fleet_pb2.Health(
        device_id="dev-cx",
        session=1,
        seq=1,
        at_unix_us=api.clock.now_us(),
        disk_free_bytes=10**11,
        disk_total_bytes=10**12,
        eviction_eta_s=-1,
        uptime_s=120.0,
        clock_offset_known=True,
        clock_offset_ms=-8_000.0,
        clock_offset_error_ms=4.0,
        cameras=[
            fleet_pb2.CameraHealth(
                camera_id="cam-01", state="unsupported_codec", reason=MJPEG, frame_age_s=-1
            ),
            fleet_pb2.CameraHealth(
                camera_id="cam-02", state="streaming", connected=True, frame_age_s=0.5, gop_s=10
            ),
        ],
    )
    feed(fleet, "health", health)
    api.deps.fleet = fleet

    detail = api.client.get("/api/v1/devices/dev-cx", headers=api.auth(OFFICER)).json()
    states = {c["camera_id"]: c for c in detail["camera_states"]}
    assert states["cam-01"]["state"] == "unsupported_codec"
    assert states["cam-01"]["reason"] == MJPEG
    assert (states["cam-02"]["state"], states["cam-02"]["gop_s"]) == ("streaming", 10.0)
    assert detail["clock_offset_s"] == -8.0 and detail["clock_offset_error_s"] == 0.004
    assert detail["health"]["cameras"][0]["state"] == "unsupported_codec"

    alerts = api.client.get("/api/v1/alerts", headers=api.auth(OFFICER)).json()
    by_kind = {(a["kind"], a["camera_id"]): a for a in alerts}
    assert set(by_kind) == {
        ("camera_unsupported", "cam-01"),
        ("long_gop", "cam-02"),
        ("clock_skew", ""),
    }
    assert by_kind[("camera_unsupported", "cam-01")]["detail"] == f"unsupported_codec: {MJPEG}"
    assert by_kind[("camera_unsupported", "cam-01")]["level"] == "warning"
    assert by_kind[("long_gop", "cam-02")]["level"] == "info"
    assert "8.0 s behind the controller's" in by_kind[("clock_skew", "")]["detail"]


def test_segments_show_the_agents_flags_by_name(api: ApiWorld) -> None:
    rows = [
        SegmentRow(
            segment_id=f"cam-01-{i}",
            camera_id="cam-01",
            device_id="dev-cx",
            start_us=T0 + i * SEG_US,
            duration_us=SEG_US,
            end_us=T0 + (i + 1) * SEG_US,
            size_bytes=100,
            sha256=f"{i:064x}",
            object_key=f"k/{i}",
            agent_flags=flags,
        )
        for i, flags in enumerate((0, 4, 1 | 4))
    ]
    api.world.catalog.add_segments(rows)
    r = api.client.get(
        "/api/v1/cameras/cam-01/segments",
        params={"from": str(T0), "to": str(T0 + 3 * SEG_US)},
        headers=api.auth(OFFICER),
    )
    assert r.status_code == 200, r.text
    assert [s["agent_flags"] for s in r.json()["segments"]] == [
        [],
        ["clock_skew"],
        ["discontinuity", "clock_skew"],
    ]
