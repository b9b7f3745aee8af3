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
    assert kinds(base()._replace(clock_skew_s=-31)) == {("clock_skew", "")}
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
