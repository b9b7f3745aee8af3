"""The baseline Vigil is measured against: what peer platforms do without a scheduler.

Every device uploads everything it has, oldest first, as fast as its own cap allows; where
devices meet on a link, TCP shares it roughly evenly. That outcome is modelled as plain
max-min sharing of the links by one flow per device (no classes, no windows, no reserve,
no deadlines), with the device's segments in FIFO order. Same interface as `plan`, so the
simulation runs both over the same traffic.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.scheduler.model import CLASSES, DeviceDemand, TrafficClass
from controller.scheduler.plan import DEVICE_CAP, DevicePlan, Plan, PlanConfig, resolve_demands
from controller.scheduler.topology import Topology
from controller.scheduler.waterfill import waterfill

# The naive plan reports each device's single rate in this class's slot.
BULK_SLOT = TrafficClass.BACKFILL - 1


def naive_plan(
    topology: Topology,
    demands: Iterable[DeviceDemand],
    now_us: int,
    *,
    version: int = 1,
    config: PlanConfig | None = None,
) -> Plan:
    """Per-device fair share of every link, each device capped only by itself; FIFO order."""
    cfg = config or PlanConfig()
    found = resolve_demands(topology, demands)
    order = sorted(found)
    ct = topology.compiled
    to_bps = 8.0 / cfg.horizon_s
    attach: list[int] = []
    limits: list[float] = []
    chosen: list[int] = []
    for i in order:
        d = found[i]
        want = sum(b.arrival_bps + b.bytes * to_bps for b in d.backlog.values())
        if want >= 1.0:
            chosen.append(i)
            attach.append(ct.device_link[i])
            limits.append(min(want, ct.device_max[i]))
    fill = waterfill(ct, [float(c) for c in ct.capacity], attach, [1.0] * len(attach), limits)
    rate_of = {i: (int(r), b) for i, r, b in zip(chosen, fill.rates, fill.bottleneck, strict=True)}
    devices: dict[str, DevicePlan] = {}
    n = len(ct.link_ids)
    load = [0] * n
    for i in order:
        d = found[i]
        r, b = rate_of.get(i, (0, -1))
        rates = [0] * len(CLASSES)
        rates[BULK_SLOT] = r
        bott: list[str | None] = [None] * len(CLASSES)
        if b >= 0:
            bott[BULK_SLOT] = ct.link_ids[b]
        elif r and r >= ct.device_max[i] - 1:
            bott[BULK_SLOT] = DEVICE_CAP
        segs = tuple(sorted(d.head, key=lambda s: (s.start_us, s.segment_id)))
        devices[d.device_id] = DevicePlan(d.device_id, tuple(rates), segs, tuple(bott))
        load[ct.device_link[i]] += r
    for j in range(n - 1, 0, -1):
        if load[j]:
            load[ct.parent[j]] += load[j]
    loads = {}
    for j, lid in enumerate(ct.link_ids):
        if load[j]:
            row = [0] * len(CLASSES)
            row[BULK_SLOT] = load[j]
            loads[lid] = tuple(row)
    return Plan(
        version=version,
        at_us=now_us,
        valid_until_us=now_us + int(cfg.horizon_s * 1e6),
        devices=devices,
        link_loads=loads,
        saturated=frozenset(ct.link_ids[j] for j in fill.saturated),
    )
