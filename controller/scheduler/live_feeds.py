"""Live feeds on the links: whether a link can carry one more, and the LIVE demand the
running ones put into the plan. Pure (owned by the live view; the desk calls it).

A live feed is not a backlog of segments: it is a steady stream the agent sends on its control
channel while someone watches. The planner already knows steady streams: a `ClassBacklog`'s
`arrival_bps` is planned first in the LIVE pass, up to each link's live reserve, before
evidence and far before backfill. So a running feed becomes LIVE `arrival_bps` on its device
(`with_live`), and the device's lease rate leaves that share out (`lease_plan`), because the
lease is what the agent's uploader may use for segments: the live bytes never queue behind
backfill, and backfill on the same link gets what is left.

Admission (`admit`) is what keeps a link from being oversubscribed by live streams: before the
hub asks an agent for a feed, every link on the device's path must have room for its rate next
to the live feeds already on it, and carry fewer than the per-link limit of live streams.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from controller.scheduler.model import ClassBacklog, DeviceDemand, TrafficClass
from controller.scheduler.plan import DevicePlan
from controller.scheduler.topology import Topology

LIVE = TrafficClass.LIVE


@dataclass(frozen=True, slots=True)
class LiveLoad:
    """One running (or wanted) live feed: its device, camera and rate in bit/s."""

    device_id: str
    camera_id: str
    bps: int


def admit(
    topology: Topology, running: Iterable[LiveLoad], new: LiveLoad, max_streams_per_link: int
) -> str | None:
    """None when `new` fits on every link of its device's path, else why not (the viewer's
    "link busy" detail). A device the topology does not know yet has no planned link: admitted
    (the scheduler gives it its own default link when it connects)."""
    index = topology.compiled.device_index
    if new.device_id not in index:
        return None
    paths: dict[str, frozenset[str]] = {}
    on_path: dict[str, list[LiveLoad]] = {}
    for feed in running:
        if feed.camera_id == new.camera_id or feed.device_id not in index:
            continue
        if feed.device_id not in paths:
            paths[feed.device_id] = frozenset(topology.path(feed.device_id))
        for link_id in paths[feed.device_id]:
            on_path.setdefault(link_id, []).append(feed)
    for link_id in topology.path(new.device_id):
        feeds = on_path.get(link_id, [])
        if max_streams_per_link and len(feeds) >= max_streams_per_link:
            return (
                f"link {link_id} already carries {len(feeds)} live stream(s) "
                f"(limit {max_streams_per_link})"
            )
        capacity = topology.link(link_id).capacity_bps
        used = sum(f.bps for f in feeds)
        if used + new.bps > capacity:
            return (
                f"link {link_id} ({capacity // 1000} kbit/s, {used // 1000} kbit/s of live in "
                f"use) cannot carry another {new.bps // 1000} kbit/s live stream"
            )
    return None


def with_live(demand: DeviceDemand | None, device_id: str, bps: int) -> DeviceDemand:
    """`demand` with its live feeds at `bps` as the LIVE class's steady arrival (agents never
    report an arrival rate, so this replaces, never adds: applying it twice is harmless)."""
    backlog = dict(demand.backlog) if demand is not None else {}
    head = demand.head if demand is not None else ()
    entry = backlog.get(LIVE)
    if entry is not None:
        entry = dataclasses.replace(entry, arrival_bps=bps)
    elif bps > 0:
        entry = ClassBacklog(bytes=0, segments=0, arrival_bps=bps)
    if entry is None or (entry.bytes == 0 and entry.arrival_bps == 0):
        backlog.pop(LIVE, None)
    else:
        backlog[LIVE] = entry
    return DeviceDemand(device_id, backlog, head)


def lease_plan(plan: DevicePlan, live_bps: int) -> DevicePlan:
    """The device's plan less the share its live feeds use: the rest is the lease's (what its
    uploader may send segments at)."""
    if live_bps <= 0:
        return plan
    rates = list(plan.rates)
    rates[LIVE - 1] = max(0, rates[LIVE - 1] - live_bps)
    return dataclasses.replace(plan, rates=tuple(rates))
