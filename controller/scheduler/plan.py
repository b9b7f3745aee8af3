"""The planner: which device sends what, at which rate, across the whole city. Pure.

`plan(topology, demands, now_us)` runs weighted max-min filling once per pass, highest class
first, each pass over the capacity the passes before it left:

    live (up to each link's live reserve)        -- watching never freezes behind evidence
    evidence (deadline-urgent part, then the rest)
    live (the rest), event, archive, backfill    -- each: urgent part, then the rest

A flow is one device's backlog of one class. Its limit is what it can use in one planning
horizon (`bytes * 8 / horizon + arrival_bps`), capped by what the device's own `max_bps`
has left, so a small backlog freezes at its demand and the capacity goes to others (work
conservation). The "urgent part" is the rate a deadline needs (`due_bytes * 8 / time left`,
with a 10% margin):
a device whose buffer is about to evict footage gets that rate before fair sharing starts.
Links whose time-of-day windows exclude a class carry none of it.

Rates are floored to whole bit/s and subtracted as integers, so no link or device is ever
planned above its capacity. Each device's segments are then ordered by class, deadline, and
oldest first, and cut to what its rate sends in one horizon (always at least one segment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.scheduler.model import (
    CLASSES,
    DemandError,
    DeviceDemand,
    PendingSegment,
    SchedulerError,
    TrafficClass,
)
from controller.scheduler.topology import CompiledTopology, Topology
from controller.scheduler.waterfill import waterfill

DEVICE_CAP = "(device cap)"  # bottleneck marker: the device's own max_bps stopped the flow
_NO_DEADLINE = 1 << 62
# Aim to finish due bytes in this share of the time left, so that replan timing and
# rounding never lose the last segment to eviction.
_MARGIN = 0.9
_NCLS = len(CLASSES)


@dataclass(frozen=True, slots=True)
class PlanConfig:
    """How far ahead a plan looks; also the length of the leases it implies."""

    horizon_s: float = 10.0
    # Evidence is planned to finish as fast as the links allow, not spread over a horizon:
    # its demand counts as what it would send in this long. Its lease ending early makes
    # the agent report back (FinishLease), which triggers the replan that hands its share on.
    evidence_horizon_s: float = 1.0
    max_lease_segments: int = 64

    def __post_init__(self) -> None:
        for name in ("horizon_s", "evidence_horizon_s"):
            v = getattr(self, name)
            if not 0.1 <= v <= 3600:
                raise SchedulerError(f"{name} must be in [0.1, 3600], got {v!r}")
        if not 1 <= self.max_lease_segments <= 100_000:
            raise SchedulerError("max_lease_segments must be in [1, 100000]")


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One device's share: bit/s per class (index = class - 1), segments in send order.

    `bottlenecks[k]` says what stopped class k+1 from going faster: a link id, DEVICE_CAP,
    or None (it got all it asked for, or asked for nothing).
    """

    device_id: str
    rates: tuple[int, ...]
    segments: tuple[PendingSegment, ...]
    bottlenecks: tuple[str | None, ...]

    @property
    def total_bps(self) -> int:
        return sum(self.rates)

    def rate(self, cls: TrafficClass) -> int:
        return self.rates[cls - 1]


@dataclass(frozen=True, slots=True)
class Plan:
    """The city's upload plan at `at_us`, to be replaced by `valid_until_us` at the latest.

    `link_loads[link]` is the planned bit/s per class (index = class - 1) on each link that
    carries anything; `saturated` names the links that filled up (the bottlenecks).
    """

    version: int
    at_us: int
    valid_until_us: int
    devices: Mapping[str, DevicePlan]
    link_loads: Mapping[str, tuple[int, ...]]
    saturated: frozenset[str]
    # What incremental.py keeps to make the next plan from this one (not part of the plan).
    memo: object = field(default=None, compare=False, repr=False)

    @staticmethod
    def empty(at_us: int = 0) -> Plan:
        return Plan(0, at_us, at_us, {}, {}, frozenset())

    def link_load(self, link_id: str) -> int:
        """Total planned bit/s on `link_id` (0 if it carries nothing)."""
        return sum(self.link_loads.get(link_id, ()))


def segment_order(seg: PendingSegment) -> tuple[int, int, int, str]:
    """Send order inside a device: class, then deadline, then oldest first."""
    return (seg.traffic_class, seg.deadline_us or _NO_DEADLINE, seg.start_us, seg.segment_id)


def resolve_demands(topology: Topology, demands: Iterable[DeviceDemand]) -> dict[int, DeviceDemand]:
    return _resolve(topology.compiled, demands)


def _resolve(ct: CompiledTopology, demands: Iterable[DeviceDemand]) -> dict[int, DeviceDemand]:
    index = ct.device_index
    found: dict[int, DeviceDemand] = {}
    for d in demands:
        if not isinstance(d, DeviceDemand):
            raise DemandError(f"demand must be DeviceDemand, got {type(d).__name__}")
        i = index.get(d.device_id)
        if i is None:
            raise DemandError(f"device {d.device_id!r} is not in the topology")
        if i in found:
            raise DemandError(f"device {d.device_id!r} reported twice in one plan")
        found[i] = d
    return found


class _Passes:
    """Mutable working state of one `plan` call (never escapes it)."""

    def __init__(self, ct: CompiledTopology, devices: list[int]) -> None:
        self.ct = ct
        self.attach = [ct.device_link[i] for i in devices]
        self.weight = [ct.device_weight[i] for i in devices]
        self.dev_left = [ct.device_max[i] for i in devices]
        self.residual = list(ct.capacity)
        self.rates = [[0] * _NCLS for _ in devices]
        self.bottleneck: list[list[str | None]] = [[None] * _NCLS for _ in devices]
        self.class_load: dict[int, list[int]] = {}
        self.saturated: set[int] = set()

    def capacities(self, cls: TrafficClass, now_us: int) -> list[float]:
        caps = [float(r) if r > 0 else 0.0 for r in self.residual]
        for i in self.ct.closed_links(cls, now_us):
            caps[i] = 0.0
        return caps

    def run(
        self,
        cls: TrafficClass,
        flows: list[tuple[int, float]],
        caps: list[float],
        counts_as_full: list[bool] | None = None,
    ) -> None:
        """One filling pass of class `cls` over (device position, demand limit) flows."""
        k = cls - 1
        dev_left = self.dev_left
        pos_list: list[int] = []
        limits: list[float] = []
        capped: list[bool] = []
        for pos, want in flows:
            room = dev_left[pos]
            lim = want if want <= room else room
            if lim >= 1.0:
                pos_list.append(pos)
                limits.append(lim)
                capped.append(room < want)
            elif room < want:
                self.bottleneck[pos][k] = DEVICE_CAP
        if not pos_list:
            return
        attach = [self.attach[p] for p in pos_list]
        fill = waterfill(self.ct, caps, attach, [self.weight[p] for p in pos_list], limits)
        n = len(caps)
        load = [0] * n
        link_ids = self.ct.link_ids
        for j, pos in enumerate(pos_list):
            r = int(fill.rates[j])
            self.rates[pos][k] += r
            dev_left[pos] -= r
            load[attach[j]] += r
            b = fill.bottleneck[j]
            self.bottleneck[pos][k] = link_ids[b] if b >= 0 else (DEVICE_CAP if capped[j] else None)
        parent = self.ct.parent
        for i in range(n - 1, 0, -1):
            if load[i]:
                load[parent[i]] += load[i]
        cl = self.class_load.setdefault(k, [0] * n)
        residual = self.residual
        for i in range(n):
            if load[i]:
                residual[i] -= load[i]
                cl[i] += load[i]
        for i in fill.saturated:
            if caps[i] > 0 and (counts_as_full is None or counts_as_full[i]):
                self.saturated.add(i)


def plan(
    topology: Topology,
    demands: Iterable[DeviceDemand],
    now_us: int,
    *,
    version: int = 1,
    config: PlanConfig | None = None,
) -> Plan:
    """The plan for these demands at `now_us`. Deterministic; raises SchedulerError on bad input.

    Every device in `demands` must be in `topology`, at most once.
    """
    return plan_compiled(topology.compiled, demands, now_us, version=version, config=config)


def plan_compiled(
    ct: CompiledTopology,
    demands: Iterable[DeviceDemand],
    now_us: int,
    *,
    version: int = 1,
    config: PlanConfig | None = None,
) -> Plan:
    """`plan` on a compiled topology (incremental.py plans one part of the tree at a time)."""
    cfg = config or PlanConfig()
    if isinstance(now_us, bool) or not isinstance(now_us, int) or now_us < 0:
        raise SchedulerError(f"now_us must be a non-negative integer, got {now_us!r}")
    found = _resolve(ct, demands)
    order = sorted(found)
    st = _Passes(ct, order)
    to_bps = 8.0 / cfg.horizon_s
    evidence_to_bps = 8.0 / cfg.evidence_horizon_s
    evidence = TrafficClass.EVIDENCE
    wants: list[list[tuple[int, float, float]]] = [[] for _ in CLASSES]
    for pos, i in enumerate(order):
        for cls, b in found[i].backlog.items():
            want = b.arrival_bps + b.bytes * (evidence_to_bps if cls is evidence else to_bps)
            if want < 1.0:
                continue
            need = 0.0
            if b.due_bytes:
                left_s = (b.deadline_us - now_us) / 1e6
                need = want if left_s <= 0 else min(want, b.due_bytes * 8 / (left_s * _MARGIN))
            wants[cls - 1].append((pos, want, need))

    live = wants[TrafficClass.LIVE - 1]
    if live:
        caps = st.capacities(TrafficClass.LIVE, now_us)
        for i, rc in enumerate(ct.reserve_cap):
            if rc > 0 and rc < caps[i]:
                caps[i] = float(rc)
        unreserved = [rc == 0 for rc in ct.reserve_cap]
        flows = [(p, w) for p, w, _ in live if ct.reserved_on_path[st.attach[p]]]
        st.run(TrafficClass.LIVE, flows, caps, unreserved)
    for cls in CLASSES:
        entries = wants[cls - 1]
        if not entries:
            continue
        k = cls - 1
        urgent = [(p, n - st.rates[p][k]) for p, _, n in entries if n - st.rates[p][k] >= 1.0]
        if urgent:
            st.run(cls, urgent, st.capacities(cls, now_us))
        rest = [(p, w - st.rates[p][k]) for p, w, _ in entries if w - st.rates[p][k] >= 1.0]
        st.run(cls, rest, st.capacities(cls, now_us))
    return _assemble(ct, found, order, st, now_us, version, cfg)


def _assemble(
    ct: CompiledTopology,
    found: dict[int, DeviceDemand],
    order: list[int],
    st: _Passes,
    now_us: int,
    version: int,
    cfg: PlanConfig,
) -> Plan:
    bytes_per_bps = cfg.horizon_s / 8
    devices: dict[str, DevicePlan] = {}
    for pos, i in enumerate(order):
        d = found[i]
        rates = st.rates[pos]
        total = sum(rates)
        chosen: tuple[PendingSegment, ...] = ()
        if total and d.head:
            segs = sorted((s for s in d.head if rates[s.traffic_class - 1]), key=segment_order)
            budget = total * bytes_per_bps
            used = 0
            cut = 0
            for s in segs:
                if cut and (used + s.size_bytes > budget or cut >= cfg.max_lease_segments):
                    break
                used += s.size_bytes
                cut += 1
            chosen = tuple(segs[:cut])
        devices[d.device_id] = DevicePlan(
            d.device_id,
            tuple(rates),
            chosen,
            tuple(st.bottleneck[pos]),
        )
    loads: dict[str, tuple[int, ...]] = {}
    zero = [0] * len(ct.link_ids)
    per_class = [st.class_load.get(k, zero) for k in range(_NCLS)]
    for lid, row in zip(ct.link_ids, zip(*per_class, strict=True), strict=True):
        if any(row):
            loads[lid] = row
    valid = now_us + int(cfg.horizon_s * 1e6)
    edge = ct.next_window_edge_us(now_us)
    if edge is not None:
        valid = min(valid, edge)
    return Plan(
        version=version,
        at_us=now_us,
        valid_until_us=valid,
        devices=devices,
        link_loads=loads,
        saturated=frozenset(ct.link_ids[i] for i in st.saturated),
    )
