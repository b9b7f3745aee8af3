"""When a fresh plan is worth new leases: small rate changes keep the lease already issued.

Re-issuing thousands of leases every few seconds because a rate moved by 2% costs control
traffic and restarts uploads for nothing. `stabilise` keeps a device's previous plan when
every class's rate moved by less than `threshold` (relative) and the same work is still at
the front of its queue. It never trades safety for calm: if keeping old rates would put any
link or device above its capacity, every kept device under that link gets its fresh plan.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.scheduler.model import CLASSES, SchedulerError
from controller.scheduler.plan import DevicePlan, Plan
from controller.scheduler.topology import CompiledTopology, Topology


def needs_new_lease(old: DevicePlan | None, new: DevicePlan, threshold: float) -> bool:
    """Whether `new` differs from `old` enough to replace the lease `old` was issued as."""
    if old is None:
        return True
    for a, b in zip(old.rates, new.rates, strict=True):
        if (a == 0) != (b == 0):
            return True  # a class starts or stops: not a small change
        if abs(a - b) > threshold * max(a, b):
            return True
    if new.segments and new.segments[0].segment_id not in {s.segment_id for s in old.segments}:
        return True  # new, more urgent work jumped the queue (or the old lease is done)
    return False


def _loads(ct: CompiledTopology, devices: Mapping[str, DevicePlan]) -> list[list[int]]:
    """Per-class bit/s on every link (compiled index order) of these device plans."""
    n = len(ct.link_ids)
    loads = [[0] * n for _ in CLASSES]
    for did, dp in devices.items():
        a = ct.device_link[ct.device_index[did]]
        for k, r in enumerate(dp.rates):
            if r:
                loads[k][a] += r
    for row in loads:
        for i in range(n - 1, 0, -1):
            if row[i]:
                row[ct.parent[i]] += row[i]
    return loads


def stabilise(
    previous: Plan, fresh: Plan, topology: Topology, threshold: float = 0.1
) -> tuple[Plan, frozenset[str]]:
    """The plan to run and the devices whose leases must change (new, altered or dropped).

    `fresh` must have been planned on `topology`. Devices absent from `fresh` but present
    in `previous` are in the changed set: their leases must be withdrawn.
    """
    return stabilise_compiled(previous, fresh, topology.compiled, threshold)


def stabilise_compiled(
    previous: Plan, fresh: Plan, ct: CompiledTopology, threshold: float = 0.1
) -> tuple[Plan, frozenset[str]]:
    """`stabilise` on a compiled topology (incremental.py: one part of the tree at a time)."""
    if not 0.0 <= threshold < 1.0:
        raise SchedulerError(f"threshold must be in [0, 1), got {threshold!r}")
    kept: dict[str, DevicePlan] = {}
    for did, new in fresh.devices.items():
        old = previous.devices.get(did)
        if old is not None and not needs_new_lease(old, new, threshold):
            if old.total_bps <= ct.device_max[ct.device_index[did]]:
                kept[did] = old
    while kept:
        merged = {did: kept.get(did, dp) for did, dp in fresh.devices.items()}
        loads = _loads(ct, merged)
        over = {i for i, cap in enumerate(ct.capacity) if sum(row[i] for row in loads) > cap}
        if not over:
            break
        for did in list(kept):
            if any(j in over for j in ct.paths[ct.device_link[ct.device_index[did]]]):
                del kept[did]
    devices = {did: kept.get(did, dp) for did, dp in fresh.devices.items()}
    changed = {did for did in fresh.devices if did not in kept}
    changed.update(did for did in previous.devices if did not in fresh.devices)
    if kept:
        loads = _loads(ct, devices)
        link_loads = {
            lid: row
            for i, lid in enumerate(ct.link_ids)
            if any(row := tuple(loads[k][i] for k in range(len(CLASSES))))
        }
    else:
        link_loads = dict(fresh.link_loads)
    merged_plan = Plan(
        version=fresh.version,
        at_us=fresh.at_us,
        valid_until_us=fresh.valid_until_us,
        devices=devices,
        link_loads=link_loads,
        saturated=fresh.saturated,
    )
    return merged_plan, frozenset(changed)
