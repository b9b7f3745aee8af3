"""The link tree and device registry, validated once and compiled into flat index arrays.

A `Topology` that exists is usable: a single root (the city ingress), every parent known,
no cycles, positive capacities, every device attached to a known link. Validation gathers
every problem into one TopologyError so an operator fixing a file sees them all at once.

The planner runs every few seconds over ~3,000 links and ~7,000 devices in pure Python, so
the tree is compiled here, once per topology change, into integer-indexed lists: links in
root-first order (a parent's index is always below its children's), each link's path to the
root, its children, and the devices' attach points, weights and caps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from controller.scheduler.model import (
    MINUTES_PER_DAY,
    Device,
    Link,
    TopologyError,
    TrafficClass,
    Window,
)

_MAX_PROBLEMS = 20
_US_PER_MINUTE = 60_000_000


class CompiledTopology:
    """Integer-indexed view of a Topology for the planner's inner loops (read-only by use)."""

    __slots__ = (
        "links",
        "link_ids",
        "index",
        "parent",
        "children",
        "paths",
        "capacity",
        "reserve_cap",
        "reserved_on_path",
        "windows",
        "window_edges",
        "device_ids",
        "device_index",
        "device_link",
        "device_weight",
        "device_max",
        "utc_offset_minutes",
    )

    def __init__(
        self, links: Sequence[Link], devices: Sequence[Device], utc_offset_minutes: int
    ) -> None:
        self.links: tuple[Link, ...] = tuple(links)
        self.link_ids: list[str] = [link.link_id for link in links]
        self.index: dict[str, int] = {lid: i for i, lid in enumerate(self.link_ids)}
        self.parent: list[int] = [
            -1 if link.parent is None else self.index[link.parent] for link in links
        ]
        kids: list[list[int]] = [[] for _ in links]
        for i, p in enumerate(self.parent):
            if p >= 0:
                kids[p].append(i)
        self.children: list[tuple[int, ...]] = [tuple(k) for k in kids]
        self.paths: list[tuple[int, ...]] = []
        for i, p in enumerate(self.parent):
            self.paths.append((i,) if p < 0 else (i, *self.paths[p]))
        self.capacity: list[int] = [link.capacity_bps for link in links]
        self.reserve_cap: list[int] = [int(link.capacity_bps * link.live_reserve) for link in links]
        self.reserved_on_path: list[bool] = [
            any(self.reserve_cap[j] > 0 for j in path) for path in self.paths
        ]
        self.windows: dict[TrafficClass, list[tuple[int, tuple[Window, ...]]]] = {}
        edges: set[int] = set()
        for i, link in enumerate(links):
            by_class: dict[TrafficClass, list[Window]] = {}
            for w in link.windows:
                by_class.setdefault(w.traffic_class, []).append(w)
                edges.update((w.start_minute % MINUTES_PER_DAY, w.end_minute % MINUTES_PER_DAY))
            for cls, ws in by_class.items():
                self.windows.setdefault(cls, []).append((i, tuple(ws)))
        self.window_edges: tuple[int, ...] = tuple(sorted(edges))
        self.device_ids: list[str] = [d.device_id for d in devices]
        self.device_index: dict[str, int] = {d: i for i, d in enumerate(self.device_ids)}
        self.device_link: list[int] = [self.index[d.link_id] for d in devices]
        self.device_weight: list[float] = [float(d.weight) for d in devices]
        self.device_max: list[float] = [
            float(d.max_bps) if d.max_bps else math.inf for d in devices
        ]
        self.utc_offset_minutes = utc_offset_minutes

    def minute_of_day(self, now_us: int) -> float:
        """Local minute of the day (0 <= m < 1440) at `now_us`, for time-of-day windows."""
        return (now_us / _US_PER_MINUTE + self.utc_offset_minutes) % MINUTES_PER_DAY

    def closed_links(self, cls: TrafficClass, now_us: int) -> list[int]:
        """Links that `cls` may not cross at `now_us` (it has windows there, none open)."""
        minute = self.minute_of_day(now_us)
        return [i for i, ws in self.windows.get(cls, ()) if not any(w.contains(minute) for w in ws)]

    def next_window_edge_us(self, now_us: int) -> int | None:
        """The next instant after `now_us` at which any window opens or closes, if any."""
        if not self.window_edges:
            return None
        minute = self.minute_of_day(now_us)
        ahead = min((e - minute) % MINUTES_PER_DAY or MINUTES_PER_DAY for e in self.window_edges)
        return now_us + max(1, math.ceil(ahead * _US_PER_MINUTE))


def _order_links(links: Sequence[Link], problems: list[str]) -> list[Link]:
    """Links root-first (breadth-first), recording every structural problem found."""
    by_id: dict[str, Link] = {}
    for link in links:
        if link.link_id in by_id:
            problems.append(f"link {link.link_id!r} defined twice")
        by_id[link.link_id] = link
    roots = [link for link in by_id.values() if link.parent is None]
    if len(roots) != 1:
        names = ", ".join(repr(r.link_id) for r in roots[:5]) or "none"
        problems.append(f"a topology needs exactly one root link (no parent); found {names}")
    kids: dict[str, list[Link]] = {}
    for link in by_id.values():
        if link.parent is None:
            continue
        if link.parent == link.link_id:
            problems.append(f"link {link.link_id!r} is its own parent")
        elif link.parent not in by_id:
            problems.append(f"link {link.link_id!r}: parent {link.parent!r} is not a link")
        kids.setdefault(link.parent, []).append(link)
    ordered: list[Link] = []
    frontier = roots[:1]
    while frontier:
        ordered.extend(frontier)
        frontier = [k for link in frontier for k in kids.get(link.link_id, ())]
    if len(roots) == 1 and len(ordered) < len(by_id):
        reached = {link.link_id for link in ordered}
        stray = sorted(
            lid for lid, link in by_id.items() if lid not in reached and link.parent in by_id
        )
        if stray:
            problems.append(
                "links not reachable from the root (a cycle): "
                + ", ".join(repr(s) for s in stray[:8])
                + (" ..." if len(stray) > 8 else "")
            )
    return ordered


@dataclass(frozen=True, slots=True)
class Topology:
    """A validated link tree with its devices; `compiled` is built once, here."""

    links: tuple[Link, ...]
    devices: tuple[Device, ...] = ()
    utc_offset_minutes: int = 0
    compiled: CompiledTopology = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.links, tuple) or not all(isinstance(x, Link) for x in self.links):
            raise TopologyError("links must be a tuple of Link")
        if not isinstance(self.devices, tuple) or not all(
            isinstance(d, Device) for d in self.devices
        ):
            raise TopologyError("devices must be a tuple of Device")
        off = self.utc_offset_minutes
        if isinstance(off, bool) or not isinstance(off, int) or not -1440 < off < 1440:
            raise TopologyError(
                f"utc_offset_minutes must be an integer in (-1440, 1440), got {off!r}"
            )
        ordered = _order_links(self.links, problems)
        known = {link.link_id for link in self.links}
        seen: set[str] = set()
        for d in self.devices:
            if d.device_id in seen:
                problems.append(f"device {d.device_id!r} defined twice")
            seen.add(d.device_id)
            if d.link_id not in known:
                problems.append(f"device {d.device_id!r}: link {d.link_id!r} is not a link")
        if problems:
            more = len(problems) - _MAX_PROBLEMS
            text = "; ".join(problems[:_MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
            raise TopologyError(f"invalid topology: {text}")
        object.__setattr__(
            self, "compiled", CompiledTopology(ordered, self.devices, self.utc_offset_minutes)
        )

    def link(self, link_id: str) -> Link:
        """The link called `link_id` (KeyError if none)."""
        return self.compiled.links[self.compiled.index[link_id]]

    def path(self, device_id: str) -> tuple[str, ...]:
        """Link ids from the device's attach link up to the root."""
        c = self.compiled
        return tuple(c.link_ids[i] for i in c.paths[c.device_link[c.device_index[device_id]]])

    def with_changes(
        self,
        *,
        upsert_links: Iterable[Link] = (),
        remove_links: Iterable[str] = (),
        upsert_devices: Iterable[Device] = (),
        remove_devices: Iterable[str] = (),
    ) -> Topology:
        """A new topology with these changes applied; this one is never modified.

        Raises TopologyError (naming every problem) if the result would be invalid, e.g. a
        cycle, or a removed link that still has children or devices; or if a removal names
        something that does not exist.
        """
        links = {link.link_id: link for link in self.links}
        devices = {d.device_id: d for d in self.devices}
        for lid in remove_links:
            if lid not in links:
                raise TopologyError(f"cannot remove link {lid!r}: no such link")
            del links[lid]
        for did in remove_devices:
            if did not in devices:
                raise TopologyError(f"cannot remove device {did!r}: no such device")
            del devices[did]
        for link in upsert_links:
            links[link.link_id] = link
        for d in upsert_devices:
            devices[d.device_id] = d
        return Topology(tuple(links.values()), tuple(devices.values()), self.utc_offset_minutes)
