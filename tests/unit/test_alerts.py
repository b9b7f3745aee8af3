"""Alert rules: each raised once while its condition holds, cleared once when it stops."""

from __future__ import annotations

from controller.fleet import alerts as al
from controller.fleet import monitor as mo
from protos.vigil.v1 import fleet_pb2

T0 = 1_800_000_000_000_000
S = 1_000_000
RULES = al.AlertRules(
    offline_after_s=60,
    frame_age_s=20,
    disk_low_bytes=1000,
    eviction_eta_s=3600,
    reconnects=3,
    reconnect_window_s=600,
    clock_skew_s=30,
    flood_window_s=60,
)


def base(**health: object) -> mo.DeviceRecord:
    fields: dict[str, object] = {"disk_free_bytes": 10**8, "eviction_eta_s": -1, **health}
    h = fleet_pb2.Health(device_id="d", disk_total_bytes=10**9, **fields)  # type: ignore[arg-type]
    return mo.DeviceRecord("d", "c", "s", online=True, changed_us=T0, last_seen_us=T0, health=h)


def kinds(r: mo.DeviceRecord, now: int = T0) -> set[tuple[str, str]]:
    return {(k[1], k[2]) for k in al.evaluate(r, now, RULES)}


def test_healthy_device_has_no_alerts() -> None:
    assert (
        kinds(base(cameras=[fleet_pb2.CameraHealth(camera_id="c1", connected=True, frame_age_s=1)]))
        == set()
    )


def test_offline_only_after_threshold_and_hides_health_rules() -> None:
    r = base(disk_free_bytes=5)._replace(online=False, reason="will")
    assert kinds(r, T0 + 59 * S) == set()
    assert kinds(r, T0 + 61 * S) == {("device_offline", "")}


def test_camera_stale_per_camera() -> None:
    r = base(
        cameras=[
            fleet_pb2.CameraHealth(camera_id="ok", connected=True, frame_age_s=2),
            fleet_pb2.CameraHealth(camera_id="old", connected=True, frame_age_s=25),
            fleet_pb2.CameraHealth(camera_id="gone", connected=False, frame_age_s=1),
        ]
    )
    assert kinds(r) == {("camera_stale", "old"), ("camera_stale", "gone")}


def test_disk_low_backlog_skew_reconnects_flood() -> None:
    assert kinds(base(disk_free_bytes=999)) == {("disk_low", "")}
    assert kinds(base(segments_unsent=3, eviction_eta_s=100)) == {("backlog_near_eviction", "")}
    assert kinds(base(segments_unsent=0, eviction_eta_s=100)) == set()
    # Without an RPC measure, the MQTT arrival skew must pass the threshold and the margin.
    assert kinds(base()._replace(clock_skew_s=-31)) == set()
    assert kinds(base()._replace(clock_skew_s=-36)) == {("clock_skew", "")}
    many = base()._replace(connects_us=(T0 - 700 * S, T0 - 5 * S, T0 - 3 * S, T0))
    assert kinds(many) == {("repeated_reconnects", "")}
    few = many._replace(connects_us=(T0 - 700 * S, T0 - 650 * S, T0))
    assert kinds(few) == set()
    flood = base()._replace(last_flood_us=T0 - 10 * S, flood_dropped=7)
    assert kinds(flood) == {("flooding", "")}
    assert kinds(flood, T0 + 61 * S) == set()


def test_raised_once_and_cleared_once() -> None:
    active: dict[al.AlertKey, al.Alert] = {}
    low = al.evaluate(base(disk_free_bytes=1), T0, RULES)
    raised, cleared = al.reconcile(active, "d", low, T0)
    assert [a.kind for a in raised] == ["disk_low"] and cleared == []
    active = {a.key: a for a in raised}
    raised, cleared = al.reconcile(active, "d", low, T0 + S)  # still low: nothing new
    assert raised == [] and cleared == []
    ok = al.evaluate(base(), T0 + 2 * S, RULES)
    raised, cleared = al.reconcile(active, "d", ok, T0 + 2 * S)
    assert raised == [] and [a.kind for a in cleared] == ["disk_low"]
    raised, cleared = al.reconcile({}, "d", ok, T0 + 3 * S)  # already cleared: nothing again
    assert raised == [] and cleared == []


def cam(camera_id: str = "c1", **fields: object) -> fleet_pb2.CameraHealth:
    return fleet_pb2.CameraHealth(camera_id=camera_id, **fields)  # type: ignore[arg-type]


def detail(r: mo.DeviceRecord, kind: str, camera_id: str = "c1") -> str:
    return al.evaluate(r, T0, RULES)[("d", kind, camera_id)]


HEVC = "camera c1: rtsp://***@10.0.0.5/h265 sends hevc video; only H.264 is supported"


def test_camera_alerts_name_the_real_reason() -> None:
    r = base(
        uptime_s=100,
        cameras=[
            cam("hevc", state="unsupported_codec", reason=HEVC, frame_age_s=-1),
            cam("pw", state="auth_failed", reason="401 Unauthorized", frame_age_s=-1),
            cam("off", state="unreachable", reason="Connection refused", frame_age_s=-1),
            cam("cut", state="disconnected", reason="stream broke", frame_age_s=40),
            cam("slow", state="streaming", connected=True, frame_age_s=25),
            cam("ok", state="streaming", connected=True, frame_age_s=1),
        ],
    )
    assert kinds(r) == {
        ("camera_unsupported", "hevc"),
        ("camera_auth_failed", "pw"),
        ("camera_unreachable", "off"),
        ("camera_stale", "cut"),
        ("camera_stale", "slow"),
    }
    assert detail(r, "camera_unsupported", "hevc") == f"unsupported_codec: {HEVC}"
    assert "Connection refused" in detail(r, "camera_unreachable", "off")
    assert "no frame since the agent started" in detail(r, "camera_unreachable", "off")
    assert detail(r, "camera_stale", "cut") == "disconnected: stream broke (last frame 40 s ago)"
    assert al.level_of("camera_unsupported") == "warning"


def test_startup_grace_holds_transient_states_only() -> None:
    cams = [
        cam("new", state="starting", frame_age_s=-1),
        cam("off", state="unreachable", reason="Connection refused", frame_age_s=-1),
        cam("hevc", state="unsupported_codec", reason=HEVC, frame_age_s=-1),
        cam("old", state="disconnected", reason="eof", frame_age_s=3),  # had frames: no grace
    ]
    early = base(uptime_s=5, cameras=cams)
    assert kinds(early) == {("camera_unsupported", "hevc"), ("camera_stale", "old")}
    late = base(uptime_s=31, cameras=cams)
    assert kinds(late) == {
        ("camera_stale", "new"),
        ("camera_unreachable", "off"),
        ("camera_unsupported", "hevc"),
        ("camera_stale", "old"),
    }
    assert "starting" in detail(late, "camera_stale", "new")


def test_older_agent_without_state_keeps_the_connected_rule() -> None:
    r = base(cameras=[cam("x", connected=False, frame_age_s=-1)])
    assert kinds(r) == {("camera_stale", "x")}


def with_birth(r: mo.DeviceRecord, **targets: int) -> mo.DeviceRecord:
    cams = [fleet_pb2.CameraDescription(camera_id=c, segment_seconds=t) for c, t in targets.items()]
    return r._replace(birth=fleet_pb2.Birth(device_id="d", cameras=cams))


def test_long_gop_is_an_info_alert_against_the_segment_target() -> None:
    ok = dict(state="streaming", connected=True, frame_age_s=1)
    r = base(
        cameras=[cam("long", gop_s=10.0, **ok), cam("edge", gop_s=4.1, **ok), cam("short", **ok)]
    )
    r = with_birth(r, long=4, edge=4, short=4)
    assert kinds(r) == {("long_gop", "long")}
    assert "every 10.0 s, longer than the 4 s segment target" in detail(r, "long_gop", "long")
    assert al.level_of("long_gop") == "info"
    assert kinds(base(cameras=[cam("long", gop_s=10.0, **ok)])) == set()  # no birth: no target


def test_clock_skew_from_rpc_measure_uses_the_error_bound() -> None:
    def skew(ms: float, err: float) -> mo.DeviceRecord:
        r = base(clock_offset_known=True, clock_offset_ms=ms, clock_offset_error_ms=err)
        return r._replace(clock_skew_s=0.0)

    rules = al.AlertRules()  # defaults: 2 s
    assert al.skew_alert(skew(10_000, 3), rules) == (
        "device clock 10.0 s ahead of the controller's (±3 ms, measured over RPC; threshold 2 s)"
    )
    assert "behind" in (al.skew_alert(skew(-2_500, 100), rules) or "")
    assert al.skew_alert(skew(2_500, 600), rules) is None  # could be within 2 s
    assert al.skew_alert(skew(1_900, 0), rules) is None
    # An RPC measure overrides the coarser MQTT arrival skew.
    assert al.skew_alert(skew(0, 1)._replace(clock_skew_s=60.0), rules) is None
