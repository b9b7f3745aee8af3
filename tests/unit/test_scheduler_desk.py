"""LeaseDesk: inputs only record; one replan places every new device in one topology change,
plans once and says whose lease changed. Pure: no clock, no threads, no I/O."""

from __future__ import annotations

import itertools

import pytest

from controller.scheduler.convert import device_report
from controller.scheduler.desk import LeaseDesk
from controller.scheduler.inventory import demand_from_inventory
from controller.scheduler.leases import LeaseError
from controller.scheduler.model import DemandError, Device, Link
from controller.scheduler.options import SchedulerOptions, default_topology
from controller.scheduler.state import compute
from controller.scheduler.topology import Topology
from protos.vigil.v1 import agent_control_pb2 as pb
from protos.vigil.v1 import common_pb2

NOW = 1_767_225_600_000_000
S = 1_000_000
BACKFILL = common_pb2.TRAFFIC_CLASS_BACKFILL
OPTIONS = SchedulerOptions(default_link_bps=20_000_000)


def inventory(device: str, seq: int, at_us: int = NOW) -> pb.Inventory:
    inv = pb.Inventory(device_id=device, reported_unix_us=at_us)
    inv.unsent.add(
        segment_id=f"{device}-s{seq}", camera_id=f"{device}-c", start_unix_us=at_us - 60 * S,
        size_bytes=1_000_000, traffic_class=BACKFILL,
    )  # fmt: skip
    inv.backlog.add(camera_id=f"{device}-c", traffic_class=BACKFILL, bytes=1_000_000, segments=1)
    return inv


def report(desk: LeaseDesk, device: str, seq: int, at_us: int = NOW) -> None:
    inv = inventory(device, seq, at_us)
    demand = demand_from_inventory(inv, authenticated_device=device, now_us=at_us)
    desk.inventory(device, inv, demand, device_report(inv))


def new_desk(topology: Topology | None = None) -> LeaseDesk:
    ids = (f"L{i}" for i in itertools.count())
    return LeaseDesk(topology or default_topology(10**10), OPTIONS, lambda: next(ids))


def test_a_connect_storm_costs_one_placement_and_one_plan() -> None:
    desk = new_desk()
    devices = [f"d{i:04d}" for i in range(500)]
    for d in devices:
        report(desk, d, 0)
        desk.connect(d, NOW)
    # Nothing planned, nothing compiled yet: the inputs were only recorded.
    assert desk.counters["replans"] == 0 and desk.counters["placements"] == 0
    assert desk.dirty and len(desk.planner.topology.devices) == 0
    touched = desk.replan(NOW)
    assert sorted(touched) == devices
    assert desk.counters["placements"] == 1 and desk.counters["devices_placed"] == 500
    assert desk.counters["replans"] == 1 and desk.counters["leases_issued"] == 500
    lease = desk.book.active("d0042")
    assert lease is not None and [s.segment_id for s in lease.segments] == ["d0042-s0"]
    assert desk.planner.topology.path("d0042") == ("d0042.uplink", "city")
    assert desk.message("d0042").lease_id == lease.lease_id
    assert desk.replan(NOW + S) == [] and not desk.dirty  # calm: nothing to push


def test_an_inventory_waits_for_its_stream_and_a_stale_one_is_dropped() -> None:
    desk = new_desk()
    report(desk, "early", 0)
    assert desk.replan(NOW) == [] and desk.book.active("early") is None
    assert desk.connect("early", NOW + S) == ""
    assert desk.replan(NOW + S) == ["early"]
    report(desk, "stale", 0)
    late = NOW + int(OPTIONS.inventory_max_age_s * S) + S
    assert "expired" in desk.connect("stale", late)
    assert desk.replan(late) == [] and desk.book.active("stale") is None


def test_a_finished_lease_gives_the_next_segment_a_new_lease() -> None:
    desk = new_desk()
    report(desk, "d1", 0)
    desk.connect("d1", NOW)
    desk.replan(NOW)
    first = desk.book.active("d1")
    assert first is not None
    desk.finish("d1", pb.LeaseReport(lease_id=first.lease_id, done_segment_ids=["d1-s0"]))
    assert desk.dirty and desk.counters["leases_finished"] == 1
    with pytest.raises(LeaseError):
        desk.finish("d1", pb.LeaseReport(lease_id="never-issued"))
    report(desk, "d1", 1, NOW + S)
    assert desk.replan(NOW + S) == ["d1"]
    second = desk.book.active("d1")
    assert second is not None and second.lease_id != first.lease_id
    assert [s.segment_id for s in second.segments] == ["d1-s1"]


def test_a_disconnect_voids_the_lease_and_parked_demand() -> None:
    desk = new_desk()
    report(desk, "d1", 0)
    desk.connect("d1", NOW)
    desk.replan(NOW)
    desk.disconnect("d1")
    assert desk.book.active("d1") is None and desk.counters["leases_forgotten"] == 1
    assert "d1" not in desk.planner.plan.devices
    desk.connect("d2", NOW)
    report(desk, "d2", 0)
    desk.disconnect("d2")  # before it was ever placed
    assert desk.replan(NOW + S) == [] and desk.planner.demand("d2") is None


def test_a_new_topology_keeps_queued_and_connected_devices_on_default_links() -> None:
    desk = new_desk()
    report(desk, "old", 0)
    desk.connect("old", NOW)
    desk.replan(NOW)
    report(desk, "queued", 0)
    desk.connect("queued", NOW)  # not placed yet
    topo = Topology(
        (Link("city", None, 10**9), Link("town", "city", 10**7)), (Device("nvr", "town"),)
    )
    desk.set_topology(topo)
    assert desk.planner.topology.path("queued") == ("queued.uplink", "city")
    assert desk.planner.topology.path("old") == ("old.uplink", "city")
    assert desk.planner.demand("queued") is not None  # unparked with the new topology
    assert "queued" in desk.replan(NOW + S)


def test_an_impossible_inventory_is_refused_before_the_desk_sees_it() -> None:
    inv = inventory("d1", 0)
    inv.backlog[0].segments = 0
    with pytest.raises(DemandError):
        demand_from_inventory(inv, authenticated_device="d1", now_us=NOW)


def test_inputs_during_a_replan_wait_for_the_next_one_and_keep_their_leases() -> None:
    desk = new_desk()
    for d in ("keeps", "finishes", "leaves", "calm"):
        report(desk, d, 0)
        desk.connect(d, NOW)
    desk.replan(NOW)
    held = {d: desk.book.active(d) for d in ("keeps", "finishes", "leaves", "calm")}
    assert all(held.values())
    # A replan begins (the service then computes it without its lock) ...
    inputs = desk.begin_replan()
    # ... while inputs keep arriving:
    report(desk, "keeps", 1)  # a new segment: planned next time, its lease stays meanwhile
    lease = held["finishes"]
    assert lease is not None
    desk.finish(
        "finishes", pb.LeaseReport(lease_id=lease.lease_id, done_segment_ids=["finishes-s0"])
    )
    desk.disconnect("leaves")
    desk.connect("late", NOW)
    merged, changed = compute(inputs, NOW + S)
    touched = desk.end_replan(inputs, merged, changed, NOW + S)
    assert touched == [] and desk.dirty  # nobody leased from inputs that went stale
    assert desk.book.active("keeps") == held["keeps"]  # not withdrawn
    assert desk.planner.plan.devices["keeps"] == inputs.previous.devices["keeps"]
    assert "finishes" not in desk.planner.plan.devices  # released: a fresh plan next time
    assert "leaves" not in desk.planner.plan.devices
    assert desk.book.active("calm") == held["calm"]
    # The next replan plans them from their new inputs.
    report(desk, "late", 0)
    assert sorted(desk.replan(NOW + 2 * S)) == ["keeps", "late"]
    lease = desk.book.active("keeps")
    assert lease is not None and [s.segment_id for s in lease.segments] == ["keeps-s1"]
    assert desk.book.active("finishes") is None  # nothing left to send


def test_a_topology_change_during_a_replan_discards_it() -> None:
    desk = new_desk()
    report(desk, "d1", 0)
    desk.connect("d1", NOW)
    inputs = desk.begin_replan()
    desk.add_devices(["other"])  # a new topology object
    merged, changed = compute(inputs, NOW)
    assert desk.end_replan(inputs, merged, changed, NOW) == [] and desk.dirty
    assert desk.counters["replans"] == 0
    assert desk.replan(NOW) == ["d1"]
