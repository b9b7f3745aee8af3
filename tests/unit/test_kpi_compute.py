"""The KPI arithmetic by hand-computed examples (controller/kpi/compute.py, figures.py,
controller/catalog/accounting.py's pure parts, controller/fleet/transitions.py)."""

from __future__ import annotations

import math

from controller.catalog.accounting import (
    HOUR_US,
    delay_column,
    gap_between,
    loss_deltas,
    split_hours,
)
from controller.fleet import monitor as mo
from controller.fleet import transitions as tr
from controller.kpi.compute import (
    Change,
    Span,
    alert_clear_times,
    overlap,
    per_day,
    percentile_from_histogram,
    ratio,
    time_in,
    timeline,
)
from controller.kpi.figures import Place, camera_kind, camera_result, township_of
from protos.vigil.v1 import fleet_pb2

US = 1_000_000
H = HOUR_US


def test_timeline_starts_with_the_state_in_force_and_ignores_repeats() -> None:
    changes = [
        Change(-5 * H, "online"),
        Change(2 * H, "offline", "will"),
        Change(3 * H, "offline", "timeout"),  # same state: no change
        Change(4 * H, "online"),
        Change(4 * H + 1, "online"),  # a restart writes it again: nothing
        Change(20 * H, "offline"),  # after the period
    ]
    spans = timeline(changes, 0, 10 * H)
    assert spans == [
        Span(0, 2 * H, "online"),
        Span(2 * H, 4 * H, "offline", "will"),
        Span(4 * H, 10 * H, "online"),
    ]
    assert time_in(spans, ["online"]) == 8 * H


def test_time_before_the_first_transition_is_unknown() -> None:
    assert timeline([Change(3 * H, "online")], 0, 10 * H) == [Span(3 * H, 10 * H, "online")]
    assert timeline([], 0, H) == []


def test_overlap_and_per_day() -> None:
    a = [Span(0, 10, "online"), Span(20, 30, "online")]
    b = [Span(5, 25, "frozen")]
    assert overlap(a, b) == 5 + 5
    day = 86_400 * US
    assert per_day([Span(day - H, day + 2 * H, "online")], ["online"], 0, 2) == [H, 2 * H]


def test_percentile_is_the_upper_bound_of_the_bucket_holding_the_rank() -> None:
    bounds = [10, 30, 60]
    assert percentile_from_histogram([50, 45, 5, 0], bounds, 0.5) == 10
    assert percentile_from_histogram([50, 45, 5, 0], bounds, 0.95) == 30
    assert percentile_from_histogram([50, 44, 5, 1], bounds, 0.96) == 60
    assert percentile_from_histogram([0, 0, 0, 1], bounds, 0.5) == math.inf
    assert percentile_from_histogram([0, 0, 0, 0], bounds, 0.5) is None
    assert ratio(1, 0) is None and ratio(1, 4) == 0.25


def test_alerts_time_to_clear() -> None:
    changes = [
        ("d/offline/", Change(0, "raised")),
        ("d/offline/", Change(10 * US, "raised")),  # still open: not a second alert
        ("d/offline/", Change(60 * US, "cleared")),
        ("e/disk/", Change(5 * US, "raised")),
    ]
    assert alert_clear_times(changes) == (2, [60])


def test_hour_split_delays_gaps_and_losses() -> None:
    assert split_hours(H - 60 * US, H + 30 * US) == [(0, 60 * US), (H, 30 * US)]
    assert delay_column(10 * US) == "delay_le_10"
    assert delay_column(11 * US) == "delay_le_30"
    assert delay_column(10**12) == "delay_over"
    a = {"sha256": "aa", "prev_sha256": "", "start_us": 0, "end_us": 4 * US}
    b = {"sha256": "bb", "prev_sha256": "aa", "start_us": 64 * US, "end_us": 68 * US}
    c = {"sha256": "cc", "prev_sha256": "zz", "start_us": 100 * US, "end_us": 104 * US}
    assert gap_between(a, b) == (4 * US, 64 * US)
    assert gap_between(b, c) is None  # not chained: an eviction between them, not a gap
    d = loss_deltas("cam", H - 2 * US, H + 2 * US, 500)
    assert d[("cam", 0)]["evicted_us"] == 2 * US and d[("cam", H)]["recorded_us"] == 2 * US
    assert d[("cam", 0)]["evicted_bytes"] == 500


def test_working_time_is_online_time_without_picture_faults() -> None:
    place = Place("c", "d", "wudu", "wudu-01", "wudu-01-01", "nvr", "II")
    cam = [Change(0, "online"), Change(6 * H, "offline"), Change(8 * H, "online")]
    image = [Change(5 * H, "black"), Change(9 * H, "ok")]
    r = camera_result(place, cam, image, {"recorded_us": 5 * H}, (), 0, 10 * H, 1)
    f = r.figures
    assert (f.online_us, f.image_fault_us, f.working_us) == (8 * H, 2 * H, 6 * H)
    assert f.online_rate == 0.8 and f.working_rate == 0.6 and f.integrity == 0.5
    assert r.kind == "existing"
    assert camera_kind(place, 1080) == "village_hd"
    handheld = Place("h", "hh", "wudu", "", "m", "handheld", "II")
    assert camera_kind(handheld, 0) == "handheld"
    assert township_of("wudu-03-12") == "wudu-03" and township_of("v001") == ""


def _health(*cams: tuple[str, bool, str]) -> fleet_pb2.Health:
    return fleet_pb2.Health(
        cameras=[fleet_pb2.CameraHealth(camera_id=c, connected=k, state=s) for c, k, s in cams]
    )


def test_transitions_only_when_something_changed() -> None:
    off = mo.DeviceRecord("d", "wudu", "s")
    on = off._replace(online=True, health=_health(("a", True, "streaming")))
    rows, written = tr.device_changes(off, on, {}, 5)
    assert [(r.subject, r.camera_id, r.state) for r in rows] == [
        ("device", "", "online"),
        ("camera", "a", "online"),
    ]
    same = on._replace(health=_health(("a", True, "streaming")))
    assert tr.device_changes(on, same, written, 6) == ([], written)
    stalled = on._replace(health=_health(("a", True, "stalled")))
    rows, written = tr.device_changes(on, stalled, written, 7)
    assert [(r.state, r.reason) for r in rows] == [("stale", "stalled")]
    gone = stalled._replace(online=False, reason="timeout")
    rows, written = tr.device_changes(stalled, gone, written, 8)
    assert [(r.subject, r.state, r.reason) for r in rows] == [
        ("device", "offline", "timeout"),
        ("camera", "offline", "device timeout"),
    ]


def test_events_carry_losses_and_image_faults() -> None:
    ev = fleet_pb2.Event(
        device_id="d",
        session=3,
        seq=9,
        kind=fleet_pb2.Event.KIND_UNSENT_EVICTED,
        camera_id="a",
        bytes=7,
    )
    ev.range.start_unix_us, ev.range.end_unix_us = 10, 20
    changes, losses = tr.event_facts(ev, 99)
    assert changes == [] and len(losses) == 1
    assert (losses[0].session, losses[0].seq, losses[0].reason) == (3, 9, "buffer_full")
    img = fleet_pb2.Event(
        device_id="d", kind=fleet_pb2.Event.KIND_IMAGE_FAULT, camera_id="a", detail="black: x"
    )
    changes, losses = tr.event_facts(img, 5)
    assert [(c.subject, c.state) for c in changes] == [("image", "black")] and losses == []
