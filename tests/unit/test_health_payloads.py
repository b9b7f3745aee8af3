"""The agent's MQTT payloads, built from plain data: no broker, disk or camera."""

from __future__ import annotations

from edge_agent.config import parse_config
from edge_agent.health import payloads as pl
from edge_agent.health.outbox import Outbox
from edge_agent.model import AgentEvent, BufferStats, CameraStatus, EvictionRecord, Gap
from protos.vigil.v1 import common_pb2, fleet_pb2

T0 = 1_800_000_000_000_000
S = 1_000_000
CONFIG = parse_config(
    """
device_id = "nvr-1"
county = "wudu"
site = "v001"
[[cameras]]
id = "cam1"
url = "rtsp://admin:secret@10.0.0.5/stream1"
[mqtt]
health_interval_s = 15
""",
    "test",
)
SYSTEM = pl.SystemFigures(
    cpu_pct=12.5, mem_pct=40.0, disk_free_bytes=10**10, disk_total_bytes=10**11
)


def test_birth_describes_device_without_credentials() -> None:
    b = pl.birth(CONFIG, 7, T0, "1.2.3", 10**11, ["hold"])
    assert (b.device_id, b.session, b.agent_version, b.county, b.site) == (
        "nvr-1",
        7,
        "1.2.3",
        "wudu",
        "v001",
    )
    assert b.kind == common_pb2.DEVICE_KIND_NVR and b.health_interval_s == 15
    assert b.cameras[0].url_redacted == "rtsp://***@10.0.0.5/stream1"
    assert "secret" not in b.SerializeToString().decode("latin-1")


def test_state_payload_round_trips() -> None:
    s = fleet_pb2.DeviceState.FromString(pl.state("nvr-1", False, 9, T0, "will"))
    assert (s.online, s.session, s.reason) == (False, 9, "will")


def stats(unsent: int = 3, unsent_bytes: int = 600, quota: int = 1000) -> BufferStats:
    return BufferStats(
        total_bytes=800,
        quota_bytes=quota,
        unsent_segments=unsent,
        unsent_bytes=unsent_bytes,
        uploaded_segments=2,
        uploaded_bytes=200,
        held_segments=1,
        oldest_unsent_start_us=T0 - 120 * S if unsent else None,
    )


def test_health_figures_cameras_and_backlog() -> None:
    cam = CameraStatus(
        "cam1",
        connected=True,
        last_frame_us=T0 - 2 * S,
        fps=25.0,
        bitrate_bps=800,
        last_keyframe_us=T0 - 3 * S,
        gaps=[
            Gap("cam1", T0 - 7200 * S, T0 - 7100 * S, "old"),
            Gap("cam1", T0 - 60 * S, T0 - 50 * S, "recent"),
        ],
    )
    h = pl.health("nvr-1", 7, 4, T0, SYSTEM, stats(), [cam], 5000)
    assert (h.seq, h.cpu_pct, h.disk_free_bytes, h.upload_rate_bps) == (4, 12.5, 10**10, 5000)
    assert (h.segments_unsent, h.segments_uploaded, h.segments_held) == (3, 2, 1)
    assert h.oldest_unsent_age_s == 120.0
    # 400 bytes of room left at 100 bytes/s.
    assert h.eviction_eta_s == 4.0
    c = h.cameras[0]
    assert c.connected and c.frame_age_s == 2.0 and c.gaps_last_hour == 1


def test_eviction_eta_never_when_nothing_unsent_or_no_input() -> None:
    assert pl.eviction_eta_s(stats(unsent=0), [CameraStatus("c", True, bitrate_bps=8)]) == -1
    assert pl.eviction_eta_s(stats(), [CameraStatus("c", False, bitrate_bps=8)]) == -1


def test_camera_never_seen_has_negative_frame_age() -> None:
    assert pl.camera_health(CameraStatus("c"), T0).frame_age_s == -1.0


def test_event_kinds_and_range() -> None:
    ev = AgentEvent("camera_lost", T0, camera_id="cam1", detail="eof")
    e = pl.event(ev, "nvr-1", 3, 11)
    assert e.kind == fleet_pb2.Event.KIND_CAMERA_LOST and e.seq == 11 and not e.HasField("range")
    weird = pl.event(AgentEvent("martian", T0, detail="x"), "nvr-1", 3, 12)
    assert weird.kind == fleet_pb2.Event.KIND_UNSPECIFIED and weird.detail == "martian: x"
    rec = EvictionRecord(1, "seg-1", "cam1", T0, T0 + 10 * S, 999, False, T0 + 20 * S, False)
    evicted = pl.event(pl.eviction_event(rec), "nvr-1", 3, 13)
    assert evicted.kind == fleet_pb2.Event.KIND_UNSENT_EVICTED
    assert (evicted.range.start_unix_us, evicted.range.end_unix_us, evicted.bytes) == (
        T0,
        T0 + 10 * S,
        999,
    )


def test_disk_low_edge_triggered_with_hysteresis() -> None:
    low, ev = pl.disk_low_change(False, 90, 100, T0)
    assert low and ev is not None and ev.kind == "disk_low"
    assert pl.disk_low_change(True, 80, 100, T0) == (True, None)  # still low: no repeat
    assert pl.disk_low_change(True, 105, 100, T0) == (True, None)  # inside hysteresis
    assert pl.disk_low_change(True, 111, 100, T0) == (False, None)


def test_significant_change() -> None:
    up = pl.health("d", 1, 1, T0, SYSTEM, None, [CameraStatus("c", True, T0)], 0)
    down = pl.health("d", 1, 2, T0, SYSTEM, None, [CameraStatus("c", False, T0)], 0)
    same = pl.health("d", 1, 3, T0 + S, SYSTEM, None, [CameraStatus("c", True, T0)], 0)
    assert pl.significant_change(None, up)
    assert pl.significant_change(up, down)
    assert not pl.significant_change(up, same)
    soon = fleet_pb2.Health(eviction_eta_s=100)
    assert pl.significant_change(fleet_pb2.Health(eviction_eta_s=-1), soon)
    assert not pl.significant_change(soon, soon)


def test_outbox_drops_oldest_and_counts() -> None:
    box: Outbox[int] = Outbox(3)
    for i in range(5):
        box.push(i)
    assert len(box) == 3 and box.drain() == [2, 3, 4] and len(box) == 0
    assert box.take_dropped() == 2 and box.take_dropped() == 0 and box.dropped_total == 2
