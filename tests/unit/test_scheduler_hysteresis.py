"""Replan hysteresis and the Planner's all-or-nothing handling of input."""

from __future__ import annotations

import pytest

from controller.scheduler.hysteresis import needs_new_lease, stabilise
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
from controller.scheduler.plan import DevicePlan, Plan
from controller.scheduler.state import Planner
from controller.scheduler.topology import Topology

T = TrafficClass
NOW = 1_767_225_600_000_000
NONE5: tuple[str | None, ...] = (None,) * 5


def seg(sid: str) -> PendingSegment:
    return PendingSegment(sid, "cam", T.BACKFILL, 1, 10)


def dp(device: str, backfill: int, *segs: str, archive: int = 0) -> DevicePlan:
    return DevicePlan(device, (0, 0, 0, archive, backfill), tuple(seg(s) for s in segs), NONE5)


def plan_of(*plans: DevicePlan, version: int = 1) -> Plan:
    return Plan(version, NOW, NOW + 10, {p.device_id: p for p in plans}, {}, frozenset())


def test_needs_new_lease() -> None:
    old = dp("a", 100, "s1", "s2")
    assert not needs_new_lease(old, dp("a", 105, "s2"), 0.1)
    assert needs_new_lease(old, dp("a", 120, "s1"), 0.1)  # 17% change
    assert needs_new_lease(old, dp("a", 100, "s1", archive=5), 0.1)  # a class starts
    assert needs_new_lease(old, dp("a", 100, "urgent", "s1"), 0.1)  # new work first
    assert needs_new_lease(None, dp("a", 100), 0.1)


TOPO = Topology(
    (Link("r", None, 1000), Link("v", "r", 200)),
    (Device("a", "v"), Device("b", "v"), Device("c", "r")),
)


def test_small_changes_keep_the_old_lease_big_ones_and_dropped_devices_change() -> None:
    previous = plan_of(dp("a", 100, "s1"), dp("b", 100, "t1"), dp("gone", 10, "x"))
    fresh = plan_of(dp("a", 96, "s1"), dp("b", 50, "t1"), dp("c", 300, "u1"), version=2)
    merged, changed = stabilise(previous, fresh, TOPO, 0.1)
    assert merged.devices["a"] == previous.devices["a"]
    assert merged.devices["b"] == fresh.devices["b"]
    assert changed == {"b", "c", "gone"}
    assert merged.version == 2
    assert merged.link_loads["v"] == (0, 0, 0, 0, 150)
    assert merged.link_loads["r"] == (0, 0, 0, 0, 450)


def test_keeping_old_rates_never_overloads_a_link() -> None:
    # v is 200: a keeps 104 (small change) only if a + b fit; b's fresh rate is 100 -> 204.
    previous = plan_of(dp("a", 104, "s1"), dp("b", 10, "t1"))
    fresh = plan_of(dp("a", 100, "s1"), dp("b", 100, "t1"))
    merged, changed = stabilise(previous, fresh, TOPO, 0.1)
    assert merged.devices["a"].total_bps == 100
    assert changed == {"a", "b"}
    assert merged.devices == fresh.devices


def test_threshold_is_checked() -> None:
    with pytest.raises(SchedulerError, match="threshold"):
        stabilise(Plan.empty(), Plan.empty(), TOPO, 1.5)


def backlog(size: int = 10**9) -> DeviceDemand:
    return DeviceDemand("a", {T.BACKFILL: ClassBacklog(size, 10)})


def test_planner_rejects_bad_input_and_keeps_its_state() -> None:
    planner = Planner(TOPO)
    planner.report(backlog())
    changed = planner.replan(NOW)
    assert changed == {"a"}
    first = planner.plan
    assert first.version == 1 and first.devices["a"].rate(T.BACKFILL) == 200
    with pytest.raises(DemandError, match="not in the topology"):
        planner.report(DeviceDemand("ghost", {}))
    with pytest.raises(DemandError, match="must be DeviceDemand"):
        planner.report("a")  # type: ignore[arg-type]
    smaller = Topology((Link("r", None, 1000),), (Device("c", "r"),))
    with pytest.raises(DemandError, match="drops devices with backlog"):
        planner.set_topology(smaller)
    assert planner.topology is TOPO and planner.plan is first
    assert planner.demand("a") == backlog()
    # Nothing changed: a replan keeps every lease.
    assert planner.replan(NOW + 1) == frozenset()
    assert planner.plan.version == 2


def test_planner_follows_topology_changes_and_forgetting() -> None:
    planner = Planner(TOPO)
    planner.report(backlog())
    planner.replan(NOW)
    planner.set_topology(TOPO.with_changes(upsert_links=[Link("v", "r", 50)]))
    assert planner.replan(NOW + 1) == {"a"}
    assert planner.plan.devices["a"].rate(T.BACKFILL) == 50
    planner.forget("a")
    planner.forget("never-seen")
    assert planner.replan(NOW + 2) == {"a"}
    assert planner.plan.devices == {}
