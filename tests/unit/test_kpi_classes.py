"""Upload timeliness per traffic class: the class is the one the scheduler leased (its desk
hands the probed segments' classes to the upkeep), the histograms are completed with the
unclassified rest, and a class that is not one is refused (pure: no database)."""

from __future__ import annotations

import itertools

import pytest

from controller.catalog.history_models import DELAY_BOUNDS_S, DELAY_COLUMNS
from controller.catalog.timeliness import ClassError, Classified, check_classes, class_deltas
from controller.kpi.classes import class_histograms, class_rows
from controller.scheduler.convert import device_report
from controller.scheduler.desk import LeaseDesk
from controller.scheduler.inventory import demand_from_inventory
from controller.scheduler.options import SchedulerOptions, default_topology
from controller.scheduler.upkeep import leased_classes
from protos.vigil.v1 import agent_control_pb2 as pb
from protos.vigil.v1 import common_pb2

NOW = 1_767_225_600_000_000
S = 1_000_000
H = 3600 * S


def _desk() -> LeaseDesk:
    ids = (f"L{i}" for i in itertools.count())
    return LeaseDesk(
        default_topology(10**10), SchedulerOptions(default_link_bps=20_000_000), lambda: next(ids)
    )


def _report(desk: LeaseDesk, device: str, segments: list[tuple[str, int]]) -> None:
    """An inventory whose unsent segments are filed under the given classes."""
    inv = pb.Inventory(device_id=device, reported_unix_us=NOW)
    per: dict[int, int] = {}
    for i, (sid, cls) in enumerate(segments):
        inv.unsent.add(
            segment_id=sid, camera_id="cam", start_unix_us=NOW - (60 - i) * S,
            size_bytes=1_000_000, traffic_class=cls,
        )  # fmt: skip
        per[cls] = per.get(cls, 0) + 1
    for cls, n in per.items():
        inv.backlog.add(camera_id="cam", traffic_class=cls, bytes=n * 1_000_000, segments=n)
    demand = demand_from_inventory(inv, authenticated_device=device, now_us=NOW)
    desk.inventory(device, inv, demand, device_report(inv))


def test_the_desk_hands_the_upkeep_each_probed_segment_s_leased_class() -> None:
    desk = _desk()
    ev, bf = common_pb2.TRAFFIC_CLASS_EVIDENCE, common_pb2.TRAFFIC_CLASS_BACKFILL
    _report(desk, "d1", [("cam-1", ev), ("cam-2", bf)])
    desk.connect("d1", NOW)
    desk.replan(NOW)
    lease = desk.book.active("d1")
    assert lease is not None
    asked = desk.upkeep_input(NOW)
    assert asked.classes == {"cam-1": ev, "cam-2": bf}
    # The lease finishes: its segments are probed once more, with the classes they had.
    desk.finish("d1", pb.LeaseReport(lease_id=lease.lease_id, done_segment_ids=["cam-1"]))
    assert desk.book.active("d1") is None
    asked = desk.upkeep_input(NOW + S)
    assert asked.classes == {"cam-1": ev, "cam-2": bf}
    committed = [("d1", "cam-1", 1_000_000, NOW + S), ("d1", "cam-9", 5, NOW + S)]
    # Only committed segments a lease named are classified: cam-9 was never leased.
    assert leased_classes(committed, asked.classes) == {"cam-1": ev}
    desk.upkeep_done(asked, committed, {}, {})
    # cam-1 is settled; cam-2 (not committed yet) is looked for until its lease can have no
    # upload under way any more, then forgotten.
    assert desk.upkeep_input(NOW + 2 * S).classes == {"cam-2": bf}
    late = lease.expires_us + (lease.expires_us - lease.issued_us)
    asked = desk.upkeep_input(late)
    assert asked.classes == {"cam-2": bf}
    desk.upkeep_done(asked, [], {}, {})
    assert desk.probe_classes == {} and desk.upkeep_input(late + S).classes == {}


def test_an_upload_committed_rounds_after_its_lease_was_reclaimed_is_still_classified() -> None:
    """With no leader change: the lease expires (reclaimed) while the agent's last upload is
    in flight; it commits two rounds later. Before, a departed lease's segments were looked
    for once, and this one stayed unclassified."""
    desk = _desk()
    ev = common_pb2.TRAFFIC_CLASS_EVIDENCE
    _report(desk, "d1", [("cam-1", ev)])
    desk.connect("d1", NOW)
    desk.replan(NOW)
    lease = desk.book.active("d1")
    assert lease is not None
    assert [x.lease_id for x in desk.reclaim(lease.expires_us)] == [lease.lease_id]
    t = lease.expires_us
    for _ in range(2):  # rounds that find nothing committed yet
        t += 2 * S
        asked = desk.upkeep_input(t)
        assert asked.classes == {"cam-1": ev}
        desk.upkeep_done(asked, [], {}, {})
    asked = desk.upkeep_input(t + 2 * S)
    committed = [("d1", "cam-1", 1_000_000, t + S)]
    assert leased_classes(committed, asked.classes) == {"cam-1": ev}
    desk.upkeep_done(asked, committed, {}, {})
    assert desk.probe == set() and desk.probe_until == {}


def test_a_class_that_is_not_one_is_refused_whole() -> None:
    assert check_classes({"a": 1, "b": 5}) == {"a": 1, "b": 5}
    for bad in (0, 6, -3, True):
        with pytest.raises(ClassError, match="unknown traffic class"):
            check_classes({"a": 1, "b": bad})
    with pytest.raises(ClassError, match="1-128"):
        check_classes({"": 1})
    with pytest.raises(ClassError, match="1-128"):
        check_classes({"x" * 129: 1})


def test_class_deltas_count_each_segment_in_its_start_hour_and_delay_bucket() -> None:
    rows = [
        Classified("cam", 10 * H - 5 * S, 10 * H + 5 * S, 10 * H + 25 * S, 1),  # 20 s: ≤ 30
        Classified("cam", 10 * H, 10 * H + 10 * S, 10 * H + 10 * S + 2000 * S, 5),
        Classified("cam", 10 * H + 20 * S, 10 * H + 30 * S, 10 * H + 29 * S, 5),  # early: ≤ 10
    ]
    deltas = class_deltas(rows)
    assert deltas[("cam", 9 * H, 1)] == {"segments": 1, "delay_le_30": 1}
    assert deltas[("cam", 10 * H, 5)] == {"segments": 2, "delay_le_3600": 1, "delay_le_10": 1}


def test_unclassified_is_the_rest_of_the_camera_s_histogram() -> None:
    total = [5, 3, 0, 0, 0, 0, 2, 0, 0]
    hists = class_histograms(
        total, {1: [2, 0, 0, 0, 0, 0, 0, 0, 0], 5: [0, 0, 0, 0, 0, 0, 2, 0, 0]}
    )
    assert hists == {
        "evidence": [2, 0, 0, 0, 0, 0, 0, 0, 0],
        "backfill": [0, 0, 0, 0, 0, 0, 2, 0, 0],
        "unclassified": [3, 3, 0, 0, 0, 0, 0, 0, 0],
    }
    assert class_histograms([0] * 9, {}) == {}
    rows = {r["class"]: r for r in class_rows(hists, DELAY_BOUNDS_S, DELAY_COLUMNS, every=True)}
    assert list(rows) == ["evidence", "live", "event", "archive", "backfill", "unclassified"]
    assert (rows["backfill"]["p50_s"], rows["unclassified"]["p95_s"]) == (14400.0, 30.0)
    assert rows["live"]["segments"] == 0 and rows["live"]["p95_s"] is None
