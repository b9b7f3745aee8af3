"""Putting the city's plan together from its parts' plans (incremental.py), and updating it
when only some parts changed: the devices, link loads, saturated links and changed devices
of the parts, with the root's row summed over all of them. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.scheduler.plan import DevicePlan, Plan

if TYPE_CHECKING:
    from controller.scheduler.incremental import Part, StablePart


@dataclass(frozen=True, slots=True, eq=False)
class Assembly:
    """The city's plan put together from its parts' plans (kept to update the next one)."""

    devices: dict[str, DevicePlan]
    loads: dict[str, tuple[int, ...]]  # with the root's row
    saturated: dict[Part | int, frozenset[str]]  # only the parts with saturated links
    changed: dict[Part | int, frozenset[str]]  # only the parts with changed devices


def assemble(plans: list[Plan], root_id: str, root_row: list[int]) -> Assembly:
    """Every part's plan in one (from scratch), every device changed."""
    devices: dict[str, DevicePlan] = {}
    loads: dict[str, tuple[int, ...]] = {}
    saturated: dict[Part | int, frozenset[str]] = {}
    for i, p in enumerate(plans):
        devices.update(p.devices)
        loads.update(p.link_loads)
        if p.saturated:
            saturated[i] = p.saturated
    _set_root(loads, root_id, root_row)
    return Assembly(devices, loads, saturated, {0: frozenset(devices)})


def update(
    base: Assembly | None,
    old: dict[Part, StablePart],
    new: dict[Part, StablePart],
    candidates: Iterable[Part] | None,
    root_id: str,
    root_row: list[int],
) -> Assembly:
    """`base` (the assembly of the `old` parts) with the parts that changed swapped in: all
    of them first taken out, then the new ones put in (a device or link may move parts).
    `candidates`: the only parts that may have changed (None: look at all of them)."""
    if base is None:
        base, old, candidates = Assembly({}, {}, {}, {}), {}, None
    devices, loads = dict(base.devices), dict(base.loads)
    saturated, changed = dict(base.saturated), dict(base.changed)
    look = list(candidates) if candidates is not None else list({**old, **new})
    swaps = [(p, old.get(p), new.get(p)) for p in look if old.get(p) is not new.get(p)]
    for part, was, _ in swaps:
        if was is not None:
            for d in was.plan.devices:
                del devices[d]
            for link in was.plan.link_loads:
                loads.pop(link, None)
            saturated.pop(part, None)
            changed.pop(part, None)
    for part, _, now in swaps:
        if now is not None:
            devices.update(now.plan.devices)
            loads.update(now.plan.link_loads)
            if now.fresh.plan.saturated:
                saturated[part] = now.fresh.plan.saturated
            if now.changed:
                changed[part] = now.changed
    _set_root(loads, root_id, root_row)
    return Assembly(devices, loads, saturated, changed)


def _set_root(loads: dict[str, tuple[int, ...]], root_id: str, row: list[int]) -> None:
    loads.pop(root_id, None)
    if any(row):
        loads[root_id] = tuple(row)
