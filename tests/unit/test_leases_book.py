"""The controller's leases, delivery accounting and wire conversions (pure)."""

from __future__ import annotations

import threading

import pytest

from controller.jobs.tracker import HoldWanted
from controller.scheduler.convert import device_report, lease_message
from controller.scheduler.leases import (
    DeliveryMeter,
    ForeignLeaseError,
    IssuedLease,
    LeaseBook,
    LeaseError,
    UnknownLeaseError,
    lease_ttl_us,
    link_delivery,
    make_lease,
    without_segments,
)
from controller.scheduler.mailbox import Mailbox
from controller.scheduler.model import (
    ClassBacklog,
    DemandError,
    Device,
    DeviceDemand,
    Link,
    PendingSegment,
    SchedulerError,
    TrafficClass,
)
from controller.scheduler.plan import DevicePlan, PlanConfig
from controller.scheduler.state import Planner
from controller.scheduler.topology import Topology
from protos.vigil.v1 import agent_control_pb2, common_pb2

S = 1_000_000
B, E = TrafficClass.BACKFILL, TrafficClass.EVIDENCE


def seg(sid: str, cls: TrafficClass = B, size: int = 1000, start: int = 1) -> PendingSegment:
    return PendingSegment(sid, "cam1", cls, start, size)


def lease(lid: str, device: str = "d1", ids: tuple[str, ...] = ("s1", "s2")) -> IssuedLease:
    return IssuedLease(lid, device, tuple(seg(i) for i in ids), 8000, 0, 10 * S, 1)


def test_a_lease_follows_the_device_plan() -> None:
    dp = DevicePlan("d1", (0, 0, 0, 0, 4000), (seg("s1"), seg("s2")), (None,) * 5)
    made = make_lease("L1", dp, 5 * S, 2 * S, 7)
    assert (made.rate_bps, made.expires_us, made.plan_version) == (4000, 7 * S, 7)
    assert made.traffic_class is B and made.size_bytes == 2000 and not made.idle
    idle = make_lease("L2", DevicePlan("d1", (0,) * 5, (seg("s1"),), (None,) * 5), 0, S, 1)
    assert idle.idle and idle.segments == () and idle.traffic_class is None
    assert lease_ttl_us(PlanConfig(horizon_s=10), 5) == 25 * S
    with pytest.raises(SchedulerError):
        lease_ttl_us(PlanConfig(), -1)


def test_one_active_lease_per_device_and_reports_about_it() -> None:
    book = LeaseBook()
    assert book.issue(lease("L1")) is None
    assert book.issue(lease("L2")).lease_id == "L1"  # type: ignore[union-attr]
    with pytest.raises(LeaseError, match="issued before"):
        book.issue(lease("L1"))
    book.issue(lease("M1", device="d2", ids=("t1",)))
    late = book.finish("d1", "L1", ["s1"], [])  # replaced: acknowledged, nothing to do
    assert late.lease is None and book.active("d1").lease_id == "L2"  # type: ignore[union-attr]
    with pytest.raises(ForeignLeaseError):
        book.finish("d1", "M1", [], [])
    with pytest.raises(UnknownLeaseError):
        book.finish("d1", "nope", [], [])
    with pytest.raises(LeaseError, match="does not contain"):
        book.finish("d1", "L2", ["zz"], [])
    with pytest.raises(LeaseError, match="done and failed"):
        book.finish("d1", "L2", ["s1"], ["s1"])
    done = book.finish("d1", "L2", ["s1"], ["s2"])
    assert done.lease is not None and done.done == {"s1"} and done.failed == {"s2"}
    assert book.active("d1") is None
    assert [x.lease_id for x in book.leases()] == ["M1"]


def test_expired_leases_are_reclaimed_and_disconnects_forget() -> None:
    book = LeaseBook()
    book.issue(lease("L1"))
    book.issue(IssuedLease("L2", "d2", (seg("x"),), 1, 0, 20 * S, 1))
    assert book.expired(9 * S) == []
    assert [x.lease_id for x in book.expired(10 * S)] == ["L1"]
    assert book.forget("d2").lease_id == "L2"  # type: ignore[union-attr]
    assert book.forget("d2") is None and book.leases() == []
    assert book.finish("d1", "L1", [], []).lease is None  # a reclaimed lease's late report


def demand() -> DeviceDemand:
    return DeviceDemand(
        "d1",
        {B: ClassBacklog(5000, 5), E: ClassBacklog(1000, 1, deadline_us=9, due_bytes=1000)},
        (seg("b1"), seg("b2"), seg("e1", E)),
    )


def test_finished_segments_leave_the_demand() -> None:
    d = without_segments(demand(), frozenset({"b1", "e1"}))
    assert d.backlog[B] == ClassBacklog(4000, 4) and E not in d.backlog
    assert [s.segment_id for s in d.head] == ["b2"]
    assert without_segments(demand(), frozenset({"zz"})) is not None


def test_delivery_meter_and_links() -> None:
    meter = DeliveryMeter(window_s=10)
    assert meter.record("d1", "s1", 10_000, 1 * S)
    assert not meter.record("d1", "s1", 10_000, 2 * S)  # counted once
    meter.record("d1", "s2", 10_000, 5 * S)
    assert meter.rate_bps("d1", 6 * S) == 16_000  # 20 kB in a 10 s window
    assert meter.rate_bps("d1", 12 * S) == 8_000  # s1 left the window
    assert meter.rate_bps("nobody", 12 * S) == 0
    topo = Topology(
        (Link("city", None, 10**9), Link("va", "city", 10**6)),
        (Device("d1", "va"), Device("d2", "city")),
    )
    rows = {r.link_id: r for r in link_delivery(topo, {"va": 10_000}, {"d1": 8_000, "d2": 1})}
    assert rows["va"].delivered_bps == 8_000 and rows["va"].ratio == 0.8
    assert rows["city"].delivered_bps == 8_001 and rows["city"].ratio is None
    with pytest.raises(SchedulerError):
        DeliveryMeter(window_s=0)


def test_planner_release_gives_a_fresh_plan() -> None:
    topo = Topology((Link("city", None, 10**6),), (Device("d1", "city"),))
    planner = Planner(topo, PlanConfig(horizon_s=1))
    planner.report(demand())
    assert "d1" in planner.replan(0)
    assert planner.replan(S) == frozenset()  # calm: the same work, the same lease
    planner.release(["d1", "unknown"])
    assert "d1" not in planner.plan.devices
    assert "d1" in planner.replan(2 * S)


def test_mailbox_keeps_only_the_newest() -> None:
    box: Mailbox[int] = Mailbox()
    box.put(1)
    box.put(2)
    assert box.take(0.01) == 2 and box.replaced == 1
    assert box.take(0.01) is None
    threading.Timer(0.05, box.close).start()
    assert box.take(5) is None and box.closed
    box.put(3)
    assert box.take(0.01) is None  # closed stays closed


def test_lease_message_carries_lease_and_every_hold() -> None:
    hold = HoldWanted("vigil-job-abc", "cam1", 10, 20, E, "case")
    msg = lease_message(lease("L1"), [hold], 4)
    assert msg.lease_id == "L1" and msg.rate_bps == 8000 and msg.holds_complete
    assert [s.segment_id for s in msg.segments] == ["s1", "s2"]
    assert msg.holds[0].hold_tag == "vigil-job-abc" and msg.holds[0].range.end_unix_us == 20
    empty = lease_message(None, [], 5)
    assert empty.lease_id == "" and empty.holds_complete and not empty.holds


def status(**changes: object) -> agent_control_pb2.HoldStatus:
    hs = agent_control_pb2.HoldStatus(
        hold_tag="vigil-job-abc",
        camera_id="cam1",
        range=common_pb2.TimeRange(start_unix_us=0, end_unix_us=100),
        unsent_segments=1,
        unsent_bytes=10,
    )
    for k, v in changes.items():
        if k == "range":
            hs.range.CopyFrom(v)  # type: ignore[arg-type]
        else:
            setattr(hs, k, v)
    return hs


def test_hold_statuses_are_checked() -> None:
    inv = agent_control_pb2.Inventory(device_id="d1", holds=[status()])
    inv.unsent.add(segment_id="s1", camera_id="cam1", start_unix_us=5, size_bytes=9,
                   duration_us=10)  # fmt: skip
    inv.unsent.add(segment_id="s2", camera_id="cam1", start_unix_us=5, size_bytes=9)
    report = device_report(inv)
    assert report.holds[("vigil-job-abc", "cam1")].unsent_bytes == 10
    assert [s.segment_id for s in report.pending["cam1"]] == ["s1"]  # s2 has no duration
    for bad, message in [
        (status(hold_tag="mine"), "not one the controller issued"),
        (status(unsent_segments=-1), "negative"),
        (status(unsent_segments=2, unsent_bytes=0), "cannot hold"),
        (status(range=common_pb2.TimeRange(start_unix_us=5, end_unix_us=5)), "reversed"),
    ]:
        with pytest.raises(DemandError, match=message):
            device_report(agent_control_pb2.Inventory(device_id="d1", holds=[bad]))
    twice = agent_control_pb2.Inventory(device_id="d1", holds=[status(), status()])
    with pytest.raises(DemandError, match="twice"):
        device_report(twice)
