"""Properties of the planner on random trees and demands (hypothesis).

- never above any link's capacity or any device's cap;
- work-conserving: a flow short of its demand crosses a full link (or a link its class
  may not use now, or its device's cap is used up);
- strict priority: that full link is full with its own class or higher ones;
- max-min fair inside a class (no deadlines): the flow has the largest weighted rate of its
  class on that full link;
- deterministic, and independent of the order devices reported in.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.scheduler.model import (
    ClassBacklog,
    Device,
    DeviceDemand,
    Link,
    TrafficClass,
    Window,
)
from controller.scheduler.plan import Plan, PlanConfig, plan
from controller.scheduler.topology import Topology

T = TrafficClass
NOW = 1_767_225_600_000_000 + 3 * 3600 * 1_000_000  # 03:00 UTC
CFG = PlanConfig(horizon_s=10.0, evidence_horizon_s=1.0)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cities(
    draw: st.DrawFn, deadlines: bool = True, reserves: bool = True
) -> tuple[Topology, list[DeviceDemand]]:
    n_links = draw(st.integers(1, 10))
    big = draw(st.booleans())
    cap = st.integers(10**6, 10**9) if big else st.integers(1, 400)
    links = [Link("L0", None, draw(cap))]
    for i in range(1, n_links):
        windows: tuple[Window, ...] = ()
        if draw(st.integers(0, 4)) == 0:
            cls = draw(st.sampled_from(list(T)))
            start = draw(st.integers(0, 1439))
            end = (start + draw(st.integers(1, 1439))) % 1440
            windows = (Window(cls, start, end),)
        reserve = draw(st.sampled_from([0.0, 0.0, 0.25, 0.5])) if reserves else 0.0
        parent = f"L{draw(st.integers(0, i - 1))}"
        links.append(Link(f"L{i}", parent, draw(cap), windows, reserve))
    n_dev = draw(st.integers(1, 8))
    devices = tuple(
        Device(
            f"d{j}",
            f"L{draw(st.integers(0, n_links - 1))}",
            weight=draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
            max_bps=draw(st.sampled_from([0, 0, 0]) | cap),
        )
        for j in range(n_dev)
    )
    demands = []
    for d in devices:
        backlog = {}
        for cls in draw(st.sets(st.sampled_from(list(T)), max_size=4)):
            size = draw(st.sampled_from([0, 1, 7, 100, 10**4, 10**8, 10**12]))
            segs = 0 if size == 0 else min(size, draw(st.integers(1, 50)))
            arrival = draw(st.sampled_from([0, 0, 5, 10**6]))
            deadline = due = 0
            if deadlines and size and draw(st.booleans()):
                deadline = NOW + draw(st.integers(-5, 600)) * 1_000_000
                due = draw(st.integers(1, size))
            backlog[cls] = ClassBacklog(size, segs, 0, deadline, due, arrival)
        demands.append(DeviceDemand(d.device_id, backlog))
    return Topology(tuple(links), devices), demands


def tol(demands: list[DeviceDemand]) -> float:
    """Rates are floored per flow and pass: a few bit/s per flow, never more."""
    return 12.0 * (1 + sum(len(d.backlog) for d in demands))


def limit(b: ClassBacklog, cls: TrafficClass) -> float:
    horizon = CFG.evidence_horizon_s if cls is T.EVIDENCE else CFG.horizon_s
    return b.arrival_bps + b.bytes * 8 / horizon


def loads(topo: Topology, p: Plan) -> dict[str, list[int]]:
    out = {lid: [0] * 5 for lid in topo.compiled.link_ids}
    for did, dp in p.devices.items():
        for lid in topo.path(did):
            for k, r in enumerate(dp.rates):
                out[lid][k] += r
    return out


def short_flows(topo: Topology, demands: list[DeviceDemand], p: Plan, eps: float):
    for d in demands:
        for cls, b in d.backlog.items():
            rate = p.devices[d.device_id].rate(cls)
            assert rate <= limit(b, cls) + 1, "a flow got more than it asked for"
            if rate < limit(b, cls) - eps:
                yield d.device_id, cls


def classes_upto(cls: TrafficClass) -> list[int]:
    return sorted({c - 1 for c in T if c <= cls} | {T.LIVE - 1})


@PROPS
@given(cities())
def test_never_above_capacity_and_loads_add_up(city: tuple[Topology, list[DeviceDemand]]) -> None:
    topo, demands = city
    p = plan(topo, demands, NOW, config=CFG)
    computed = loads(topo, p)
    for lid in topo.compiled.link_ids:
        assert sum(computed[lid]) <= topo.link(lid).capacity_bps
        assert tuple(computed[lid]) == p.link_loads.get(lid, (0,) * 5)
    for dev in topo.devices:
        if dev.max_bps and dev.device_id in p.devices:
            assert p.devices[dev.device_id].total_bps <= dev.max_bps
    assert all(r >= 0 for dp in p.devices.values() for r in dp.rates)


@PROPS
@given(cities())
def test_work_conserving_and_strict_priority(city: tuple[Topology, list[DeviceDemand]]) -> None:
    topo, demands = city
    p = plan(topo, demands, NOW, config=CFG)
    load = loads(topo, p)
    eps = tol(demands)
    ct = topo.compiled
    for did, cls in short_flows(topo, demands, p, eps):
        closed = {ct.link_ids[i] for i in ct.closed_links(cls, NOW)}
        upto = classes_upto(cls)
        dev = topo.devices[ct.device_index[did]]
        mine = p.devices[did]
        if dev.max_bps and sum(mine.rates[k] for k in upto) >= dev.max_bps - eps:
            continue  # its own cap is used by this class and higher ones
        path = topo.path(did)
        assert any(lid in closed for lid in path) or any(
            sum(load[lid][k] for k in upto) >= topo.link(lid).capacity_bps - eps for lid in path
        ), f"{did} {cls.name} is short of demand while every link on its path has room"


@PROPS
@given(cities(deadlines=False, reserves=False))
def test_max_min_fair_inside_a_class(city: tuple[Topology, list[DeviceDemand]]) -> None:
    topo, demands = city
    p = plan(topo, demands, NOW, config=CFG)
    load = loads(topo, p)
    eps = tol(demands)
    ct = topo.compiled
    weight = {d.device_id: d.weight for d in topo.devices}
    for did, cls in short_flows(topo, demands, p, eps):
        k = cls - 1
        dev = topo.devices[ct.device_index[did]]
        if dev.max_bps and p.devices[did].total_bps >= dev.max_bps - eps:
            continue
        closed = {ct.link_ids[i] for i in ct.closed_links(cls, NOW)}
        mine = p.devices[did].rates[k] / weight[did]
        ok = False
        for lid in topo.path(did):
            if lid in closed:
                ok = True
                break
            if sum(load[lid][j] for j in range(k + 1)) < topo.link(lid).capacity_bps - eps:
                continue
            others = [
                p.devices[o].rates[k] / weight[o]
                for o in p.devices
                if lid in topo.path(o) and p.devices[o].rates[k]
            ]
            if all(mine >= x - eps for x in others):
                ok = True
                break
        assert ok, f"{did} {cls.name} at {mine} is not the largest on any full link"


@PROPS
@given(cities(), st.randoms(use_true_random=False))
def test_deterministic_and_order_independent(
    city: tuple[Topology, list[DeviceDemand]], rnd: random.Random
) -> None:
    topo, demands = city
    first = plan(topo, demands, NOW, config=CFG)
    shuffled = demands[:]
    rnd.shuffle(shuffled)
    assert plan(topo, shuffled, NOW, config=CFG) == first
