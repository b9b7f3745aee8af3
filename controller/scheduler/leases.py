"""Leases: who may upload what, at which rate, until when; and what actually arrived. Pure.

A lease is one device's slice of the plan: its segments in send order, the device's planned
rate, and an expiry. `LeaseBook` keeps at most one active lease per device: a new lease
replaces the old one (the agent switches at once), so "evidence overtakes backfill" is just
a new lease whose first segment is evidence. A lease leaves the book in four ways, each a
reason to plan again:

    finished    the agent reported it done (FinishLease)
    expired     not finished by its expiry: reclaimed, its work goes back to the planner
    forgotten   the device disconnected: its leases die with the stream
    replaced    a new plan gave the device a different lease

The book remembers recently retired lease ids (bounded), so a late FinishLease for a lease
that was replaced is acknowledged quietly, while a report about a lease that was never
issued, or was issued to another device, is refused (`LeaseError`).

`DeliveryMeter` turns committed segments (size, commit time) into delivered bit/s per
device over a sliding window; the service compares that with the plan per link.
"""

from __future__ import annotations

import collections
import itertools
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.scheduler.model import (
    ClassBacklog,
    DeviceDemand,
    PendingSegment,
    SchedulerError,
    TrafficClass,
)
from controller.scheduler.plan import DevicePlan, PlanConfig
from controller.scheduler.topology import Topology

MAX_REPORTED_IDS = 100_000
_RETIRED_KEPT = 10_000


class LeaseError(SchedulerError):
    """A lease report the controller refuses because it is malformed or inconsistent."""


class UnknownLeaseError(LeaseError):
    """The report names a lease that was never issued (or is long forgotten)."""


class ForeignLeaseError(LeaseError):
    """The report names a lease issued to another device."""


@dataclass(frozen=True, slots=True)
class IssuedLease:
    """One lease as issued: `segments` in send order, `rate_bps` for the whole device."""

    lease_id: str
    device_id: str
    segments: tuple[PendingSegment, ...]
    rate_bps: int
    issued_us: int
    expires_us: int
    plan_version: int

    @property
    def traffic_class(self) -> TrafficClass | None:
        """The class of the first segment (the most urgent work); None for an idle lease."""
        return self.segments[0].traffic_class if self.segments else None

    @property
    def size_bytes(self) -> int:
        return sum(s.size_bytes for s in self.segments)

    @property
    def idle(self) -> bool:
        """No work: tells the agent to stop uploading (its previous lease is withdrawn)."""
        return not self.segments or self.rate_bps <= 0

    def segment_ids(self) -> frozenset[str]:
        return frozenset(s.segment_id for s in self.segments)

    def classes(self) -> dict[str, int]:
        """Segment id -> the class it is leased under (what the KPIs record, not the
        agent's word: controller.catalog.timeliness)."""
        return {s.segment_id: int(s.traffic_class) for s in self.segments}


def lease_ttl_us(config: PlanConfig, grace_s: float) -> int:
    """How long a lease lives: two planning horizons plus a grace period.

    A lease's segments are cut to what its rate sends in one horizon, so an agent using it
    finishes within about one horizon; twice that (plus grace for a slow start or a short
    link cut) is "not used in time".
    """
    if not 0 <= grace_s <= 3600:
        raise SchedulerError(f"lease grace must be in [0, 3600] s, got {grace_s!r}")
    return int((2 * config.horizon_s + grace_s) * 1_000_000)


def make_lease(
    lease_id: str, plan: DevicePlan, now_us: int, ttl_us: int, plan_version: int
) -> IssuedLease:
    """The lease a device plan implies (idle when the plan gives the device nothing)."""
    rate = plan.total_bps if plan.segments else 0
    segments = plan.segments if rate > 0 else ()
    return IssuedLease(
        lease_id, plan.device_id, segments, rate, now_us, now_us + ttl_us, plan_version
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """What a FinishLease changed: the lease (None if it was already retired) and its ids."""

    lease: IssuedLease | None
    done: frozenset[str]
    failed: frozenset[str]


class LeaseBook:
    """At most one active lease per device, and a bounded memory of retired lease ids."""

    def __init__(self) -> None:
        self._active: dict[str, IssuedLease] = {}
        # Active lease id -> device, so issuing and checking a lease id cost O(1), not a scan
        # of every active lease (which made issuing 10,000 leases take seconds).
        self._active_ids: dict[str, str] = {}
        self._retired: collections.OrderedDict[str, str] = collections.OrderedDict()

    def active(self, device_id: str) -> IssuedLease | None:
        return self._active.get(device_id)

    def leases(self) -> list[IssuedLease]:
        return sorted(self._active.values(), key=lambda lease: lease.device_id)

    def issue(self, lease: IssuedLease) -> IssuedLease | None:
        """Make `lease` its device's active lease; returns the lease it replaced, if any."""
        if lease.lease_id in self._retired or lease.lease_id in self._active_ids:
            raise LeaseError(f"lease id {lease.lease_id!r} was issued before")
        old = self._active.get(lease.device_id)
        if old is not None:
            self._retire(old)
        self._active[lease.device_id] = lease
        self._active_ids[lease.lease_id] = lease.device_id
        return old

    def finish(
        self, device_id: str, lease_id: str, done: Sequence[str], failed: Sequence[str]
    ) -> Finished:
        """Record the agent's report on `lease_id`; the active lease leaves the book.

        A retired lease of this device is accepted (nothing changes). LeaseError for a lease
        never issued, one issued to another device, or an oversize or inconsistent report.
        """
        if len(done) + len(failed) > MAX_REPORTED_IDS:
            raise LeaseError(f"lease report lists more than {MAX_REPORTED_IDS} segments")
        done_set, failed_set = frozenset(done), frozenset(failed)
        both = done_set & failed_set
        if both:
            raise LeaseError(
                f"lease {lease_id!r}: segment {sorted(both)[0]!r} reported done and failed"
            )
        lease = self._active.get(device_id)
        if lease is not None and lease.lease_id == lease_id:
            unknown = (done_set | failed_set) - lease.segment_ids()
            if unknown:
                raise LeaseError(
                    f"lease {lease_id!r} does not contain segment {sorted(unknown)[0]!r}"
                )
            del self._active[device_id]
            self._retire(lease)
            return Finished(lease, done_set, failed_set)
        owner = self._retired.get(lease_id)
        if owner == device_id:
            return Finished(None, done_set, failed_set)
        if owner is not None or lease_id in self._active_ids:
            raise ForeignLeaseError(f"lease {lease_id!r} was not issued to device {device_id!r}")
        raise UnknownLeaseError(f"no lease {lease_id!r} was issued (or it is long gone)")

    def expired(self, now_us: int) -> list[IssuedLease]:
        """Remove and return the active leases whose expiry has passed (reclaimed)."""
        gone = [lease for lease in self._active.values() if lease.expires_us <= now_us]
        for lease in gone:
            del self._active[lease.device_id]
            self._retire(lease)
        return gone

    def forget(self, device_id: str) -> IssuedLease | None:
        """The device disconnected: its lease is void. Returns it, if there was one."""
        lease = self._active.pop(device_id, None)
        if lease is not None:
            self._retire(lease)
        return lease

    def _retire(self, lease: IssuedLease) -> None:
        """(already out of `_active`, or about to be replaced there)"""
        self._active_ids.pop(lease.lease_id, None)
        self._retired[lease.lease_id] = lease.device_id
        while len(self._retired) > _RETIRED_KEPT:
            self._retired.popitem(last=False)


@dataclass(frozen=True, slots=True)
class LinkDelivery:
    """Planned against delivered bit/s on one link (delivered over the meter's window)."""

    link_id: str
    capacity_bps: int
    planned_bps: int
    delivered_bps: int

    @property
    def ratio(self) -> float | None:
        """delivered / planned (None when nothing is planned)."""
        return self.delivered_bps / self.planned_bps if self.planned_bps else None


class DeliveryMeter:
    """Bytes committed per device, as a sliding-window rate."""

    def __init__(self, window_s: float = 30.0) -> None:
        if not 1.0 <= window_s <= 3600.0:
            raise SchedulerError(f"delivery window must be in [1, 3600] s, got {window_s!r}")
        self._window_us = int(window_s * 1_000_000)
        self._events: dict[str, collections.deque[tuple[int, int]]] = {}
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def record(self, device_id: str, segment_id: str, size_bytes: int, at_us: int) -> bool:
        """Count one committed segment once; returns False if it was counted already."""
        if segment_id in self._seen:
            return False
        self._seen[segment_id] = None
        while len(self._seen) > MAX_REPORTED_IDS:
            self._seen.popitem(last=False)
        self._events.setdefault(device_id, collections.deque()).append((at_us, size_bytes))
        return True

    def counted(self, segment_id: str) -> bool:
        return segment_id in self._seen

    def rate_bps(self, device_id: str, now_us: int) -> int:
        """Bits per second committed for `device_id` during the window ending at `now_us`."""
        events = self._events.get(device_id)
        if not events:
            return 0
        start = now_us - self._window_us
        while events and events[0][0] <= start:
            events.popleft()
        return int(sum(size for _, size in events) * 8 * 1_000_000 / self._window_us)

    def rates(self, now_us: int) -> dict[str, int]:
        return {d: self.rate_bps(d, now_us) for d in list(self._events)}


def link_delivery(
    topology: Topology, planned: Mapping[str, int], delivered: Mapping[str, int]
) -> list[LinkDelivery]:
    """Per link carrying anything: planned bit/s (from the plan's link loads) against the sum
    of the delivered rates of the devices below it."""
    ct = topology.compiled
    totals = [0] * len(ct.link_ids)
    for device_id, bps in delivered.items():
        i = ct.device_index.get(device_id)
        if i is None or not bps:
            continue
        for j in ct.paths[ct.device_link[i]]:
            totals[j] += bps
    out = []
    for j, link_id in enumerate(ct.link_ids):
        plan_bps = planned.get(link_id, 0)
        if plan_bps or totals[j]:
            out.append(LinkDelivery(link_id, ct.capacity[j], plan_bps, totals[j]))
    return out


def committed_in(lease: IssuedLease, committed: Iterable[str]) -> frozenset[str]:
    """The lease's segments among `committed` ids."""
    return lease.segment_ids() & frozenset(committed)


def without_segments(demand: DeviceDemand, done: frozenset[str]) -> DeviceDemand:
    """`demand` minus segments known to be uploaded (a finished lease's), so a replan before
    the agent's next inventory never leases them again. Totals shrink with the head."""
    gone = [s for s in demand.head if s.segment_id in done]
    if not gone:
        return demand
    backlog = dict(demand.backlog)
    for seg in gone:
        b = backlog[seg.traffic_class]
        left_bytes = b.bytes - seg.size_bytes
        left_segments = b.segments - 1
        if left_segments <= 0 or left_bytes <= 0:
            del backlog[seg.traffic_class]
            continue
        backlog[seg.traffic_class] = ClassBacklog(
            left_bytes,
            left_segments,
            b.oldest_start_us,
            b.deadline_us,
            min(b.due_bytes, left_bytes),
            b.arrival_bps,
        )
    head = tuple(s for s in demand.head if s.segment_id not in done and s.traffic_class in backlog)
    return DeviceDemand(demand.device_id, backlog, head)


def lease_ids() -> Callable[[], str]:
    """16 hex digits: a random prefix per scheduler, then a counter. A uuid4 per lease read
    os.urandom each time: 5 % of the controller's CPU issuing 10,000 agents' leases."""
    prefix = secrets.token_hex(4)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):08x}"
