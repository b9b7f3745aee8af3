"""Incremental replanning: only the parts of the city whose inputs changed are planned again.

Pure (no I/O, no clock, no threads); `state.compute` calls `replan` for every replan.

The tree splits under its root into *parts*: each child link of the root with its whole
subtree (a county; in the default topology, one device's own uplink), and each device
attached to the root itself. Two parts share only the root link. While the root is full in
no pass, progressive filling never reaches the root's level, so the weighted max-min rates
inside a part do not depend on any other part: each part is planned on its own (`plan` on a
compiled sub-tree: the root, unbounded, and the part's links) and stabilised on its own
(`stabilise`: kept old leases checked against the part's links), and both results are kept
in the plan's `memo` for the next replan. A part is planned again only when its inputs
changed:

- a device's demand (a new `DeviceDemand` object: a report, a finished lease, live feeds);
- the plan in force for one of its devices (a lease released, expired or withdrawn) -- this
  re-runs only the part's stabilise, not its plan;
- its links or devices (a topology change: parts are matched by their content);
- the links closed by time-of-day windows now, or the planner's settings;
- any of its demand has a deadline (the urgent rate depends on the time left): such a part
  is planned at every replan.

Where the parts meet, the root, is checked after the parts are planned: if the parts' loads
on the root, with what flooring the rates may hide, would reach its capacity (or its live
reserve), the parts are not independent and the whole city is planned in one piece
(`plan` + `stabilise`, exactly as before). The same after hysteresis: if kept old rates
would put the root over its capacity, every device gets its fresh plan.

`replan(...)` with a previous plan that has no memo is the full recompute; the property tests
(tests/unit/test_scheduler_incremental.py) show that carrying the memo from one replan to the
next gives exactly the plan and the changed devices of the full recompute, and that a plan
made in parts has the rates of the plan made in one piece.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from controller.scheduler.assembly import Assembly, assemble, update
from controller.scheduler.hysteresis import stabilise, stabilise_compiled
from controller.scheduler.model import (
    CLASSES,
    MAX_RATE_BPS,
    DemandError,
    Device,
    DeviceDemand,
    Link,
    SchedulerError,
    TrafficClass,
)
from controller.scheduler.plan import DevicePlan, Plan, PlanConfig, plan, plan_compiled
from controller.scheduler.topology import CompiledTopology, Topology

# A part's root capacity: never reached (the real root is checked over all parts after).
_UNBOUNDED = MAX_RATE_BPS * 1_000_000
# Rates are floored to whole bit/s once per pass (at most 11 passes): what the floored root
# loads may hide of the planner's own (float) load, per device.
_SLACK_PER_DEVICE = 16
_LIVE = TrafficClass.LIVE - 1
_ZERO = (0,) * len(CLASSES)


@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """A child link of the root with its subtree, or a device on the root itself.

    `key` names its content: the root link's settings, the UTC offset, and the identities of
    its Link and Device objects (kept alive in `members`, so no id is reused meanwhile). A
    topology change copies the objects it does not change, so a part elsewhere in the tree
    keeps its key and its plans. Parts hash by identity (the memo's lookups).
    """

    key: tuple[object, ...]
    members: tuple[tuple[Link, ...], tuple[Device, ...]]
    device_ids: tuple[str, ...]
    compiled: CompiledTopology


@dataclass(frozen=True, slots=True, eq=False)
class Partition:
    topology: Topology
    parts: tuple[Part, ...]
    where: dict[str, tuple[int, int]]  # device -> (part, position in the part)


@dataclass(frozen=True, slots=True, eq=False)
class FreshPart:
    """A part's plan for these demands (`None`: the device has no demand)."""

    demands: tuple[DeviceDemand | None, ...]
    ids: tuple[str, ...]  # the devices with demand
    timeless: bool  # no deadline: the same plan at any time (with the same windows)
    plan: Plan
    root: tuple[int, ...]  # its per-class load on the root


@dataclass(frozen=True, slots=True, eq=False)
class StablePart:
    """A part's stabilised plan: `fresh` against the plans in force (`previous`)."""

    fresh: FreshPart
    previous: tuple[DevicePlan | None, ...]  # of the devices with demand, in order
    plan: Plan
    changed: frozenset[str]
    root: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Memo:
    """What a plan keeps for the next replan (`Plan.memo`)."""

    partition: Partition
    config: PlanConfig
    threshold: float
    closed: tuple[tuple[int, ...], ...]  # links closed by windows, per class
    fresh: dict[Part, FreshPart]  # by identity: a partition reuses unchanged parts
    stable: dict[Part, StablePart]
    assembly: Assembly | None  # None: the next plan is put together from scratch
    totals: tuple[int, ...]  # the fresh plans' root load per class, summed
    root_load: tuple[int, ...]  # the same of the stabilised plans
    count: int  # devices with demand
    timed: frozenset[Part]  # parts with a deadline: planned again at every replan


def partition(topology: Topology, previous: Partition | None = None) -> Partition:
    """The parts of `topology` (reusing `previous`'s parts whose content is unchanged)."""
    if previous is not None and previous.topology is topology:
        return previous
    ct = topology.compiled
    root = ct.links[0]
    top = [0] * len(ct.links)
    links: dict[int, list[Link]] = {}
    for i in range(1, len(ct.links)):
        p = ct.parent[i]
        top[i] = i if p == 0 else top[p]
        links.setdefault(top[i], []).append(ct.links[i])
    devices: dict[tuple[int, str], list[int]] = {}
    for di, attach in enumerate(ct.device_link):
        group = (top[attach], "") if attach else (0, ct.device_ids[di])  # on the root: alone
        devices.setdefault(group, []).append(di)
    reuse = {part.key: part for part in previous.parts} if previous is not None else {}
    head = (root.link_id, root.windows, root.live_reserve, ct.utc_offset_minutes)
    parts: list[Part] = []
    where: dict[str, tuple[int, int]] = {}
    all_devices = topology.devices
    for (t, _alone), members in devices.items():
        own = tuple(links.get(t, ())) if t else ()
        devs = tuple([all_devices[di] for di in members])
        key = (head, tuple(map(id, own)), tuple(map(id, devs)))
        part = reuse.get(key)
        if part is None:
            ids = tuple([d.device_id for d in devs])
            part = Part(key, (own, devs), ids, _compile(root, own, devs, ct))
        for pos, d in enumerate(part.device_ids):
            where[d] = (len(parts), pos)
        parts.append(part)
    return Partition(topology, tuple(parts), where)


def _compile(
    root: Link, links: tuple[Link, ...], devices: tuple[Device, ...], ct: CompiledTopology
) -> CompiledTopology:
    sub = CompiledTopology((root, *links), devices, ct.utc_offset_minutes)
    sub.capacity[0] = _UNBOUNDED
    if sub.reserve_cap[0]:
        sub.reserve_cap[0] = _UNBOUNDED
    return sub


def replan(
    topology: Topology,
    demands: Sequence[DeviceDemand],
    previous: Plan,
    now_us: int,
    config: PlanConfig,
    threshold: float,
    touched: Iterable[str] | None = None,
    latest: Mapping[str, DeviceDemand] | None = None,
) -> tuple[Plan, frozenset[str]]:
    """The stabilised plan after `previous` and the devices whose leases must change (as
    `stabilise(previous, plan(...))`, part by part: see the module docstring).

    `touched` and `latest` (state.Planner keeps them): every device whose demand or plan in
    force may differ from what `previous` was made from, and the demands by device. With
    them, and the same topology and windows, only the parts of those devices (and the parts
    with a deadline) are looked at; without them every part is compared.
    """
    if isinstance(now_us, bool) or not isinstance(now_us, int) or now_us < 0:
        plan(topology, (), now_us)  # raises SchedulerError naming the problem
    if not 0.0 <= threshold < 1.0:
        raise SchedulerError(f"threshold must be in [0, 1), got {threshold!r}")
    memo = previous.memo if isinstance(previous.memo, Memo) else None
    if memo is not None and (memo.config != config or memo.threshold != threshold):
        memo = None
    parts = partition(topology, memo.partition if memo is not None else None)
    ct = topology.compiled
    closed = tuple(tuple(ct.closed_links(cls, now_us)) for cls in CLASSES)
    reuse = memo if memo is not None and memo.closed == closed else None
    version = previous.version + 1
    base: Memo | None = None
    if (
        reuse is not None and reuse.assembly is not None and reuse.partition is parts
        and touched is not None and latest is not None
    ):  # fmt: skip
        base = reuse  # start from its results; look only at what may have changed
        where = parts.where
        visit = {parts.parts[where[d][0]] for d in touched if d in where} | reuse.timed
        slots = {part: _slot(part, latest) for part in visit}
    else:
        slots = dict(zip(parts.parts, _group(parts, demands), strict=True))
    old_fresh = reuse.fresh if reuse is not None else {}
    fresh = dict(base.fresh) if base is not None else {}
    totals = list(base.totals) if base is not None else list(_ZERO)
    count = base.count if base is not None else 0
    timed = set(base.timed) if base is not None else set()
    for part, given in slots.items():
        gone = fresh.pop(part, None)
        if gone is not None:
            count -= len(gone.ids)
            _add(totals, gone.root, -1)
            timed.discard(part)
        if given is None:
            continue
        f = old_fresh.get(part)
        if f is None or not f.timeless or f.demands != given:
            f = _plan_part(part, given, now_us, version, config)
        fresh[part] = f
        count += len(f.ids)
        _add(totals, f.root, 1)
        if not f.timeless:
            timed.add(part)
    slack = _SLACK_PER_DEVICE * count
    independent = sum(totals) + slack < ct.capacity[0] and (
        not ct.reserve_cap[0] or totals[_LIVE] + slack < ct.reserve_cap[0]
    )
    sums = (tuple(totals), tuple(_ZERO), count, frozenset(timed))
    if not independent:  # the root is full in some pass: the city is one piece
        one = plan(topology, demands, now_us, version=version, config=config)
        merged, one_changed = stabilise(previous, one, topology, threshold)
        memo = Memo(parts, config, threshold, closed, fresh, {}, None, *sums)
        return replace(merged, memo=memo), one_changed

    get = previous.devices.get
    old_stable = reuse.stable if reuse is not None else {}
    stable = dict(base.stable) if base is not None else {}
    root_load = list(base.root_load) if base is not None else list(_ZERO)
    for part in slots:
        gone_s = stable.pop(part, None)
        if gone_s is not None:
            _add(root_load, gone_s.root, -1)
        f = fresh.get(part)
        if f is None:
            continue
        before = tuple(map(get, f.ids))
        s = old_stable.get(part)
        if s is None or s.fresh is not f or s.previous != before:
            s = _stabilise_part(f, before, part, threshold)
        stable[part] = s
        _add(root_load, s.root, 1)
    valid = now_us + int(config.horizon_s * 1e6)
    edge = ct.next_window_edge_us(now_us)
    if edge is not None:
        valid = min(valid, edge)
    root_id = ct.link_ids[0]
    sums = (tuple(totals), tuple(root_load), count, frozenset(timed))
    changed: set[str]
    if sum(root_load) > ct.capacity[0]:  # kept old rates would overfill the root: all fresh
        whole = assemble([f.plan for f in fresh.values()], root_id, totals)
        changed = set(whole.devices)
        memo = Memo(parts, config, threshold, closed, fresh, stable, None, *sums)
    else:
        old_whole = reuse.assembly if reuse is not None else None
        candidates = slots if base is not None else None
        whole = update(old_whole, old_stable, stable, candidates, root_id, root_load)
        changed = set().union(*whole.changed.values())
        memo = Memo(parts, config, threshold, closed, fresh, stable, whole, *sums)
    if base is not None and touched is not None:  # only a touched device can be gone
        changed.update(d for d in touched if d in previous.devices and d not in whole.devices)
    else:
        changed.update(previous.devices.keys() - whole.devices.keys())
    saturated = frozenset().union(*whole.saturated.values())
    result = Plan(version, now_us, valid, whole.devices, whole.loads, saturated, memo)
    return result, frozenset(changed)


def _slot(part: Part, latest: Mapping[str, DeviceDemand]) -> tuple[DeviceDemand | None, ...] | None:
    given = tuple(map(latest.get, part.device_ids))
    return given if any(d is not None for d in given) else None


def _add(into: list[int], row: tuple[int, ...], sign: int) -> None:
    for k, r in enumerate(row):
        into[k] += sign * r


def _group(
    parts: Partition, demands: Sequence[DeviceDemand]
) -> list[tuple[DeviceDemand | None, ...] | None]:
    """Each part's demands by position (None: a part with no demand at all)."""
    slots: list[list[DeviceDemand | None] | None] = [None] * len(parts.parts)
    for d in demands:
        if not isinstance(d, DeviceDemand):
            raise DemandError(f"demand must be DeviceDemand, got {type(d).__name__}")
        at = parts.where.get(d.device_id)
        if at is None:
            raise DemandError(f"device {d.device_id!r} is not in the topology")
        i, pos = at
        row = slots[i]
        if row is None:
            row = slots[i] = [None] * len(parts.parts[i].device_ids)
        if row[pos] is not None:
            raise DemandError(f"device {d.device_id!r} reported twice in one plan")
        row[pos] = d
    return [None if row is None else tuple(row) for row in slots]


def _plan_part(
    part: Part, given: tuple[DeviceDemand | None, ...], now_us: int, version: int, cfg: PlanConfig
) -> FreshPart:
    present = [d for d in given if d is not None]
    p = plan_compiled(part.compiled, present, now_us, version=version, config=cfg)
    timeless = not any(b.due_bytes for d in present for b in d.backlog.values())
    root = p.link_loads.get(part.compiled.link_ids[0], _ZERO)
    return FreshPart(given, tuple(d.device_id for d in present), timeless, p, root)


def _stabilise_part(
    f: FreshPart, before: tuple[DevicePlan | None, ...], part: Part, threshold: float
) -> StablePart:
    old = {dp.device_id: dp for dp in before if dp is not None}
    previous = Plan(0, 0, 0, old, {}, frozenset())
    merged, changed = stabilise_compiled(previous, f.plan, part.compiled, threshold)
    root = merged.link_loads.get(part.compiled.link_ids[0], _ZERO)
    return StablePart(f, before, merged, changed, root)
