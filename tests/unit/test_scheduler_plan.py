"""The planner on small, hand-checked cases: every number here was worked out on paper."""

from __future__ import annotations

import random

import pytest

from controller.scheduler.model import (
    ClassBacklog,
    DemandError,
    Device,
    DeviceDemand,
    Link,
    PendingSegment,
    SchedulerError,
    TrafficClass,
    Window,
)
from controller.scheduler.plan import DEVICE_CAP, Plan, PlanConfig, plan, segment_order
from controller.scheduler.topology import Topology

T = TrafficClass
NOW = 1_767_225_600_000_000  # 00:00 UTC
BIG = ClassBacklog(bytes=10**12, segments=1000)  # never drains within a horizon


def demand(device: str, *classes: TrafficClass, **kw: ClassBacklog) -> DeviceDemand:
    backlog = {c: BIG for c in classes}
    backlog.update({TrafficClass[k.upper()]: v for k, v in kw.items()})
    return DeviceDemand(device, backlog)


def tree(*links: Link, devices: tuple[Device, ...], offset: int = 0) -> Topology:
    return Topology(links, devices, offset)


def test_hierarchical_water_filling_and_strict_priority() -> None:
    # city 100 over v1 (60: a, b) and v2 (60: c). c has evidence: it takes v2 whole (60),
    # the city has 40 left, and a and b share it equally (v1 is not their bottleneck).
    topo = tree(
        Link("city", None, 100),
        Link("v1", "city", 60),
        Link("v2", "city", 60),
        devices=(Device("a", "v1"), Device("b", "v1"), Device("c", "v2")),
    )
    p = plan(
        topo,
        [demand("a", T.BACKFILL), demand("b", T.BACKFILL), demand("c", T.BACKFILL, T.EVIDENCE)],
        NOW,
    )
    assert p.devices["c"].rates == (60, 0, 0, 0, 0)
    assert p.devices["a"].rate(T.BACKFILL) == 20 and p.devices["b"].rate(T.BACKFILL) == 20
    assert p.devices["a"].bottlenecks[T.BACKFILL - 1] == "city"
    assert p.devices["c"].bottlenecks[T.EVIDENCE - 1] == "v2"
    assert p.devices["c"].bottlenecks[T.BACKFILL - 1] == "v2"
    assert p.link_loads["city"] == (60, 0, 0, 0, 40)
    assert p.saturated == {"city", "v2"}
    assert p.link_load("v1") == 40 and p.link_load("nowhere") == 0


def test_max_min_gives_a_thin_links_leftover_to_the_others() -> None:
    # county 90 over v1 (10: a) and v2 (100: b, c): a gets 10, b and c share 80 -> 40 each.
    topo = tree(
        Link("county", None, 90),
        Link("v1", "county", 10),
        Link("v2", "county", 100),
        devices=(Device("a", "v1"), Device("b", "v2"), Device("c", "v2")),
    )
    p = plan(topo, [demand(d, T.ARCHIVE) for d in "abc"], NOW)
    assert [p.devices[d].rate(T.ARCHIVE) for d in "abc"] == [10, 40, 40]


def test_weights_split_in_proportion() -> None:
    topo = tree(Link("r", None, 100), devices=(Device("a", "r", 1.0), Device("b", "r", 3.0)))
    p = plan(topo, [demand("a", T.BACKFILL), demand("b", T.BACKFILL)], NOW)
    assert (p.devices["a"].rate(T.BACKFILL), p.devices["b"].rate(T.BACKFILL)) == (25, 75)


def test_a_small_backlog_freezes_at_its_demand_and_the_rest_goes_to_others() -> None:
    # horizon 10 s: 25 bytes -> 20 bit/s of demand; the other device gets the other 80.
    topo = tree(Link("r", None, 100), devices=(Device("a", "r"), Device("b", "r")))
    small = ClassBacklog(bytes=25, segments=1)
    p = plan(topo, [demand("a", backfill=small), demand("b", T.BACKFILL)], NOW)
    assert p.devices["a"].rate(T.BACKFILL) == 20
    assert p.devices["a"].bottlenecks[T.BACKFILL - 1] is None
    assert p.devices["b"].rate(T.BACKFILL) == 80


def test_arrival_rate_adds_to_backlog_demand() -> None:
    topo = tree(Link("r", None, 1000), devices=(Device("a", "r"),))
    live = ClassBacklog(bytes=125, segments=1, arrival_bps=300)  # 100 + 300 bit/s
    p = plan(topo, [demand("a", live=live)], NOW)
    assert p.devices["a"].rate(T.LIVE) == 400


def test_device_cap_is_shared_by_its_classes() -> None:
    topo = tree(Link("r", None, 1000), devices=(Device("a", "r", max_bps=100),))
    p = plan(topo, [demand("a", T.EVENT, T.BACKFILL)], NOW)
    assert p.devices["a"].rates == (0, 0, 100, 0, 0)
    assert p.devices["a"].bottlenecks[T.EVENT - 1] == DEVICE_CAP
    assert p.devices["a"].bottlenecks[T.BACKFILL - 1] == DEVICE_CAP


def test_live_reserve_protects_watching_from_evidence_but_not_beyond_the_reserve() -> None:
    # v 100 with 20% reserved for live. Evidence wants everything, live wants 50:
    # live gets its 20 first, evidence 80, and live's remaining 30 waits behind evidence.
    topo = tree(
        Link("r", None, 1000),
        Link("v", "r", 100, live_reserve=0.2),
        devices=(Device("a", "v"), Device("b", "v")),
    )
    live = ClassBacklog(bytes=0, segments=0, arrival_bps=50)
    p = plan(topo, [demand("a", T.EVIDENCE), demand("b", live=live)], NOW)
    assert p.devices["b"].rate(T.LIVE) == 20
    assert p.devices["a"].rate(T.EVIDENCE) == 80
    # Without evidence, live takes what it needs and the rest goes to backfill.
    p = plan(topo, [demand("a", T.BACKFILL), demand("b", live=live)], NOW)
    assert p.devices["b"].rate(T.LIVE) == 50 and p.devices["a"].rate(T.BACKFILL) == 50


def test_windows_keep_a_class_off_a_link_outside_its_hours() -> None:
    # Backfill may cross v only 00:00-06:00 local (UTC+8); archive any time.
    topo = tree(
        Link("r", None, 200),
        Link("v", "r", 100, windows=(Window(T.BACKFILL, 0, 360),)),
        devices=(Device("a", "v"),),
        offset=480,
    )
    two_am_local = NOW - 6 * 3600 * 1_000_000
    noon_local = NOW + 4 * 3600 * 1_000_000
    night = plan(topo, [demand("a", T.BACKFILL)], two_am_local)
    day = plan(topo, [demand("a", T.BACKFILL, T.ARCHIVE)], noon_local)
    assert night.devices["a"].rate(T.BACKFILL) == 100
    assert day.devices["a"].rates == (0, 0, 0, 100, 0)
    assert day.devices["a"].bottlenecks[T.BACKFILL - 1] == "v"
    # The plan expires when the window next opens or closes, if that is within the horizon.
    almost_six = NOW - 2 * 3600 * 1_000_000 - 5 * 1_000_000  # 05:59:55 local
    p = plan(topo, [demand("a", T.BACKFILL)], almost_six, config=PlanConfig(horizon_s=10))
    assert p.valid_until_us == almost_six + 5 * 1_000_000


def test_a_deadline_gets_the_rate_it_needs_before_fair_sharing() -> None:
    # r 100; both devices backlogged; a must send 450 bytes within 60 s (with the 10%
    # margin: 450*8/54 = 66.67 -> 66 bit/s). It gets that first, then the remaining 34 are
    # shared: 17 each.
    topo = tree(Link("r", None, 100), devices=(Device("a", "r"), Device("b", "r")))
    due = ClassBacklog(bytes=10**9, segments=10, deadline_us=NOW + 60_000_000, due_bytes=450)
    p = plan(topo, [demand("a", backfill=due), demand("b", T.BACKFILL)], NOW)
    a, b = p.devices["a"].rate(T.BACKFILL), p.devices["b"].rate(T.BACKFILL)
    assert a == 66 + 17 and b == 17
    assert a + b <= 100


def test_a_missed_deadline_asks_for_everything() -> None:
    topo = tree(Link("r", None, 100), devices=(Device("a", "r"), Device("b", "r")))
    late = ClassBacklog(bytes=10**9, segments=10, deadline_us=NOW - 1, due_bytes=10**9)
    p = plan(topo, [demand("a", backfill=late), demand("b", T.BACKFILL)], NOW)
    assert p.devices["a"].rate(T.BACKFILL) == 100


def seg(
    sid: str, cls: TrafficClass, start: int, size: int = 100, deadline: int = 0
) -> PendingSegment:
    return PendingSegment(sid, "cam", cls, start, size, deadline)


def test_segments_are_ordered_by_class_deadline_age_and_cut_to_the_horizon() -> None:
    # Evidence (300 bytes) asks for 2400 bit/s over its 1 s horizon; backfill gets the
    # other 800. Segments are 100 bytes; the lease holds what 3200 bit/s sends in a horizon.
    topo = tree(Link("r", None, 3200), devices=(Device("a", "r"),))
    head = (
        seg("b-old", T.BACKFILL, 1),
        seg("e-late", T.EVIDENCE, 5, deadline=NOW + 9),
        seg("e-soon", T.EVIDENCE, 9, deadline=NOW + 3),
        seg("e-none", T.EVIDENCE, 2),
        seg("b-new", T.BACKFILL, 7),
    )
    d = DeviceDemand(
        "a",
        {T.EVIDENCE: ClassBacklog(300, 3), T.BACKFILL: ClassBacklog(10**6, 9)},
        head,
    )

    def leased(**cfg: float) -> list[str]:
        p = plan(topo, [d], NOW, config=PlanConfig(**cfg))  # type: ignore[arg-type]
        assert p.devices["a"].rates == (2400, 0, 0, 0, 800)
        return [s.segment_id for s in p.devices["a"].segments]

    assert leased(horizon_s=0.25) == ["e-soon"]  # 100 bytes
    assert leased(horizon_s=1.0) == ["e-soon", "e-late", "e-none", "b-old"]  # 400 bytes
    assert leased(horizon_s=10.0) == ["e-soon", "e-late", "e-none", "b-old", "b-new"]
    assert leased(horizon_s=10.0, max_lease_segments=2) == ["e-soon", "e-late"]
    assert sorted(head, key=segment_order)[0].segment_id == "e-soon"


def test_segments_of_a_class_without_rate_are_not_leased_and_one_always_is() -> None:
    topo = tree(
        Link("r", None, 8),
        Link("v", "r", 8, windows=(Window(T.BACKFILL, 0, 60),)),
        devices=(Device("a", "v"),),
    )
    d = DeviceDemand(
        "a",
        {T.ARCHIVE: ClassBacklog(10**6, 1), T.BACKFILL: ClassBacklog(10**6, 1)},
        (seg("arch", T.ARCHIVE, 5, size=10**6), seg("back", T.BACKFILL, 1)),
    )
    p = plan(topo, [d], NOW + 3 * 3600 * 1_000_000)  # 03:00 UTC: backfill window closed
    assert [s.segment_id for s in p.devices["a"].segments] == ["arch"]  # bigger than budget


def test_the_plan_does_not_depend_on_report_order() -> None:
    topo = tree(
        Link("r", None, 1000),
        *(Link(f"v{i}", "r", 100 + 37 * i) for i in range(6)),
        devices=tuple(Device(f"d{i}", f"v{i % 6}", weight=1 + i % 3) for i in range(18)),
    )
    rng = random.Random(3)
    demands = [demand(f"d{i}", *rng.sample(list(T), k=1 + i % 3)) for i in range(18)]
    first = plan(topo, demands, NOW)
    rng.shuffle(demands)
    assert plan(topo, demands, NOW) == first


def test_bad_input_raises_and_leaves_nothing_changed() -> None:
    topo = tree(Link("r", None, 100), devices=(Device("a", "r"),))
    before = plan(topo, [demand("a", T.BACKFILL)], NOW)
    with pytest.raises(DemandError, match="'ghost' is not in the topology"):
        plan(topo, [demand("a", T.BACKFILL), demand("ghost", T.BACKFILL)], NOW)
    with pytest.raises(DemandError, match="reported twice"):
        plan(topo, [demand("a", T.BACKFILL), demand("a", T.ARCHIVE)], NOW)
    with pytest.raises(DemandError, match="must be DeviceDemand"):
        plan(topo, ["a"], NOW)  # type: ignore[list-item]
    with pytest.raises(SchedulerError, match="now_us"):
        plan(topo, [], -1)
    with pytest.raises(SchedulerError, match="horizon_s"):
        PlanConfig(horizon_s=0)
    assert plan(topo, [demand("a", T.BACKFILL)], NOW) == before


def test_no_demand_gives_an_empty_plan() -> None:
    topo = tree(Link("r", None, 100), devices=(Device("a", "r"),))
    p = plan(topo, [DeviceDemand("a", {})], NOW, version=7)
    assert p.version == 7 and p.devices["a"].total_bps == 0 and not p.link_loads
    assert Plan.empty().devices == {}
