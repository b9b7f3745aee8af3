"""Incremental replanning (controller/scheduler/incremental.py) against the full recompute.

- A replan that carries the previous plan's memo gives exactly the plan and the changed
  devices of a replan from nothing, over random sequences of reports, forgotten devices,
  released leases, time passing (deadlines, windows) and topology changes.
- A plan made part by part has the rates of the plan made in one piece (`plan`).
- Only the parts whose inputs changed are planned again; a full root plans the city whole.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.scheduler.hysteresis import stabilise
from controller.scheduler.incremental import Memo, replan
from controller.scheduler.model import (
    ClassBacklog,
    Device,
    DeviceDemand,
    Link,
    PendingSegment,
    TrafficClass,
    Window,
)
from controller.scheduler.plan import Plan, PlanConfig, plan
from controller.scheduler.state import Planner, compute
from controller.scheduler.topology import Topology

T = TrafficClass
S = 1_000_000
NOW = 1_767_225_600 * S + 3 * 3600 * S  # 03:00 UTC
CFG = PlanConfig(horizon_s=10.0, evidence_horizon_s=1.0, max_lease_segments=4)
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def trees(draw: st.DrawFn, n_devices: int = 8) -> Topology:
    big = draw(st.booleans())
    cap = st.integers(10**6, 10**9) if big else st.integers(50, 5_000)
    n_links = draw(st.integers(1, 8))
    root = draw(st.sampled_from([10**12, 10**12, 10**12]) | cap)  # mostly never full
    links = [Link("L0", None, root, (), draw(st.sampled_from([0.0, 0.0, 0.25])))]
    for i in range(1, n_links):
        windows: tuple[Window, ...] = ()
        if draw(st.integers(0, 2)) == 0:
            start = draw(st.integers(175, 190))  # around 03:00: opens or closes as time passes
            windows = (Window(draw(st.sampled_from(list(T))), start, start + 30),)
        parent = f"L{draw(st.integers(0, i - 1))}"
        reserve = draw(st.sampled_from([0.0, 0.0, 0.5]))
        links.append(Link(f"L{i}", parent, draw(cap), windows, reserve))
    devices = tuple(
        Device(
            f"d{j}",
            f"L{draw(st.integers(0, n_links - 1))}",
            weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
            max_bps=draw(st.sampled_from([0, 0, 0, 700, 10**7])),
        )
        for j in range(n_devices)
    )
    return Topology(tuple(links), devices)


@st.composite
def demands(draw: st.DrawFn, device: str, now_us: int) -> DeviceDemand:
    backlog = {}
    head: list[PendingSegment] = []
    for cls in draw(st.sets(st.sampled_from(list(T)), min_size=1, max_size=3)):
        n = draw(st.integers(1, 4))
        sizes = [draw(st.sampled_from([1, 500, 10**4, 10**6])) for _ in range(n)]
        deadline = due = 0
        if draw(st.booleans()):
            deadline = now_us + draw(st.integers(-2, 120)) * S
            due = draw(st.integers(1, sum(sizes)))
        arrival = draw(st.sampled_from([0, 0, 300, 10**5]))
        backlog[cls] = ClassBacklog(sum(sizes), n, now_us - 60 * S, deadline, due, arrival)
        for k, size in enumerate(sizes):
            sid = f"{device}-{cls.name}-{draw(st.integers(0, 3))}-{k}"
            head.append(PendingSegment(sid, f"{device}-c", cls, now_us - (60 - k) * S, size))
    return DeviceDemand(device, backlog, tuple(head))


def full(
    topology: Topology, given: dict[str, DeviceDemand], previous: Plan, now_us: int, h: float
) -> tuple[Plan, frozenset[str]]:
    """The full recompute: the same replan from a previous plan without its memo."""
    return replan(topology, list(given.values()), replace(previous, memo=None), now_us, CFG, h)


@PROPS
@given(st.data())
def test_carrying_the_memo_gives_exactly_the_full_recompute(data: st.DataObject) -> None:
    topology = data.draw(trees())
    devices = list(topology.compiled.device_ids)
    h = data.draw(st.sampled_from([0.0, 0.1]))  # hysteresis (0: every change shows)
    now = NOW
    given_: dict[str, DeviceDemand] = {}
    previous = Plan.empty(now)
    for _step in range(data.draw(st.integers(2, 7))):
        action = data.draw(st.sampled_from(["report", "report", "forget", "release", "time",
                                            "time", "topology", "stale"]))  # fmt: skip
        if action == "report":
            for d in data.draw(st.sets(st.sampled_from(devices), min_size=1)):
                given_[d] = data.draw(demands(d, now))
        elif action == "forget" and given_:
            given_.pop(data.draw(st.sampled_from(sorted(given_))))
        elif action == "release" and previous.devices:
            drop = data.draw(st.sets(st.sampled_from(sorted(previous.devices)), min_size=1))
            kept = {d: p for d, p in previous.devices.items() if d not in drop}
            previous = replace(previous, devices=kept)
        elif action == "time":
            now += data.draw(st.sampled_from([1, 2 * S, 40 * S, 6 * 60 * S]))
        elif action == "topology":
            moved = data.draw(st.sampled_from(devices))
            links = topology.compiled.link_ids
            topology = topology.with_changes(
                upsert_devices=[Device(moved, data.draw(st.sampled_from(links)))]
            )
        elif action == "stale" and previous.devices:
            # What Planner.adopt does to devices with inputs during a replan: the old plan.
            d = data.draw(st.sampled_from(sorted(previous.devices)))
            other = data.draw(st.sampled_from(list(previous.devices.values())))
            swapped = {**previous.devices, d: replace(other, device_id=d)}
            previous = replace(previous, devices=swapped)
        got, changed = replan(topology, list(given_.values()), previous, now, CFG, h)
        want, want_changed = full(topology, given_, previous, now, h)
        assert got == want
        assert changed == want_changed
        assert got.memo is not None
        previous = got


@PROPS
@given(st.data())
def test_the_planners_hints_give_exactly_the_full_recompute(data: st.DataObject) -> None:
    """The Planner tells the replan which devices changed (reports, forgets, releases, what
    it adopted, inputs that came while a plan was computed); only their parts are looked at."""
    topology = data.draw(trees())
    devices = list(topology.compiled.device_ids)
    h = data.draw(st.sampled_from([0.0, 0.1]))
    planner = Planner(topology, CFG, h)
    now = NOW

    def inputs_arrive() -> set[str]:
        moved: set[str] = set()
        for _ in range(data.draw(st.integers(0, 3))):
            d = data.draw(st.sampled_from(devices))
            action = data.draw(st.sampled_from(["report", "report", "forget", "release"]))
            if action == "report":
                planner.report(data.draw(demands(d, now)))
            elif action == "forget":
                planner.forget(d)
                planner.release([d])
            else:
                planner.release([d])
            moved.add(d)
        return moved

    for _step in range(data.draw(st.integers(2, 8))):
        inputs_arrive()
        now += data.draw(st.sampled_from([1, 2 * S, 40 * S]))
        inputs = planner.prepare()
        previous = inputs.previous
        got = compute(inputs, now)
        want = replan(topology, list(inputs.demands), replace(previous, memo=None), now, CFG, h)
        assert got == want
        stale = inputs_arrive()  # while the plan was computed: they keep their old plan
        planner.adopt(inputs, got[0], got[1], stale)


def test_a_replan_with_hints_looks_only_at_the_touched_parts() -> None:
    planner = Planner(_city(), CFG, 0.1)
    for i in range(6):
        planner.report(_backfill(f"nvr{i}", 0))
    planner.replan(NOW)
    planner.replan(NOW)  # the leases adopted are now the plans in force: settled
    before = planner.plan.memo
    planner.report(_backfill("nvr2", 1))
    inputs = planner.prepare()
    assert inputs.touched == {"nvr2"}  # what the previous replan adopted is settled
    planner.replan(NOW + S)
    after = planner.plan.memo
    assert isinstance(before, Memo) and isinstance(after, Memo)
    same = [p for p in after.fresh if after.fresh[p] is before.fresh[p]]
    assert sorted(d for p in same for d in p.device_ids) == ["nvr0", "nvr1", "nvr3", "nvr4"]


@PROPS
@given(st.data())
def test_a_plan_in_parts_has_the_rates_of_the_plan_in_one_piece(data: st.DataObject) -> None:
    topology = data.draw(trees())
    given_ = [data.draw(demands(d, NOW)) for d in topology.compiled.device_ids[: data.draw(
        st.integers(1, 8))]]  # fmt: skip
    whole = plan(topology, given_, NOW, version=1, config=CFG)
    parts, changed = replan(topology, given_, Plan.empty(NOW), NOW, CFG, 0.1)
    assert changed == set(whole.devices)
    assert parts.devices.keys() == whole.devices.keys()
    for d, dp in whole.devices.items():
        got = parts.devices[d]
        assert all(abs(a - b) <= 1 for a, b in zip(got.rates, dp.rates, strict=True)), d
        if got.rates == dp.rates:
            assert got.segments == dp.segments
    ct = topology.compiled
    for lid, row in parts.link_loads.items():
        assert sum(row) <= ct.capacity[ct.index[lid]]
    assert parts.valid_until_us == whole.valid_until_us and parts.version == whole.version


def _city() -> Topology:
    links = [Link("city", None, 10**9)]
    links += [Link(f"county{i}", "city", 10**6) for i in range(3)]
    devices = [Device(f"nvr{i}", f"county{i % 3}") for i in range(6)]
    return Topology(tuple(links), tuple(devices))


def _backfill(device: str, seq: int, size: int = 10**6) -> DeviceDemand:
    seg = PendingSegment(f"{device}-s{seq}", f"{device}-c", T.BACKFILL, NOW - 60 * S, size)
    return DeviceDemand(device, {T.BACKFILL: ClassBacklog(size, 1, NOW - 60 * S)}, (seg,))


def test_only_the_part_whose_demand_changed_is_planned_again() -> None:
    topology = _city()
    given_ = {f"nvr{i}": _backfill(f"nvr{i}", 0) for i in range(6)}
    first, _ = replan(topology, list(given_.values()), Plan.empty(NOW), NOW, CFG, 0.1)
    given_["nvr1"] = _backfill("nvr1", 1)  # county1's part: nvr1 and nvr4
    second, changed = replan(topology, list(given_.values()), first, NOW + S, CFG, 0.1)
    a, b = first.memo, second.memo
    assert isinstance(a, Memo) and isinstance(b, Memo)
    assert a.partition is b.partition and len(b.partition.parts) == 3
    same = [part for part in b.fresh if b.fresh[part] is a.fresh[part]]
    assert sorted(d for part in same for d in part.device_ids) == ["nvr0", "nvr2", "nvr3", "nvr5"]
    assert changed == {"nvr1"}  # nvr4's share did not move: its lease stays
    assert second.devices["nvr1"].segments[0].segment_id == "nvr1-s1"


def test_a_full_root_plans_the_city_in_one_piece() -> None:
    links = (Link("city", None, 1_500_000), Link("a", "city", 10**6), Link("b", "city", 10**6))
    topology = Topology(links, (Device("x", "a"), Device("y", "b")))
    given_ = [_backfill("x", 0, 10**7), _backfill("y", 0, 10**7)]  # 8 Mbit/s each wanted
    got, changed = replan(topology, given_, Plan.empty(NOW), NOW, CFG, 0.1)
    whole = plan(topology, given_, NOW, version=1, config=CFG)
    assert (got, changed) == stabilise(Plan.empty(NOW), whole, topology, 0.1)
    assert got.devices["x"].total_bps == got.devices["y"].total_bps == 750_000
    assert "city" in got.saturated


def _contended(windows: tuple[Window, ...] = ()) -> Topology:
    links = (Link("city", None, 10**12), Link("village", "city", 1000, windows))
    return Topology(links, (Device("a", "village"), Device("b", "village")))


def _due(device: str, deadline_us: int, due: int, cls: TrafficClass = T.BACKFILL) -> DeviceDemand:
    seg = PendingSegment(f"{device}-s", f"{device}-c", cls, NOW - 60 * S, 10**6)
    backlog = {cls: ClassBacklog(10**6, 1, NOW - 60 * S, deadline_us, due)}
    return DeviceDemand(device, backlog, (seg,))


def test_a_part_with_a_deadline_is_planned_again_as_time_passes() -> None:
    given_ = [_due("a", NOW + 100 * S, 5000), _due("b", 0, 0)]
    first, _ = replan(_contended(), given_, Plan.empty(NOW), NOW, CFG, 0.0)
    assert first.devices["a"].total_bps < 1000  # shared: the deadline is far
    later = NOW + 90 * S  # the same demand, 10 s left: a's urgent rate takes the link
    got = replan(_contended(), given_, first, later, CFG, 0.0)
    assert got == full(_contended(), {d.device_id: d for d in given_}, first, later, 0.0)
    assert got[0].devices["a"].total_bps == 1000


def test_a_window_opening_plans_every_part_again() -> None:
    given_ = [_due("a", 0, 0, T.EVIDENCE)]
    topology = _contended((Window(T.EVIDENCE, 181, 200),))  # evidence from 03:01 on
    first, _ = replan(topology, given_, Plan.empty(NOW), NOW, CFG, 0.0)
    assert first.devices["a"].total_bps == 0
    later = NOW + 90 * S
    got = replan(topology, given_, first, later, CFG, 0.0)
    assert got == full(topology, {d.device_id: d for d in given_}, first, later, 0.0)
    assert got[0].devices["a"].total_bps == 1000


def test_with_hints_a_part_with_a_deadline_is_still_planned_again_as_time_passes() -> None:
    planner = Planner(_contended(), CFG, 0.0)
    planner.report(_due("a", NOW + 100 * S, 5000))
    planner.report(_due("b", 0, 0))
    planner.replan(NOW)
    planner.replan(NOW)  # settled: nothing touched
    assert planner.prepare().touched == frozenset()
    planner.replan(NOW + 90 * S)
    assert planner.plan.devices["a"].total_bps == 1000  # 10 s left: a takes the link
