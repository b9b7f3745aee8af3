"""Live feeds on the scheduler's links (controller/scheduler/live_feeds.py) and what they do to
the plan through the LeaseDesk: admission (per-link limit, capacity), LIVE demand planned
ahead of backfill, and the lease leaving the live share out. Pure."""

from __future__ import annotations

from controller.scheduler.live_feeds import LiveLoad, admit, lease_plan, with_live
from controller.scheduler.model import ClassBacklog, Device, DeviceDemand, Link, TrafficClass
from controller.scheduler.plan import DevicePlan
from controller.scheduler.topology import Topology
from tests.unit.test_scheduler_desk import NOW, S, new_desk, report

LIVE, BACKFILL = TrafficClass.LIVE, TrafficClass.BACKFILL


def topology() -> Topology:
    """county (10 Mbit/s) <- village-a (2 Mbit/s: nvr-a1, nvr-a2), village-b (1 Mbit/s: nvr-b)."""
    return Topology(
        links=(
            Link("county", None, 10_000_000),
            Link("village-a", "county", 2_000_000, live_reserve=0.5),
            Link("village-b", "county", 1_000_000, live_reserve=0.5),
        ),
        devices=(
            Device("nvr-a1", "village-a"),
            Device("nvr-a2", "village-a"),
            Device("nvr-b", "village-b"),
        ),
    )


def test_a_feed_that_fits_is_admitted() -> None:
    assert admit(topology(), [], LiveLoad("nvr-a1", "c1", 1_500_000), 4) is None


def test_a_feed_faster_than_its_link_reads_busy() -> None:
    busy = admit(topology(), [], LiveLoad("nvr-b", "c9", 1_500_000), 4)
    assert busy is not None and "village-b" in busy and "1500 kbit/s" in busy


def test_feeds_already_on_the_link_count() -> None:
    running = [LiveLoad("nvr-a1", "c1", 1_200_000)]
    busy = admit(topology(), running, LiveLoad("nvr-a2", "c2", 1_000_000), 4)
    assert busy is not None and "village-a" in busy and "1200 kbit/s of live" in busy
    # Another village's feed does not count on village-a; the shared county link has room.
    assert admit(topology(), running, LiveLoad("nvr-b", "c3", 900_000), 4) is None


def test_the_per_link_limit() -> None:
    running = [LiveLoad("nvr-a1", "c1", 100_000), LiveLoad("nvr-a2", "c2", 100_000)]
    busy = admit(topology(), running, LiveLoad("nvr-a1", "c3", 100_000), 2)
    assert busy is not None and "2 live stream(s) (limit 2)" in busy
    assert admit(topology(), running, LiveLoad("nvr-a1", "c3", 100_000), 0) is None  # no limit
    # The camera itself (asked again) is not counted twice.
    assert admit(topology(), running, LiveLoad("nvr-a1", "c1", 100_000), 2) is None


def test_a_device_the_topology_does_not_know_is_admitted() -> None:
    assert admit(topology(), [], LiveLoad("new", "c", 10**9), 1) is None


def test_with_live_replaces_never_adds_and_keeps_the_backlog() -> None:
    backfill = ClassBacklog(bytes=1000, segments=1)
    demand = DeviceDemand("nvr-a1", {BACKFILL: backfill})
    once = with_live(demand, "nvr-a1", 500_000)
    twice = with_live(once, "nvr-a1", 500_000)
    assert once == twice
    assert twice.backlog[LIVE].arrival_bps == 500_000 and twice.backlog[BACKFILL] == backfill
    assert LIVE not in with_live(twice, "nvr-a1", 0).backlog
    assert with_live(None, "x", 0).backlog == {}


def test_the_lease_leaves_the_live_share_out() -> None:
    plan = DevicePlan("d", (0, 700_000, 0, 0, 300_000), (), (None,) * 5)
    assert lease_plan(plan, 500_000).rates == (0, 200_000, 0, 0, 300_000)
    assert lease_plan(plan, 0) is plan


def test_backfill_yields_to_a_live_feed_on_its_link() -> None:
    desk = new_desk(topology())
    report(desk, "nvr-b", 0)
    desk.connect("nvr-b", NOW)
    desk.replan(NOW)
    lease = desk.book.active("nvr-b")
    assert lease is not None and lease.rate_bps == 800_000  # 1 MB over the 10 s horizon
    desk.set_live("nvr-b", 600_000)
    assert desk.dirty
    desk.replan(NOW + S)
    plan = desk.planner.plan.devices["nvr-b"]
    assert plan.rate(LIVE) == 600_000  # planned first
    lease = desk.book.active("nvr-b")
    assert lease is not None and lease.rate_bps == 400_000  # the link's rest (1 Mbit/s)
    report(desk, "nvr-b", 1, NOW + 2 * S)  # a new inventory keeps the live demand
    desk.replan(NOW + 2 * S)
    assert desk.planner.plan.devices["nvr-b"].rate(LIVE) == 600_000
    desk.set_live("nvr-b", 0)
    desk.replan(NOW + 3 * S)
    lease = desk.book.active("nvr-b")
    assert lease is not None and lease.rate_bps == 800_000
